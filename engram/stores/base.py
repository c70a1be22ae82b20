"""The memory store protocol: what every backend (SQLite, Qdrant, ...) must do, and nothing more.

Reads take a `Criteria` (pure data: scope, filter, categories, time) that each backend translates natively.
Writes are one `ChangeSet` applied atomically: either all of it is visible afterwards or none of it; what a
change set may do given what the store holds is decided once, for every backend, by `engram.stores.changes`.
Chat sessions are a protocol of their own (`engram.stores.sessions`), which each store exposes as `sessions`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from engram.errors import StoreError
from engram.filters import ALL, Filter
from engram.graph import Graph
from engram.graph_index import GraphView
from engram.stores.sessions import Session, SessionStore
from engram.types import Event, MemoryRecord, Scope, now

__all__ = ["ChangeSet", "Close", "Criteria", "Session", "SessionStore", "Store", "UserStats", "batch_neighbours",
           "scope_key", "user_stats", "written_order"]


def scope_key(scope: Scope) -> str:
    """The exact owner (user_id, agent_id, run_id) as one string: equal keys, equal scopes."""
    return json.dumps([scope.user_id, scope.agent_id, scope.run_id])


@dataclass(frozen=True)
class Criteria:
    """Which records a read may see. `as_of=None` means current records only. Records expired by `as_of` (or,
    without it, by `read_at`: when the criteria were made, i.e. the read) are left out unless `show_expired`."""

    scope: Scope
    where: Filter = ALL
    categories: tuple[str, ...] = ()  # any overlap with the record's categories
    as_of: float | None = None
    show_expired: bool = False
    read_at: float = field(default_factory=now)

    @property
    def expiry_cutoff(self) -> float | None:
        """Records whose expires_at is at or before this instant are left out; None: none are."""
        if self.show_expired:
            return None
        return self.read_at if self.as_of is None else self.as_of

    def admits(self, record: MemoryRecord) -> bool:
        """The reference semantics every backend must reproduce."""
        if not self.scope.contains(record):
            return False
        if self.as_of is None:
            if not record.is_current:
                return False
        elif not record.valid_at(self.as_of):
            return False
        cutoff = self.expiry_cutoff
        if cutoff is not None and record.expired_by(cutoff):
            return False
        if self.categories and not set(self.categories) & set(record.categories):
            return False
        return self.where.matches(record)


@dataclass(frozen=True)
class UserStats:
    """One user's memories as a browsing page lists them (Store.user_stats)."""

    user_id: str
    current: int  # memories with a current version
    memories: int  # memories in any state
    last_change: float  # the latest created_at, updated_at or valid_to of its versions


def written_order(record: MemoryRecord) -> tuple[float, int]:
    """The order of a memory's versions: when each was written, then its version."""
    return record.updated_at, record.version or 0


def user_stats(records: Iterable[MemoryRecord]) -> list[UserStats]:
    """The reference semantics of Store.user_stats over every version. Counted by id: a dump is not one
    snapshot, so a write during it may show a memory's two versions as current."""
    ids: dict[str, set[str]] = {}
    current: dict[str, set[str]] = {}
    changed: dict[str, float] = {}
    for record in records:
        user = record.user_id
        if user is None:
            continue
        ids.setdefault(user, set()).add(record.id)
        if record.is_current:
            current.setdefault(user, set()).add(record.id)
        changed[user] = max(changed.get(user, 0.0), record.updated_at, record.valid_to or 0.0, record.created_at)
    return [UserStats(user, len(current.get(user, ())), len(ids[user]), changed[user]) for user in sorted(ids)]


@dataclass(frozen=True)
class Close:
    """End the current version of `memory_id` at `valid_to` (world time). With `version`, that version must
    be the current one (a guard against closing something that changed meanwhile)."""

    memory_id: str
    valid_to: float
    superseded_by: str | None = None
    version: int | None = None


@dataclass
class ChangeSet:
    """Everything one user-visible operation writes, applied as closes, then reopens, then inserts: an UPDATE
    is a close of the old version plus an insert of a new version with the same id; a revert closes what a
    batch inserted and reopens (makes current again) what it closed. The store fills each event's
    old_version / new_version, when not given, from the versions it closed / inserted for that memory id.

    `owner`: the scope the write comes through (an add's scope); the store checks `ownership.check_write`
    against what it reads inside the write. `dedup`: an insert of a new memory whose text (hash) a current
    memory of exactly the same scope already holds is skipped, with its events, decided inside the write.
    `saved`: (session id, its scope, seq) — mark a chat session's turns up to seq as handed to add(), in the
    same write as the memories extracted from them. `graph`: by insert index, the entities and relations that
    version names (engram.graph), written with it and holding exactly as long as it does. `keep_versions`: each
    insert keeps the `version` its record carries and each event its `seq` (a copy that keeps identity, such as
    a restore); StoreError, writing nothing, when one is already taken. `terms`: by insert index, term counts
    found already (engram.ahead; packed by engram.stores.keywords.pack), which a store that keeps them may use
    instead of counting again."""

    inserts: list[tuple[MemoryRecord, np.ndarray]] = field(default_factory=list)
    closes: list[Close] = field(default_factory=list)
    reopens: list[int] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    owner: Scope | None = None
    dedup: bool = True
    saved: tuple[str, Scope, int] | None = None
    keep_versions: bool = False
    graph: dict[int, Graph] = field(default_factory=dict)
    terms: dict[int, bytes] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.closes or self.reopens or self.events or self.saved)


Neighbours = dict[int, list[tuple[MemoryRecord | None, MemoryRecord | None]]]


def batch_neighbours(records: Iterable[MemoryRecord], admitted: Callable[[MemoryRecord], bool],
                     versions: Iterable[int], window: int) -> Neighbours:
    """For each wanted version, the admitted records its own write (batch) holds just before and just after it
    by position, nearest first: [(before, after) at distance 1..window], None where there is none. `records`
    holds at least every version of the wanted versions' batches (any order; others are ignored)."""
    batches: dict[str, list[MemoryRecord]] = {}
    for record in records:
        if record.batch_id is not None:
            batches.setdefault(record.batch_id, []).append(record)
    order = {batch: sorted(group, key=lambda r: (r.position or 0, r.version or 0)) for batch, group in batches.items()}
    place = {r.version: (group, i) for group in order.values() for i, r in enumerate(group)}
    found: Neighbours = {}
    for version in versions:
        if version not in place or window <= 0:
            continue
        group, at = place[version]
        before, after = [], []
        for i in range(at - 1, -1, -1):  # nearest first, stopping once `window` are found
            if admitted(group[i]):
                before.append(group[i])
                if len(before) == window:
                    break
        for i in range(at + 1, len(group)):
            if admitted(group[i]):
                after.append(group[i])
                if len(after) == window:
                    break
        found[version] = [(before[d] if d < len(before) else None, after[d] if d < len(after) else None)
                          for d in range(window)]
    return found


class Store(ABC):
    """A backend's memories. One instance may be used from several threads; it serialises what it must."""

    sessions: SessionStore  # the same backend's chat sessions
    keeps_graph: bool = False  # whether it stores `ChangeSet.graph` and answers `graph` (an optional ability)

    @abstractmethod
    def bind_embedder(self, name: str, dimension: int) -> None:
        """Record the embedder on first use; raise EmbedderMismatch if the store holds another's vectors."""

    @abstractmethod
    def binding(self) -> tuple[str, int] | None:
        """(embedder name, dimension) recorded in the store, or None while unbound."""

    @abstractmethod
    def apply(self, changes: ChangeSet) -> list[MemoryRecord]:
        """Apply atomically. Return, for each insert in order, the record that now holds it: the inserted
        version, or (`dedup`) the current memory that already said the same. The store reads what the change
        set depends on inside its write and decides with `engram.stores.changes.check`, whose errors it raises
        (NotFound, Conflict, InvalidInput, StoreError), writing nothing; EmbedderMismatch if the store is now
        bound to another embedder (another handle reset it and wrote)."""

    @abstractmethod
    def get(self, memory_id: str) -> MemoryRecord | None:
        """The latest version of a memory (current, or the last one closed), or None."""

    @abstractmethod
    def find_hashes(self, scope: Scope, hashes: list[str]) -> dict[str, MemoryRecord]:
        """Current records in exactly this scope (all three fields equal) whose hash is in `hashes`, leaving out
        those expired now: their text may be stored again."""

    @abstractmethod
    def select(self, criteria: Criteria, limit: int | None = None) -> list[MemoryRecord]:
        """Records admitted by `criteria`, newest first."""

    @abstractmethod
    def dense(self, vector: np.ndarray, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        """Top-k admitted records by cosine similarity to `vector` (unit length), best first."""

    @abstractmethod
    def keyword(self, text: str, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        """Top-k admitted records by keyword relevance (higher is better), best first."""

    @abstractmethod
    def neighbours(self, versions: list[int], criteria: Criteria,
                   window: int) -> dict[int, list[tuple[MemoryRecord | None, MemoryRecord | None]]]:
        """For each version, the admitted records the same add() call wrote just before and just after it,
        nearest first: [(before, after) at distance 1, ..., window], None where there is none. (The turns
        around a message: search spreads part of a memory's score to them.)"""

    @abstractmethod
    def vectors(self, versions: list[int]) -> np.ndarray:
        """The stored vectors of these versions, in the same order."""

    def graph(self, criteria: Criteria) -> list[tuple[MemoryRecord, Graph]]:
        """The admitted versions that name entities, each with its graph (engram.graph), newest first. A backend
        keeping no graph raises StoreError (its writes drop `ChangeSet.graph`)."""
        raise StoreError(f"{type(self).__name__} keeps no graph")

    @contextmanager
    def graph_view(self, criteria: Criteria) -> Iterator[GraphView]:
        """The admitted versions' graphs, indexed for graph memory's reads (engram.graph_index), valid inside
        the `with`. This default indexes what `graph` returns on each read; a backend may keep an index across
        reads (SQLite keeps one per scope, grown by its writes, and holds its lock inside the `with`)."""
        yield GraphView.of(self.graph(criteria))

    def graphs(self, versions: list[int]) -> dict[int, Graph]:
        """The graph of each of these versions that has one (any version, current or closed): what an export
        carries."""
        raise StoreError(f"{type(self).__name__} keeps no graph")

    @abstractmethod
    def history(self, memory_id: str) -> list[Event]:
        """Every event of a memory, oldest first."""

    def all_events(self) -> list[Event]:
        """Every event of every memory, oldest first. This default reads each memory's history in turn; a backend
        that can list them in one pass does so."""
        memory_ids = dict.fromkeys(record.id for record, _vector in self.dump())
        return sorted((event for memory_id in memory_ids for event in self.history(memory_id)),
                      key=lambda event: event.seq or 0)

    @abstractmethod
    def batch(self, batch_id: str) -> list[Event]:
        """Every event written with this batch id, oldest first."""

    @abstractmethod
    def ids_with_prefix(self, prefix: str, *, kind: Literal["memory", "batch"] = "memory",
                        limit: int = 10) -> list[str]:
        """The distinct memory ids (of any version, current or closed) or batch ids (of history events) that
        start with `prefix` (no wildcards), sorted, at most `limit`: how a short id someone typed is found."""

    @abstractmethod
    def dump(self) -> Iterator[tuple[MemoryRecord, np.ndarray]]:
        """Every version with its vector (for export and migration)."""

    # What a browsing page reads. These defaults read every version (`dump`); a backend with indexes on ids and
    # users answers from them, in time that follows the memory's or the user's versions, not the store's.

    def versions(self, memory_id: str) -> list[MemoryRecord]:
        """Every version of a memory (current or closed) in the order they were written (by updated_at, then
        version: a backend's version numbers need not rise); [] for an unknown id."""
        return sorted((r for r, _ in self.dump() if r.id == memory_id), key=written_order)

    def owned(self, user_id: str) -> list[MemoryRecord]:
        """Every version (current or closed) of the memories whose user_id is `user_id`, with any agent or run."""
        return [r for r, _ in self.dump() if r.user_id == user_id]

    def user_stats(self) -> list[UserStats]:
        """Each user id that owns a version: its memories (distinct ids) current and in any state, and the last
        instant any of its versions was made, changed or closed; by user id."""
        return user_stats(r for r, _ in self.dump())

    @abstractmethod
    def reset(self) -> None:
        """Remove every memory, vector and event (the embedder binding too)."""

    @abstractmethod
    def close(self) -> None: ...
