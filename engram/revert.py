"""Undoing a whole add: a pure plan from the batch's events and the memories' current versions."""

from __future__ import annotations

from collections.abc import Callable

from engram.errors import InvalidInput, NotFound
from engram.stores.base import ChangeSet, Close
from engram.types import Event, MemoryRecord, Op

__all__ = ["plan_revert", "revert_batch_id"]


def revert_batch_id(batch_id: str) -> str:
    return f"revert-{batch_id}"


def plan_revert(batch_id: str, events: list[Event], latest: Callable[[str], MemoryRecord | None],
                stamp: float) -> ChangeSet:
    """Close what the batch inserted (as if it had never been valid) and reopen what it closed.

    Refuses, writing nothing, when a memory changed after the batch: revert the later batch first."""
    if not events:
        raise NotFound(f"no batch with id {batch_id!r}")
    changes = ChangeSet()
    undo = revert_batch_id(batch_id)
    for event in reversed(events):
        if event.op is Op.REVERT:
            raise InvalidInput(f"batch {batch_id} is itself a revert")
        now = latest(event.memory_id)
        now = now if now is not None and now.is_current else None
        if event.new_version is not None:  # ADD, or UPDATE: its new version must still be the current one
            if now is None or now.version != event.new_version:
                raise InvalidInput(f"memory {event.memory_id} changed after batch {batch_id}; revert that change first")
            changes.closes.append(Close(event.memory_id, now.valid_from, version=now.version))
        elif now is not None and event.op is Op.DELETE:
            raise InvalidInput(f"memory {event.memory_id} changed after batch {batch_id}; revert that change first")
        if event.old_version is not None:  # UPDATE or DELETE closed this version: make it current again
            changes.reopens.append(event.old_version)
        changes.events.append(Event(event.memory_id, Op.REVERT, undo, stamp, old_text=event.new_text,
                                    new_text=event.old_text, reason=f"revert of batch {batch_id}", actor="user",
                                    old_version=event.new_version, new_version=event.old_version))
    return changes
