"""Copy every memory (all versions, with vectors and graphs), its history and every chat session from one store to
another, e.g. SQLite <-> Qdrant <-> files, an export file into a store (engram.archive), or a store into one bound
to another embedder (re-embedding).

Memories move in chunks. Each chunk is two `apply`s on the target: first the versions, each with its graph (so a
killed migration leaves whole memories: every version of a memory or none), then their events, whose old/new
versions must name the versions the target just assigned. A version is recognised in both stores by (memory id,
hash, valid_from, updated_at) and an event by (op, batch, time, texts), so running the migration again copies only
what is missing (events too, if it was killed between the two applies) and brings the validity of versions copied
earlier up to date (a memory deleted or reverted in the source since). Sessions follow, each copied whole and
recognised by owner and id, their turns by role, text and time. A copy is a copy: exact duplicates are not folded. A
version's graph is checked too at the end: the target's copy of each version must state the same graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from engram.embed.base import Embedder
from engram.errors import InvalidInput, StoreError
from engram.graph import Graph
from engram.stores.base import ChangeSet, Close, Session, Store
from engram.types import Event, MemoryRecord, Turn

__all__ = ["Source", "migrate"]

Key = tuple[str, str, float, float]
Progress = Callable[[int, int], None]  # (memories done so far, memories in all)


class Sessions(Protocol):
    """The chat sessions a migration copies (a store's `sessions`)."""

    def dump(self) -> Iterable[tuple[Session, list[Turn]]]: ...


class Source(Protocol):
    """What a migration reads: a Store, or anything holding a store's contents (an export file)."""

    @property
    def sessions(self) -> Sessions: ...
    def binding(self) -> tuple[str, int] | None: ...
    def bind_embedder(self, name: str, dimension: int) -> None: ...
    def dump(self) -> Iterator[tuple[MemoryRecord, np.ndarray]]: ...
    def vectors(self, versions: list[int]) -> np.ndarray: ...
    def all_events(self) -> list[Event]: ...
    @property
    def keeps_graph(self) -> bool: ...
    def graphs(self, versions: list[int]) -> dict[int, Graph]: ...


def _key(record: MemoryRecord) -> Key:
    return (record.id, record.hash, record.valid_from, record.updated_at)


def _event_key(event: Event) -> tuple[Any, ...]:
    return (event.op, event.batch_id, event.created_at, event.old_text, event.new_text)


def migrate(source: Source, target: Store, progress: Progress | None = None, resume: bool = True, *,
            embedder: tuple[str, int] | None = None, chunk: int = 200, keep_ids: bool = False,
            reembed: Embedder | None = None) -> dict[str, int]:
    """Copy `source` into `target`; return counts. `embedder` (name, dimension) is checked against both stores;
    it defaults to the source's binding when the source can tell it. With resume=False the target must be empty.
    `keep_ids`: versions and history places stay as the source has them (a restore) when the target is empty or
    holds only an earlier run of this copy; otherwise the target assigns its own. `reembed`: the target is bound
    to this embedder and every version's vector is made by it from the version's text, instead of copied.
    Raises StoreError if, at the end, the target lacks any version, event, graph or chat turn of the source."""
    if chunk <= 0:
        raise InvalidInput(f"chunk must be a positive integer, got {chunk!r}")
    name, dimension = _binding(source, embedder)
    source.bind_embedder(name, dimension)  # EmbedderMismatch if the source holds another embedder's vectors
    target.bind_embedder(*((reembed.name, reembed.dimension) if reembed is not None else (name, dimension)))
    versions: dict[str, list[MemoryRecord]] = {}
    for record, _vector in source.dump():
        versions.setdefault(record.id, []).append(record)
    there = {_key(record): record for record, _vector in target.dump()}
    if there and not resume:
        raise InvalidInput("the target store is not empty; pass resume=True to continue an earlier migration")
    mine = {_key(r): r.version for group in versions.values() for r in group}
    keep = keep_ids and all(mine.get(key) == record.version for key, record in there.items())
    history = _histories(source, versions)
    known = _histories(target, {key[0] for key in there})  # only memories with versions there can have events
    counts = dict.fromkeys(["copied_versions", "updated_versions", "copied_events"], 0)
    make = _vectors(source, reembed)
    ids = list(versions)
    for start in range(0, len(ids), chunk):
        group = [versions[memory_id] for memory_id in ids[start:start + chunk]]
        _copy_versions(make, _graphs(source, target), target, group, there, counts, keep)
        _copy_events(target, group, history, known, there, counts, keep)
        if progress is not None:
            progress(min(start + chunk, len(ids)), len(ids))
    sessions = list(source.sessions.dump())
    counts["copied_turns"] = sum(target.sessions.put(session, turns) for session, turns in sessions)
    counts.update(_verify(source, target, versions, history, sessions))
    return counts


def _binding(source: Source, embedder: tuple[str, int] | None) -> tuple[str, int]:
    if embedder is not None:
        return embedder
    found = source.binding()
    if found is None:
        raise InvalidInput("cannot tell which embedder made the source store's vectors; "
                           "pass embedder=(name, dimension)")
    return found


def _vectors(source: Source, reembed: Embedder | None) -> Callable[[list[MemoryRecord]], np.ndarray]:
    """The target's vectors for versions: the source's, or the new embedder's (each distinct text once)."""
    if reembed is None:
        return lambda records: source.vectors([r.version for r in records])  # type: ignore[misc]

    def embed(records: list[MemoryRecord]) -> np.ndarray:
        texts = {r.hash: r.text for r in records}
        made = dict(zip(texts, reembed.embed(list(texts.values())), strict=True))
        return np.stack([made[r.hash] for r in records])

    return embed


def _graphs(source: Source, target: Store) -> Callable[[list[MemoryRecord]], dict[int, Graph]]:
    """The source's graphs of versions, by source version (none when either store keeps no graph)."""
    if not (source.keeps_graph and target.keeps_graph):
        return lambda records: {}
    return lambda records: source.graphs([r.version for r in records])  # type: ignore[misc]


def _histories(store: Source, memory_ids: Iterable[str]) -> dict[str, list[Event]]:
    """Each memory's events, oldest first, read in one pass."""
    wanted = set(memory_ids)
    found: dict[str, list[Event]] = {}
    for event in store.all_events():
        if event.memory_id in wanted:
            found.setdefault(event.memory_id, []).append(event)
    return found


def _copy_versions(make: Callable[[list[MemoryRecord]], np.ndarray],
                   graphs_of: Callable[[list[MemoryRecord]], dict[int, Graph]], target: Store,
                   group: list[list[MemoryRecord]], there: dict[Key, MemoryRecord], counts: dict[str, int],
                   keep: bool) -> None:
    changes, missing = ChangeSet(dedup=False, keep_versions=keep), []
    for mine in group:
        for record in mine:
            copied = there.get(_key(record))
            if copied is None:
                missing.append(record)
            elif copied.is_current and not record.is_current:
                changes.closes.append(Close(record.id, record.valid_to, record.superseded_by,  # type: ignore[arg-type]
                                            version=copied.version))
            elif not copied.is_current and record.is_current:
                changes.reopens.append(copied.version)  # type: ignore[arg-type]
    counts["updated_versions"] += len(changes.closes) + len(changes.reopens)
    if missing:
        changes.inserts = [(r if keep else replace(r, version=None), v)
                           for r, v in zip(missing, make(missing), strict=True)]
        graphs = graphs_of(missing)  # the graph goes with its version, whatever version number the target gives
        changes.graph = {i: graphs[r.version] for i, r in enumerate(missing) if r.version in graphs}
    if changes:
        inserted = target.apply(changes)
        there.update((_key(record), record) for record in inserted)  # what the events' versions map to
        counts["copied_versions"] += len(inserted)


def _copy_events(target: Store, group: list[list[MemoryRecord]], history: dict[str, list[Event]],
                 known: dict[str, list[Event]], there: dict[Key, MemoryRecord], counts: dict[str, int],
                 keep: bool) -> None:
    events = []
    for mine in group:
        theirs = {r.version: there[_key(r)].version for r in mine}  # source version -> target version
        copied = {_event_key(e) for e in known.get(mine[0].id, ())}
        for event in history.get(mine[0].id, ()):
            if _event_key(event) in copied:
                continue
            # a version the source no longer has maps to nothing rather than to a wrong target version
            events.append(replace(event, seq=event.seq if keep else None,
                                  old_version=theirs.get(event.old_version) if event.old_version else None,
                                  new_version=theirs.get(event.new_version) if event.new_version else None))
    if events:
        target.apply(ChangeSet(events=events, keep_versions=keep))
        counts["copied_events"] += len(events)


def _verify(source: Source, target: Store, versions: dict[str, list[MemoryRecord]], history: dict[str, list[Event]],
            sessions: list[tuple[Session, list[Turn]]]) -> dict[str, int]:
    """Every source version, event, graph and chat turn is in the target, with the same current versions; else
    StoreError."""
    copies = {_key(record): record for record, _vector in target.dump()}
    there = {key: record.is_current for key, record in copies.items()}
    wanted = {_key(r): r.is_current for mine in versions.values() for r in mine}
    lost = [key for key in wanted if key not in there]
    differ = [key for key in wanted if key in there and there[key] != wanted[key]]
    copied = _histories(target, versions)
    events = sum(map(len, history.values()))
    missing_events = sum(len({_event_key(e) for e in mine} - {_event_key(e) for e in copied.get(memory_id, ())})
                         for memory_id, mine in history.items())
    held = {(s.scope, s.id): {(t.role, t.content, t.created_at) for t in turns} for s, turns in target.sessions.dump()}
    missing_turns = sum(len({(t.role, t.content, t.created_at) for t in turns} - held.get((s.scope, s.id), set()))
                        for s, turns in sessions)
    if lost or differ or missing_events or missing_turns:
        raise StoreError(f"migration incomplete: {len(lost)} version(s) missing, {len(differ)} with another "
                         f"validity, {missing_events} event(s) and {missing_turns} chat turn(s) missing in the target "
                         f"(first: {(lost + differ)[:3]}); run it again to resume")
    return {"memories": len(versions), "versions": len(wanted), "events": events, "sessions": len(sessions),
            "turns": sum(len(turns) for _, turns in sessions),
            "graphs": _verify_graphs(source, target, versions, copies)}


def _verify_graphs(source: Source, target: Store, versions: dict[str, list[MemoryRecord]],
                   copies: dict[Key, MemoryRecord]) -> int:
    """How many source versions have a graph; StoreError if the target's copy of any has another graph (or none)."""
    if not (source.keeps_graph and target.keeps_graph):
        return 0
    wanted = source.graphs([r.version for mine in versions.values() for r in mine])  # type: ignore[misc]
    mine = {r.version: copies[_key(r)].version for group in versions.values() for r in group}
    held = target.graphs([v for v in mine.values() if v is not None])
    differ = [v for v in mine if _facts(wanted.get(v)) != _facts(held.get(mine[v]))]  # type: ignore[arg-type]
    if differ:
        raise StoreError(f"migration incomplete: the target's copies of {len(differ)} version(s) hold another graph "
                         f"than the source's (first source versions: {differ[:3]}); the target held them from a "
                         "copy made without graphs: copy into an empty store")
    return len(wanted)


def _facts(graph: Graph | None) -> tuple[frozenset, frozenset]:
    """What a graph states, whatever the order a store gives it back in."""
    return (frozenset(graph.entities), frozenset(graph.relations)) if graph else (frozenset(), frozenset())
