"""Who may change a memory: the one rule every reconciler and every store applies.

A memory's owner fields (user_id, agent_id, run_id) never change after it is written. A write through a
scope may change (update, supersede) a memory when the scope can read it (every field the scope names is
equal) and both have the same user_id, None included:

- `add(user_id="alice")` may change any of Alice's memories, whichever agent or run wrote them;
- `add(user_id="alice", agent_id="travel")` only Alice's memories of the travel agent;
- `add(agent_id="travel")` only the travel agent's memories that belong to no user, never Alice's.
"""

from __future__ import annotations

from collections.abc import Mapping

from engram.errors import InvalidInput
from engram.filters import ALL, Cond, Filter, Not
from engram.types import MemoryRecord, Scope

__all__ = ["check_write", "may_change", "writable"]


def may_change(writer: Scope, record: MemoryRecord) -> bool:
    """Whether a write through `writer` may close or replace a version of `record`."""
    return writer.contains(record) and record.user_id == writer.user_id


def writable(writer: Scope) -> Filter:
    """The filter that, with `writer` as the read scope, admits exactly the memories `may_change` allows."""
    return ALL if writer.user_id is not None else Not(Cond("user_id", "exists"))


def check_write(writer: Scope | None, closed: Mapping[str, MemoryRecord], inserted: list[MemoryRecord]) -> None:
    """Raise InvalidInput unless a change set keeps the rule: what it closes (`closed`, by memory id, as read in
    the write transaction) is the writer's, a new version keeps its memory's owner fields, and a new memory
    has exactly the writer's scope. `writer=None` is a change addressed by memory id (update, delete,
    revert): only the owner fields are checked."""
    if writer is not None:
        for record in closed.values():
            if not may_change(writer, record):
                raise InvalidInput(f"memory {record.id} belongs to {_owner(record.scope)}; a write through "
                                   f"{_owner(writer)} may not change it")
    for record in inserted:
        before = closed.get(record.id)
        if before is not None and before.scope != record.scope:
            raise InvalidInput(f"a new version of memory {record.id} may not move it from {_owner(before.scope)} "
                               f"to {_owner(record.scope)}")
        if before is None and writer is not None and record.scope != writer:
            raise InvalidInput(f"a write through {_owner(writer)} may not create a memory of {_owner(record.scope)}")


def _owner(scope: Scope) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in scope.items()) or "no scope"
