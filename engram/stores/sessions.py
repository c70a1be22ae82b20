"""The chat session protocol: what every backend keeps of the agent's conversations, apart from memories.

A session is identified by its owner scope and its id together: Alice's "s1" and Bob's "s1" are two sessions,
and neither can be read or written through the other's scope. A memory store exposes its backend's sessions
as `store.sessions`, kept in the same database so that an `apply` can mark turns saved in the same write as the
memories extracted from them (`ChangeSet.saved`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engram.types import Scope, Turn

__all__ = ["Session", "SessionStore", "listed"]


@dataclass(frozen=True)
class Session:
    """A chat session as a store holds it, without its turns: what a copy between stores carries."""

    id: str
    user_id: str | None
    agent_id: str | None
    run_id: str | None
    created_at: float
    updated_at: float

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.run_id)


class SessionStore(ABC):
    """Chat sessions of one backend. Every method names a session by (id, owner scope): the scope must be the
    session's exact owner (all three fields equal); a session of another scope is another session."""

    @abstractmethod
    def append_turns(self, session_id: str, scope: Scope, turns: list[Turn]) -> list[Turn]:
        """Add turns to the scope's session (created on first use); return them with their seq."""

    @abstractmethod
    def turns(self, session_id: str, scope: Scope, last: int | None = None) -> list[Turn]:
        """The session's turns in order (only the `last` ones if given); [] for a session the scope has not
        started."""

    @abstractmethod
    def mark_saved(self, session_id: str, scope: Scope, through_seq: int) -> None:
        """Record that every turn up to `through_seq` has been handed to add(); NotFound for a session the scope
        has not started."""

    @abstractmethod
    def of(self, scope: Scope) -> list[dict[str, Any]]:
        """The sessions of every scope `scope` contains (as memories: its given fields equal): id, user_id,
        agent_id, run_id (those set), created_at, updated_at, turns; most recent first."""

    @abstractmethod
    def dump(self) -> Iterable[tuple[Session, list[Turn]]]:
        """Every session of every scope with all its turns (seq and saved flags included), oldest first."""

    @abstractmethod
    def put(self, session: Session, turns: list[Turn]) -> int:
        """Take in a session copied from another store; return how many turns were added. A missing session is
        made with its times, owner and turns, each turn keeping its seq where that is free. For a session the
        owner has already, only turns it lacks (by role, content and time) are added, saved flags are only ever
        set and updated_at only moves forward, so a copy can run again."""


def listed(session_id: str, scope: Scope, created_at: float, updated_at: float, turns: int) -> dict[str, Any]:
    """One entry of `SessionStore.of`."""
    return {"id": session_id, **dict(scope.items()), "created_at": created_at, "updated_at": updated_at,
            "turns": turns}
