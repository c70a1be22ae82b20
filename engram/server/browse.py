"""What the web page shows, summarised from a store's records: its users (with counts and last change), a user's
memories a page at a time (current ones, or every memory with its state), their categories, a memory's versions.

Pure functions over what the routes read from the store (`select` for current memories; `versions`, `owned` and
`user_stats` for closed versions and every user), so this works the same over every store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from engram.stores.base import UserStats, written_order
from engram.types import MemoryRecord, iso

__all__ = ["State", "latest_versions", "page", "state_of", "summary", "users", "versions_of"]

State = Literal["current", "superseded", "deleted"]


def users(stats: Iterable[UserStats]) -> list[dict[str, Any]]:
    """One row per user: current memories, all memories (any state), and when any of them last changed; the
    most recently changed user first."""
    ordered = sorted(stats, key=lambda u: (-u.last_change, u.user_id))
    return [{"user_id": u.user_id, "current": u.current, "memories": u.memories, "last_change": iso(u.last_change)}
            for u in ordered]


def latest_versions(records: Iterable[MemoryRecord]) -> list[MemoryRecord]:
    """Each memory's latest version (the current one, or the last one closed), most recently changed first."""
    latest: dict[str, MemoryRecord] = {}
    for record in records:
        known = latest.get(record.id)
        if known is None or _recency(record) > _recency(known):
            latest[record.id] = record
    return sorted(latest.values(), key=lambda r: (-(r.valid_to or r.updated_at), -(r.version or 0)))


def _recency(record: MemoryRecord) -> tuple[bool, float, float, int]:
    """The current version first (a reverted memory's is an older one), then the one closed last."""
    return record.is_current, record.valid_to or 0.0, *written_order(record)


def state_of(record: MemoryRecord) -> State:
    """current; superseded (closed with a successor); deleted (closed without one)."""
    if record.is_current:
        return "current"
    return "superseded" if record.superseded_by else "deleted"


def page(records: list[MemoryRecord], number: int, size: int) -> dict[str, Any]:
    """Page `number` (from 1) of `records` (which may end one past the page: then `more` is true), each with its
    state."""
    start = (number - 1) * size
    return {"page": number, "page_size": size, "more": len(records) > start + size,
            "results": [{**r.to_dict(), "state": state_of(r)} for r in records[start:start + size]]}


def summary(records: Iterable[MemoryRecord]) -> dict[str, Any]:
    """How many records there are and how many carry each category (the most common first)."""
    count, categories = 0, dict[str, int]()
    for record in records:
        count += 1
        for name in record.categories:
            categories[name] = categories.get(name, 0) + 1
    return {"count": count, "categories": dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0])))}


def versions_of(found: list[MemoryRecord]) -> list[dict[str, Any]]:
    """Every version of a memory (Store.versions: in the order written), each with its state: a closed version
    before the last was superseded by the next (an update closes one without naming a successor)."""
    return [{**r.to_dict(), "state": state_of(r) if r.is_current or r is found[-1] else "superseded"} for r in found]
