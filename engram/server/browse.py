"""What the web page shows, summarised from a store's records: its users (with counts and last change), a user's
memories a page at a time (current ones, or every memory with its state), their categories, a memory's versions.

Pure functions over records; the routes read the records (`Store.dump` for what `select` cannot give: closed
versions and every user), so this works the same over every store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from engram.types import MemoryRecord, iso

__all__ = ["State", "latest_versions", "page", "state_of", "summary", "users", "versions_of"]

State = Literal["current", "superseded", "deleted"]


def users(records: Iterable[MemoryRecord]) -> list[dict[str, Any]]:
    """One row per user id: current memories, all memories (any state), and when any of them last changed;
    the most recently changed user first."""
    changed: dict[str, float] = {}
    ids: dict[str, set[str]] = {}
    current: dict[str, set[str]] = {}  # by id: a dump is not one snapshot, so a write during it may show 2 versions
    for record in records:
        user = record.user_id
        if user is None:
            continue
        ids.setdefault(user, set()).add(record.id)
        if record.is_current:
            current.setdefault(user, set()).add(record.id)
        changed[user] = max(changed.get(user, 0.0), record.updated_at, record.valid_to or 0.0, record.created_at)
    ordered = sorted(ids, key=lambda u: (-changed[u], u))
    return [{"user_id": u, "current": len(current.get(u, ())), "memories": len(ids[u]), "last_change": iso(changed[u])}
            for u in ordered]


def latest_versions(records: Iterable[MemoryRecord]) -> list[MemoryRecord]:
    """Each memory's latest version (the current one, or the last one closed), most recently changed first."""
    latest: dict[str, MemoryRecord] = {}
    for record in records:
        known = latest.get(record.id)
        if known is None or (record.version or 0) > (known.version or 0):
            latest[record.id] = record
    return sorted(latest.values(), key=lambda r: (-(r.valid_to or r.updated_at), -(r.version or 0)))


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


def versions_of(records: Iterable[MemoryRecord], memory_id: str) -> list[dict[str, Any]]:
    """Every version of a memory, oldest first, each with its state."""
    found = sorted((r for r in records if r.id == memory_id), key=lambda r: r.version or 0)
    return [{**r.to_dict(), "state": state_of(r) if r is found[-1] else "superseded"} for r in found]
