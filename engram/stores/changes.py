"""What a change set may do, given what the store holds: the one decision every store makes inside its write.

A store reads, inside its write (SQLite's transaction, Qdrant's journal check), the `State` this module asks
for (`wanted_ids`, `wanted_twins`), then calls `check(changes, state)`, which writes nothing and either returns
what to write (`Checked`) or raises:

- NotFound: a close names a memory with no current version (or the same memory twice), a reopen a version the
  store does not hold, `saved` a session the scope has not started;
- Conflict: a close's `version` is no longer the current one (the guard of a compare-and-set), or a new
  version the rest of the change set depends on would duplicate another current memory;
- InvalidInput: the write breaks the ownership rule (`engram.ownership.check_write`);
- StoreError: a memory would have two current versions, a kept version is taken, a vector has the wrong size.

Closes are decided first, then reopens, then inserts, as the store applies them: a memory closed by the change
set is no duplicate of anything, and a version it reopens is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from engram.errors import Conflict, NotFound, StoreError
from engram.ownership import check_write
from engram.stores.base import ChangeSet, Close
from engram.types import Event, MemoryRecord, Scope, evolve

__all__ = ["Checked", "State", "TwoCurrent", "check", "wanted_ids", "wanted_twins", "with_versions"]


class TwoCurrent(StoreError):
    """The change set would leave a memory with two current versions."""


@dataclass(frozen=True)
class State:
    """What a change set's check reads inside the write, as the store holds it before the change set."""

    current: Mapping[str, MemoryRecord]  # by memory id: the current version of each id `wanted_ids` names
    reopened: Mapping[int, MemoryRecord]  # by version: each version the change set reopens that the store holds
    twins: Mapping[tuple[Scope, str], MemoryRecord]  # by (exact scope, hash): the current, unexpired memory
    at: float  # now: expiry is judged at this instant
    dimension: int = 0  # the bound vector dimension (checked when there are inserts)
    taken: frozenset[int] = frozenset()  # versions a `keep_versions` insert names that the store already holds
    session: bool = True  # the session `changes.saved` names exists in its scope


@dataclass(frozen=True)
class Checked:
    """What to write, in this order: closes, reopens, the inserts at `kept`, `events`."""

    closes: list[tuple[Close, MemoryRecord, MemoryRecord]]  # (the close, the version as read, as it ends)
    reopens: list[MemoryRecord]  # each reopened version as it will be (current)
    twins: dict[int, MemoryRecord]  # insert index -> the current memory already saying it (nothing written)
    kept: list[int]  # the indexes of the inserts to write
    events: list[Event] = field(default_factory=list)  # a skipped duplicate's events go with it

    @property
    def closed(self) -> dict[str, MemoryRecord]:
        """Each closed memory's version as read, by memory id."""
        return {before.id: before for _, before, _ in self.closes}


def wanted_ids(changes: ChangeSet, reopened: Mapping[int, MemoryRecord]) -> list[str]:
    """The memory ids whose current version `State.current` must hold: closed, inserted and reopened ones."""
    ids = {c.memory_id for c in changes.closes} | {r.id for r, _ in changes.inserts} | {r.id for r in reopened.values()}
    return sorted(ids)


def wanted_twins(changes: ChangeSet, at: float) -> dict[Scope, list[str]]:
    """Per exact scope, the hashes whose current, unexpired memories `State.twins` must hold (none without
    `dedup`). An insert that is not current, or already expired, duplicates nothing."""
    wanted: dict[tuple[str | None, str | None, str | None], set[str]] = {}  # by owner: one Scope made for each
    if changes.dedup:
        for record, _ in changes.inserts:
            if record.valid_to is None and not record.expired_by(at):
                wanted.setdefault((record.user_id, record.agent_id, record.run_id), set()).add(record.hash)
    return {Scope(*owner): sorted(hashes) for owner, hashes in wanted.items()}


def check(changes: ChangeSet, state: State) -> Checked:
    """Decide `changes` against `state`; raise (see the module) when it must not be written."""
    closes = _closes(changes.closes, state.current)
    closed = {before.id for _, before, _ in closes}
    live = set(state.current) - closed  # memories with a current version once the closes are done
    reopens = _reopens(changes.reopens, state.reopened, live)
    referenced = closed | {c.superseded_by for c in changes.closes if c.superseded_by}
    twins = _duplicates(changes, state, closed, reopens, referenced) if changes.dedup else {}
    kept = [i for i in range(len(changes.inserts)) if i not in twins]
    check_write(changes.owner, {before.id: before for _, before, _ in closes}, [changes.inserts[i][0] for i in kept])
    _check_inserts(changes, state, kept, live)
    if changes.saved is not None and not state.session:
        raise NotFound(f"no session {changes.saved[0]!r} in this scope")
    skipped = {changes.inserts[i][0].id for i in twins}
    return Checked(closes, reopens, twins, kept, [e for e in changes.events if e.memory_id not in skipped])


def with_versions(event: Event, closed: Mapping[str, MemoryRecord], inserted: Mapping[str, int]) -> Event:
    """The event with its old / new version filled, where not given, from what the change set closed and
    inserted for its memory."""
    old = closed.get(event.memory_id)
    return evolve(event, old_version=event.old_version or (old.version if old else None),
                  new_version=event.new_version or inserted.get(event.memory_id))


def _closes(closes: list[Close], current: Mapping[str, MemoryRecord]) -> list[tuple[Close, MemoryRecord, MemoryRecord]]:
    decided: list[tuple[Close, MemoryRecord, MemoryRecord]] = []
    seen: set[str] = set()
    for close in closes:
        record = current.get(close.memory_id)
        if record is None or close.memory_id in seen:
            raise NotFound(f"memory {close.memory_id} has no current version")
        if close.version is not None and record.version != close.version:
            raise Conflict(f"memory {close.memory_id} changed: version {close.version} is no longer the current one")
        seen.add(close.memory_id)
        ended = replace(record, valid_to=max(close.valid_to, record.valid_from), superseded_by=close.superseded_by)
        decided.append((close, record, ended))
    return decided


def _reopens(versions: list[int], reopened: Mapping[int, MemoryRecord], live: set[str]) -> list[MemoryRecord]:
    decided = []
    for version in versions:
        record = reopened.get(version)
        if record is None:
            raise NotFound(f"no version {version} to reopen")
        if record.id in live:
            raise TwoCurrent(f"memory {record.id} already has a current version; cannot reopen {version}")
        live.add(record.id)
        decided.append(replace(record, valid_to=None, superseded_by=None))
    return decided


def _duplicates(changes: ChangeSet, state: State, closed: set[str], reopens: list[MemoryRecord],
                referenced: set[str]) -> dict[int, MemoryRecord]:
    """Which inserts (by index) say what a current memory of exactly their scope says. A duplicate the rest of
    the change set depends on (its id referenced: a new version of a closed memory, or a successor named by a
    close) raises Conflict: its writer decided on a state that no longer holds."""
    known = {key: record for key, record in state.twins.items() if record.id not in closed}
    for record in reopens:
        if not record.expired_by(state.at):
            known.setdefault((record.scope, record.hash), record)
    found: dict[int, MemoryRecord] = {}
    for i, (record, _) in enumerate(changes.inserts):
        if record.valid_to is not None or record.expired_by(state.at):
            continue
        twin = known.get((record.scope, record.hash))
        if twin is None or twin.id == record.id:
            continue
        if record.id in referenced:
            raise Conflict(f"memory {twin.id} already says {twin.text!r}; memory {record.id} cannot say it too")
        found[i] = twin
    return found


def _check_inserts(changes: ChangeSet, state: State, kept: list[int], live: set[str]) -> None:
    for _, vector in changes.inserts:
        size = np.asarray(vector).size
        if size != state.dimension:
            raise StoreError(f"vector of dimension {size} given to a store bound to {state.dimension}")
    if changes.keep_versions and state.taken:
        raise StoreError(f"cannot keep versions {sorted(state.taken)[:3]}: already taken")
    for i in kept:
        record = changes.inserts[i][0]
        if record.valid_to is None:
            if record.id in live:
                raise TwoCurrent(f"memory {record.id} already has a current version")
            live.add(record.id)
