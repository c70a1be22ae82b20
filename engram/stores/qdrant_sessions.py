"""Chat sessions in the Qdrant store.

One payload-only collection `<name>_sessions` holds a `session` point per session, its id derived from the
owner scope and the session id (so every process finds the same point), and a `turn` point per message, which
carries both too. A session point is written before its turns and its `updated_at` after them, so a crash
leaves at worst an empty session, never turns that belong to nobody.

Legacy: an older engram named sessions by id alone, with the point id derived from the session id and turns
without a scope. Such a session stays its owner's: found at that point when its scope is the one asked for,
its old turns read with the new ones (`Head.legacy`). Another scope's session of the same id is a new point.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.http import models

from engram.errors import NotFound
from engram.stores.qdrant_collections import create
from engram.stores.qdrant_journal import (
    Names,
    client_errors,
    new_ids,
    scroll_all,
)
from engram.stores.qdrant_schema import match, scope_key, session_turns
from engram.stores.sessions import Session, SessionStore, listed
from engram.types import Scope, Turn, tick

__all__ = ["Head", "QdrantSessions"]

_NAMESPACE = uuid.UUID("6f1c2a8e-5b7d-4c3e-9a10-2f4e8d9b7c61")  # engram's: session -> point id


def _point(session_id: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{key}\x00{session_id}"))


def _legacy_point(session_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, session_id))


@dataclass(frozen=True)
class Head:
    """A session's point: its id and payload, and whether an older engram wrote it (see the module)."""

    point: str
    payload: dict[str, Any]
    legacy: bool

    @property
    def turns(self) -> models.Filter:
        return session_turns(self.payload["session_id"], self.payload["scope"], self.legacy)


class QdrantSessions(SessionStore):
    """The sessions of one Qdrant store, sharing its client and lock; `reading` is the store's guard for reads
    (it first repairs an interrupted write of this process, whose `saved` mark may be pending)."""

    def __init__(self, client: QdrantClient, names: Names, *, local: bool, lock: threading.RLock,
                 reading: Callable[[], AbstractContextManager[None]]) -> None:
        self.client, self.names, self.local = client, names, local
        self._lock, self._reading = lock, reading

    def head(self, session_id: str, scope: Scope) -> Head | None:
        """The scope's session of this id, or None (the collection must exist)."""
        key = scope_key(scope)
        own, legacy = _point(session_id, key), _legacy_point(session_id)
        points = self.client.retrieve(self.names.sessions, [own, legacy], with_payload=True)
        found = {str(p.id): p.payload for p in points}
        if found.get(own) is not None:
            return Head(own, found[own], False)  # type: ignore[arg-type]
        old = found.get(legacy)
        return Head(legacy, old, True) if old is not None and old["scope"] == key else None

    def append_turns(self, session_id: str, scope: Scope, turns: list[Turn]) -> list[Turn]:
        stamp = max((t.created_at for t in turns), default=0.0)
        with self._lock, client_errors("session write"):
            self._ensure()
            head = self.head(session_id, scope)
            if head is None:
                self._start(session_id, scope, stamp, stamp)
            stored = [Turn(t.role, t.content, t.created_at, tick(), t.saved) for t in turns]
            self._write_turns(session_id, scope, stored)
            if head is not None and stamp > head.payload["updated_at"]:
                self.client.set_payload(self.names.sessions, payload={"updated_at": stamp}, points=[head.point],
                                        wait=True)
        return stored

    def turns(self, session_id: str, scope: Scope, last: int | None = None) -> list[Turn]:
        if last == 0:
            return []
        with self._reading(), client_errors("session read"):
            head = self.head(session_id, scope) if self.client.collection_exists(self.names.sessions) else None
            if head is None:
                return []
            points = list(scroll_all(self.client, self.names.sessions, head.turns))
        ordered = sorted((_turn(p.payload or {}) for p in points), key=lambda t: t.seq or 0)
        return ordered[-last:] if last is not None and last > 0 else ordered

    def mark_saved(self, session_id: str, scope: Scope, through_seq: int) -> None:
        with self._lock, client_errors("session write"):
            head = self.head(session_id, scope) if self.client.collection_exists(self.names.sessions) else None
            if head is None:
                raise NotFound(f"no session {session_id!r} in this scope")
            upto = models.FieldCondition(key="seq", range=models.Range(lte=through_seq))
            self.client.set_payload(self.names.sessions, payload={"saved": True}, wait=True,
                                    points=models.Filter(must=[head.turns, upto]))

    def of(self, scope: Scope) -> list[dict[str, Any]]:
        flt = models.Filter(must=[match("kind", "session"), *(match(name, value) for name, value in scope.items())])
        with self._reading(), client_errors("session read"):
            if not self.client.collection_exists(self.names.sessions):
                return []
            found = []
            for point in scroll_all(self.client, self.names.sessions, flt):
                head = _head(point)
                p = head.payload
                count = self.client.count(self.names.sessions, count_filter=head.turns).count
                found.append(listed(p["session_id"], _scope(p), p["created_at"], p["updated_at"], count))
        return sorted(found, key=lambda s: (-s["updated_at"], s["id"]))

    def dump(self) -> Iterator[tuple[Session, list[Turn]]]:
        with self._reading(), client_errors("session read"):
            if not self.client.collection_exists(self.names.sessions):
                return
            points = list(scroll_all(self.client, self.names.sessions, None))
        turns: dict[tuple[str, str | None], list[Turn]] = {}  # by (session id, scope); scope None: a legacy turn
        heads = []
        for point in points:
            payload = point.payload or {}
            if payload["kind"] == "turn":
                turns.setdefault((payload["session_id"], payload.get("scope")), []).append(_turn(payload))
            else:
                heads.append(_head(point))
        for head in sorted(heads, key=lambda h: (h.payload["created_at"], h.payload["session_id"], h.payload["scope"])):
            p = head.payload
            legacy = turns.get((p["session_id"], None), []) if head.legacy else []
            mine = turns.get((p["session_id"], p["scope"]), []) + legacy
            yield (Session(p["session_id"], p["user_id"], p["agent_id"], p["run_id"], p["created_at"], p["updated_at"]),
                   sorted(mine, key=lambda t: t.seq or 0))

    def put(self, session: Session, turns: list[Turn]) -> int:
        # Written like append_turns: the session point first, its turns, then its updated_at
        with self._lock, client_errors("session write"):
            self._ensure()
            head = self.head(session.id, session.scope) or self._start(session.id, session.scope, session.created_at,
                                                                        session.created_at)
            have = {(p.payload["role"], p.payload["content"], p.payload["created_at"]): p  # type: ignore[index]
                    for p in scroll_all(self.client, self.names.sessions, head.turns)}
            fresh = [t for t in turns if (t.role, t.content, t.created_at) not in have]
            taken = self._seqs_taken([t.seq for t in fresh if t.seq is not None])
            self._write_turns(session.id, session.scope, [
                Turn(t.role, t.content, t.created_at, tick() if t.seq is None or t.seq in taken else t.seq, t.saved)
                for t in fresh])
            now_saved = [have[k].id for t in turns if t.saved and (k := (t.role, t.content, t.created_at)) in have
                         and not have[k].payload["saved"]]  # type: ignore[index]
            if now_saved:
                self.client.set_payload(self.names.sessions, payload={"saved": True}, points=now_saved, wait=True)
            if session.updated_at > head.payload["updated_at"]:
                self.client.set_payload(self.names.sessions, payload={"updated_at": session.updated_at},
                                        points=[head.point], wait=True)
        return len(fresh)

    def _start(self, session_id: str, scope: Scope, created_at: float, updated_at: float) -> Head:
        """Write a new session's point (inside the lock)."""
        key = scope_key(scope)
        payload = {"kind": "session", "session_id": session_id, "scope": key, "user_id": scope.user_id,
                   "agent_id": scope.agent_id, "run_id": scope.run_id, "created_at": created_at,
                   "updated_at": updated_at}
        head = Head(_point(session_id, key), payload, False)
        self.client.upsert(self.names.sessions, wait=True,
                           points=[models.PointStruct(id=head.point, vector={}, payload=payload)])
        return head

    def _write_turns(self, session_id: str, scope: Scope, turns: list[Turn]) -> None:
        if not turns:
            return
        key = scope_key(scope)
        self.client.upsert(self.names.sessions, wait=True, points=[
            models.PointStruct(id=point_id, vector={}, payload={
                "kind": "turn", "session_id": session_id, "scope": key, "role": t.role, "content": t.content,
                "created_at": t.created_at, "seq": t.seq, "saved": t.saved})
            for t, point_id in zip(turns, new_ids(len(turns)), strict=True)])

    def _seqs_taken(self, seqs: list[int]) -> set[int]:
        if not seqs:
            return set()
        flt = models.Filter(must=[match("kind", "turn"),
                                  models.FieldCondition(key="seq", match=models.MatchAny(any=seqs))])
        return {p.payload["seq"] for p in scroll_all(self.client, self.names.sessions, flt)}  # type: ignore[index]

    def _ensure(self) -> None:
        create(self.client, self.names, {"sessions": {"vectors_config": {}}}, local=self.local)


def _head(point: models.Record) -> Head:
    payload: dict[str, Any] = point.payload or {}
    return Head(str(point.id), payload, str(point.id) == _legacy_point(payload["session_id"]))


def _scope(payload: dict[str, Any]) -> Scope:
    return Scope(payload["user_id"], payload["agent_id"], payload["run_id"])


def _turn(payload: dict[str, Any]) -> Turn:
    return Turn(payload["role"], payload["content"], payload["created_at"], payload["seq"], payload["saved"])
