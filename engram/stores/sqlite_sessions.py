"""Chat sessions in the SQLite store: a mixin over SQLiteStore's transaction and read helpers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from engram.errors import InvalidInput, NotFound
from engram.stores.base import Session
from engram.types import Scope, Turn

__all__ = ["SessionTables"]


class SessionTables:
    """append_turns / turns / mark_saved / sessions / all_sessions / put_session for a store that has `_write()`
    and `_read()`."""

    def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...  # provided by SQLiteStore
    def _read(self, sql: str, params: tuple = ()) -> list[tuple]: ...  # provided by SQLiteStore

    def append_turns(self, session_id: str, scope: Scope, turns: list[Turn]) -> list[Turn]:
        with self._write() as db:
            owner = db.execute("SELECT user_id, agent_id, run_id FROM sessions WHERE id=?", (session_id,)).fetchone()
            stamp = max((t.created_at for t in turns), default=0.0)
            if owner is None:
                db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                           (session_id, scope.user_id, scope.agent_id, scope.run_id, stamp, stamp))
            elif tuple(owner) != (scope.user_id, scope.agent_id, scope.run_id):
                raise NotFound(f"no session {session_id!r} in this scope")
            else:
                db.execute("UPDATE sessions SET updated_at=max(updated_at, ?) WHERE id=?", (stamp, session_id))
            stored = []
            for turn in turns:
                cursor = db.execute("INSERT INTO turns (session_id, role, content, created_at, saved) VALUES (?, ?, ?, ?, ?)",
                                    (session_id, turn.role, turn.content, turn.created_at, int(turn.saved)))
                stored.append(Turn(turn.role, turn.content, turn.created_at, cursor.lastrowid, turn.saved))
        return stored

    def turns(self, session_id: str, scope: Scope, last: int | None = None) -> list[Turn]:
        if not self._owned(session_id, scope):
            return []
        limit = -1 if last is None else last
        rows = self._read("SELECT role, content, created_at, seq, saved FROM turns WHERE session_id=? "
                          "ORDER BY seq DESC LIMIT ?", (session_id, limit))
        return [Turn(r[0], r[1], r[2], r[3], bool(r[4])) for r in reversed(rows)]

    def mark_saved(self, session_id: str, scope: Scope, through_seq: int) -> None:
        with self._write() as db:
            self._mark(db, session_id, scope, through_seq)

    def _mark(self, db: sqlite3.Connection, session_id: str, scope: Scope, through_seq: int) -> None:
        """Inside a write: every turn up to `through_seq` has been handed to add() (an apply's `saved`)."""
        if not self._owned(session_id, scope, db):
            raise NotFound(f"no session {session_id!r} in this scope")
        db.execute("UPDATE turns SET saved=1 WHERE session_id=? AND seq<=?", (session_id, through_seq))

    def sessions(self, scope: Scope) -> list[dict[str, Any]]:
        where = " AND ".join(f"s.{name}=?" for name, _ in scope.items())
        rows = self._read(
            f"SELECT s.id, s.created_at, s.updated_at, count(t.seq) FROM sessions s LEFT JOIN turns t "
            f"ON t.session_id = s.id WHERE {where} GROUP BY s.id ORDER BY s.updated_at DESC",
            tuple(value for _, value in scope.items()))
        return [{"id": r[0], "created_at": r[1], "updated_at": r[2], "turns": r[3]} for r in rows]

    def all_sessions(self) -> Iterator[tuple[Session, list[Turn]]]:
        rows = self._read("SELECT id, user_id, agent_id, run_id, created_at, updated_at FROM sessions "
                          "ORDER BY created_at, id")
        for row in rows:
            turns = self._read("SELECT role, content, created_at, seq, saved FROM turns WHERE session_id=? ORDER BY seq",
                               (row[0],))
            yield Session(*row), [Turn(t[0], t[1], t[2], t[3], bool(t[4])) for t in turns]

    def put_session(self, session: Session, turns: list[Turn]) -> int:
        owner = (session.user_id, session.agent_id, session.run_id)
        added = 0
        with self._write() as db:
            found = db.execute("SELECT user_id, agent_id, run_id FROM sessions WHERE id=?", (session.id,)).fetchone()
            if found is None:
                db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                           (session.id, *owner, session.created_at, session.updated_at))
            elif tuple(found) != owner:
                raise InvalidInput(f"session {session.id!r} belongs to another scope in this store")
            else:
                db.execute("UPDATE sessions SET updated_at=max(updated_at, ?) WHERE id=?", (session.updated_at, session.id))
            have = {(r[1], r[2], r[3]): r[0] for r in db.execute(
                "SELECT seq, role, content, created_at FROM turns WHERE session_id=?", (session.id,))}
            for turn in turns:
                seq = have.get((turn.role, turn.content, turn.created_at))
                if seq is not None:
                    if turn.saved:
                        db.execute("UPDATE turns SET saved=1 WHERE seq=?", (seq,))
                    continue
                taken = turn.seq is None or db.execute("SELECT 1 FROM turns WHERE seq=?", (turn.seq,)).fetchone()
                cursor = db.execute("INSERT INTO turns (seq, session_id, role, content, created_at, saved) "
                                    "VALUES (?, ?, ?, ?, ?, ?)", (None if taken else turn.seq, session.id, turn.role,
                                                                 turn.content, turn.created_at, int(turn.saved)))
                have[(turn.role, turn.content, turn.created_at)] = int(cursor.lastrowid)  # type: ignore[arg-type]
                added += 1
        return added

    def _owned(self, session_id: str, scope: Scope, db: sqlite3.Connection | None = None) -> bool:
        sql, params = "SELECT user_id, agent_id, run_id FROM sessions WHERE id=?", (session_id,)
        owner = db.execute(sql, params).fetchone() if db is not None else next(iter(self._read(sql, params)), None)
        if owner is None:
            return False
        if tuple(owner) != (scope.user_id, scope.agent_id, scope.run_id):
            raise NotFound(f"no session {session_id!r} in this scope")
        return True

