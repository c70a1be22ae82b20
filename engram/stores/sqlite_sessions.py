"""Chat sessions in the SQLite store: the `sessions` and `turns` tables, written through the store's transactions.

A session's key is (owner, id), `owner` being its exact scope as one string (`scope_key`); each turn carries
both, and `seq` (global, increasing) orders them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from engram.errors import NotFound
from engram.stores.base import scope_key
from engram.stores.sessions import Session, SessionStore, listed
from engram.types import Scope, Turn

__all__ = ["SQLiteSessions"]

Write = Callable[[], AbstractContextManager[sqlite3.Connection]]
Read = Callable[[str, tuple], list[tuple]]
_TURN = "SELECT role, content, created_at, seq, saved FROM turns"


class SQLiteSessions(SessionStore):
    """The sessions of one SQLite store. `write` opens one of its write transactions; `read` runs one query."""

    def __init__(self, write: Write, read: Read) -> None:
        self._write, self._read = write, read

    def append_turns(self, session_id: str, scope: Scope, turns: list[Turn]) -> list[Turn]:
        owner = scope_key(scope)
        stamp = max((t.created_at for t in turns), default=0.0)
        with self._write() as db:
            if self.started(db, session_id, scope):
                db.execute("UPDATE sessions SET updated_at=max(updated_at, ?) WHERE owner=? AND id=?",
                           (stamp, owner, session_id))
            else:
                db.execute("INSERT INTO sessions (owner, id, user_id, agent_id, run_id, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (owner, session_id, *_fields(scope), stamp, stamp))
            stored = []
            for turn in turns:
                cursor = db.execute("INSERT INTO turns (owner, session_id, role, content, created_at, saved) "
                                    "VALUES (?, ?, ?, ?, ?, ?)",
                                    (owner, session_id, turn.role, turn.content, turn.created_at, int(turn.saved)))
                stored.append(Turn(turn.role, turn.content, turn.created_at, cursor.lastrowid, turn.saved))
        return stored

    def turns(self, session_id: str, scope: Scope, last: int | None = None) -> list[Turn]:
        rows = self._read(f"{_TURN} WHERE owner=? AND session_id=? ORDER BY seq DESC LIMIT ?",
                          (scope_key(scope), session_id, -1 if last is None else last))
        return [_turn(row) for row in reversed(rows)]

    def mark_saved(self, session_id: str, scope: Scope, through_seq: int) -> None:
        with self._write() as db:
            self.mark_in(db, session_id, scope, through_seq)

    def mark_in(self, db: sqlite3.Connection, session_id: str, scope: Scope, through_seq: int) -> None:
        """`mark_saved` inside a write of the store (an apply's `saved`, in the same transaction)."""
        if not self.started(db, session_id, scope):
            raise NotFound(f"no session {session_id!r} in this scope")
        db.execute("UPDATE turns SET saved=1 WHERE owner=? AND session_id=? AND seq<=?",
                   (scope_key(scope), session_id, through_seq))

    @staticmethod
    def started(db: sqlite3.Connection, session_id: str, scope: Scope) -> bool:
        """Whether the scope has a session of this id (read in `db`'s transaction)."""
        sql = "SELECT 1 FROM sessions WHERE owner=? AND id=?"
        return db.execute(sql, (scope_key(scope), session_id)).fetchone() is not None

    def of(self, scope: Scope) -> list[dict[str, Any]]:
        where = " AND ".join(f"s.{name}=?" for name, _ in scope.items()) or "1"
        rows = self._read(
            "SELECT s.id, s.user_id, s.agent_id, s.run_id, s.created_at, s.updated_at, count(t.seq) FROM sessions s "
            f"LEFT JOIN turns t ON t.owner = s.owner AND t.session_id = s.id WHERE {where} "
            "GROUP BY s.owner, s.id ORDER BY s.updated_at DESC, s.id", tuple(value for _, value in scope.items()))
        return [listed(r[0], Scope(r[1], r[2], r[3]), r[4], r[5], r[6]) for r in rows]

    def dump(self) -> Iterator[tuple[Session, list[Turn]]]:
        rows = self._read("SELECT owner, id, user_id, agent_id, run_id, created_at, updated_at FROM sessions "
                          "ORDER BY created_at, id, owner", ())
        for owner, *session in rows:
            turns = self._read(f"{_TURN} WHERE owner=? AND session_id=? ORDER BY seq", (owner, session[0]))
            yield Session(*session), [_turn(t) for t in turns]

    def put(self, session: Session, turns: list[Turn]) -> int:
        owner, added = scope_key(session.scope), 0
        with self._write() as db:
            if self.started(db, session.id, session.scope):
                db.execute("UPDATE sessions SET updated_at=max(updated_at, ?) WHERE owner=? AND id=?",
                           (session.updated_at, owner, session.id))
            else:
                db.execute("INSERT INTO sessions (owner, id, user_id, agent_id, run_id, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (owner, session.id, *_fields(session.scope), session.created_at, session.updated_at))
            have = {(r[1], r[2], r[3]): r[0] for r in db.execute(
                "SELECT seq, role, content, created_at FROM turns WHERE owner=? AND session_id=?", (owner, session.id))}
            for turn in turns:
                seq = have.get((turn.role, turn.content, turn.created_at))
                if seq is not None:
                    if turn.saved:
                        db.execute("UPDATE turns SET saved=1 WHERE seq=?", (seq,))
                    continue
                taken = turn.seq is None or db.execute("SELECT 1 FROM turns WHERE seq=?", (turn.seq,)).fetchone()
                cursor = db.execute(
                    "INSERT INTO turns (seq, owner, session_id, role, content, created_at, saved) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (None if taken else turn.seq, owner, session.id, turn.role, turn.content, turn.created_at,
                     int(turn.saved)))
                have[(turn.role, turn.content, turn.created_at)] = int(cursor.lastrowid)  # type: ignore[arg-type]
                added += 1
        return added


def _fields(scope: Scope) -> tuple[str | None, str | None, str | None]:
    return scope.user_id, scope.agent_id, scope.run_id


def _turn(row: tuple) -> Turn:
    return Turn(row[0], row[1], row[2], row[3], bool(row[4]))
