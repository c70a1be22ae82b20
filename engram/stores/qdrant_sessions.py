"""Chat sessions in the Qdrant store: a mixin over QdrantStore's client, names and locks.

One payload-only collection `<name>_sessions` holds a `session` point per session (its id derived from the
session id, so every process finds the same point) and a `turn` point per message. A session point is written
before its turns and its `updated_at` after them, so a crash leaves at worst an empty session, never turns
that belong to nobody.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.http import models

from engram.errors import InvalidInput, NotFound
from engram.stores.base import Session
from engram.stores.qdrant_journal import (
    CLIENT_ERRORS,
    Names,
    client_errors,
    new_ids,
    scroll_all,
    tick,
)
from engram.stores.qdrant_schema import INDEXES, match, scope_key
from engram.types import Scope, Turn

__all__ = ["SessionPoints"]

_NAMESPACE = uuid.UUID("6f1c2a8e-5b7d-4c3e-9a10-2f4e8d9b7c61")  # engram's: session id -> point id


def _session_point(session_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, session_id))


class SessionPoints:
    """append_turns / turns / mark_saved / sessions / all_sessions / put_session for a store with `client`,
    `names`, `local`, `_lock`."""

    client: QdrantClient
    names: Names
    local: bool
    _lock: threading.RLock

    def _reading(self) -> AbstractContextManager[None]: ...  # provided by QdrantStore

    def append_turns(self, session_id: str, scope: Scope, turns: list[Turn]) -> list[Turn]:
        with self._lock, client_errors("session write"):
            self._ensure_sessions()
            owner = self._owner(session_id, scope)
            stamp = max((t.created_at for t in turns), default=0.0)
            if owner is None:
                payload = {"kind": "session", "session_id": session_id, "scope": scope_key(scope),
                           **{name: getattr(scope, name) for name in ("user_id", "agent_id", "run_id")},
                           "created_at": stamp, "updated_at": stamp}
                self.client.upsert(self.names.sessions, wait=True,
                                   points=[models.PointStruct(id=_session_point(session_id), vector={}, payload=payload)])
            stored = [Turn(t.role, t.content, t.created_at, tick(), t.saved) for t in turns]
            self.client.upsert(self.names.sessions, wait=True, points=[
                models.PointStruct(id=point_id, vector={}, payload={
                    "kind": "turn", "session_id": session_id, "role": t.role, "content": t.content,
                    "created_at": t.created_at, "seq": t.seq, "saved": t.saved})
                for t, point_id in zip(stored, new_ids(len(stored)))])
            if owner is not None and stamp > owner["updated_at"]:
                self.client.set_payload(self.names.sessions, payload={"updated_at": stamp},
                                        points=[_session_point(session_id)], wait=True)
        return stored

    def turns(self, session_id: str, scope: Scope, last: int | None = None) -> list[Turn]:
        if last == 0:
            return []
        with self._reading(), client_errors("session read"):
            if not self.client.collection_exists(self.names.sessions) or self._owner(session_id, scope) is None:
                return []
            points = list(scroll_all(self.client, self.names.sessions, _turns_of(session_id)))
        ordered = sorted(points, key=lambda p: p.payload["seq"])  # type: ignore[index]
        if last is not None and last > 0:
            ordered = ordered[-last:]
        return [Turn(p.payload["role"], p.payload["content"], p.payload["created_at"], p.payload["seq"],  # type: ignore[index]
                     p.payload["saved"]) for p in ordered]  # type: ignore[index]

    def mark_saved(self, session_id: str, scope: Scope, through_seq: int) -> None:
        with self._lock, client_errors("session write"):
            if not self.client.collection_exists(self.names.sessions) or self._owner(session_id, scope) is None:
                raise NotFound(f"no session {session_id!r} in this scope")
            upto = models.FieldCondition(key="seq", range=models.Range(lte=through_seq))
            self.client.set_payload(self.names.sessions, payload={"saved": True}, wait=True,
                                    points=models.Filter(must=[*_turns_of(session_id).must, upto]))  # type: ignore[misc]

    def sessions(self, scope: Scope) -> list[dict[str, Any]]:
        flt = models.Filter(must=[match("kind", "session"), *(match(name, value) for name, value in scope.items())])
        with self._reading(), client_errors("session read"):
            try:
                points = list(scroll_all(self.client, self.names.sessions, flt))
            except CLIENT_ERRORS:
                if self.client.collection_exists(self.names.sessions):
                    raise
                return []
            found = [{"id": p.payload["session_id"], "created_at": p.payload["created_at"],  # type: ignore[index]
                      "updated_at": p.payload["updated_at"],  # type: ignore[index]
                      "turns": self.client.count(self.names.sessions, count_filter=_turns_of(p.payload["session_id"])).count}  # type: ignore[index]
                     for p in points]
        return sorted(found, key=lambda s: s["updated_at"], reverse=True)

    def all_sessions(self) -> Iterator[tuple[Session, list[Turn]]]:
        with self._reading(), client_errors("session read"):
            if not self.client.collection_exists(self.names.sessions):
                return
            points = [p.payload for p in scroll_all(self.client, self.names.sessions, None)]
        turns: dict[str, list[Turn]] = {}
        for p in sorted((p for p in points if p["kind"] == "turn"), key=lambda p: p["seq"]):  # type: ignore[index]
            turns.setdefault(p["session_id"], []).append(  # type: ignore[index]
                Turn(p["role"], p["content"], p["created_at"], p["seq"], p["saved"]))  # type: ignore[index]
        heads = sorted((p for p in points if p["kind"] == "session"), key=lambda p: (p["created_at"], p["session_id"]))  # type: ignore[index]
        for p in heads:
            yield (Session(p["session_id"], p["user_id"], p["agent_id"], p["run_id"], p["created_at"],  # type: ignore[index]
                           p["updated_at"]), turns.get(p["session_id"], []))  # type: ignore[index]

    def put_session(self, session: Session, turns: list[Turn]) -> int:
        # Written like append_turns: the session point first, its turns, then its updated_at
        with self._lock, client_errors("session write"):
            self._ensure_sessions()
            try:
                found = self._owner(session.id, session.scope)
            except NotFound:
                raise InvalidInput(f"session {session.id!r} belongs to another scope in this store") from None
            if found is None:
                payload = {"kind": "session", "session_id": session.id, "scope": scope_key(session.scope),
                           "user_id": session.user_id, "agent_id": session.agent_id, "run_id": session.run_id,
                           "created_at": session.created_at, "updated_at": session.created_at}
                self.client.upsert(self.names.sessions, wait=True, points=[
                    models.PointStruct(id=_session_point(session.id), vector={}, payload=payload)])
            have = {(p.payload["role"], p.payload["content"], p.payload["created_at"]): p  # type: ignore[index]
                    for p in scroll_all(self.client, self.names.sessions, _turns_of(session.id))}
            fresh = [t for t in turns if (t.role, t.content, t.created_at) not in have]
            taken = self._seqs_taken([t.seq for t in fresh if t.seq is not None])
            if fresh:
                self.client.upsert(self.names.sessions, wait=True, points=[
                    models.PointStruct(id=point_id, vector={}, payload={
                        "kind": "turn", "session_id": session.id, "role": t.role, "content": t.content,
                        "created_at": t.created_at, "seq": tick() if t.seq is None or t.seq in taken else t.seq,
                        "saved": t.saved})
                    for t, point_id in zip(fresh, new_ids(len(fresh)))])
            now_saved = [have[k].id for t in turns if t.saved and (k := (t.role, t.content, t.created_at)) in have
                         and not have[k].payload["saved"]]  # type: ignore[index]
            if now_saved:
                self.client.set_payload(self.names.sessions, payload={"saved": True}, points=now_saved, wait=True)
            if found is None or session.updated_at > found["updated_at"]:
                self.client.set_payload(self.names.sessions, payload={"updated_at": max(
                    session.updated_at, found["updated_at"] if found else session.updated_at)},
                    points=[_session_point(session.id)], wait=True)
        return len(fresh)

    def _seqs_taken(self, seqs: list[int]) -> set[int]:
        if not seqs:
            return set()
        flt = models.Filter(must=[match("kind", "turn"), models.FieldCondition(key="seq", match=models.MatchAny(any=seqs))])
        return {p.payload["seq"] for p in scroll_all(self.client, self.names.sessions, flt)}  # type: ignore[index]

    def _owner(self, session_id: str, scope: Scope) -> dict[str, Any] | None:
        """The session's point payload; NotFound when it belongs to another scope."""
        found = self.client.retrieve(self.names.sessions, [_session_point(session_id)], with_payload=True)
        if not found:
            return None
        if found[0].payload["scope"] != scope_key(scope):  # type: ignore[index]
            raise NotFound(f"no session {session_id!r} in this scope")
        return found[0].payload

    def _ensure_sessions(self) -> None:
        if self.client.collection_exists(self.names.sessions):
            return
        try:
            self.client.create_collection(self.names.sessions, vectors_config={})
        except CLIENT_ERRORS:
            if not self.client.collection_exists(self.names.sessions):
                raise
            return  # created by another process meanwhile
        if not self.local:
            for field_name, schema in INDEXES["sessions"].items():
                self.client.create_payload_index(self.names.sessions, field_name, field_schema=schema, wait=True)


def _turns_of(session_id: str) -> models.Filter:
    return models.Filter(must=[match("kind", "turn"), match("session_id", session_id)])
