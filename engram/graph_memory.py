"""Graph memory over a store: the graph a write adds, the entities of a scope, what is related to one, and the
memories a query's entities bring into search. Reads go through `Store.graph_view` (engram.graph_index, which a
store may keep across reads); decisions are engram.graph's."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from engram.errors import NotFound
from engram.graph import USER, Entity, EntityIndex, Graph, Layers, resolve
from engram.graph_alias import AliasMatcher
from engram.graph_rules import graph_of
from engram.stores.base import ChangeSet, Criteria, Store
from engram.types import MemoryRecord, Scope

__all__ = ["add_graph", "entities", "known_entities", "linked", "related", "scope_graph"]

Triplets = Iterable[tuple[str, str, str]]


def add_graph(changes: ChangeSet, store: Store, scope: Scope, triplets: Mapping[str, Triplets] | None = None,
              aliases: AliasMatcher | None = None, rules: Mapping[str, Graph] | None = None) -> None:
    """Give each current insert of `changes` its graph: the LLM's triplets for its text (`triplets`), completed
    by rules (found already for the texts of `rules`: engram.ahead), names resolved against the entities the
    scope holds and those of the inserts before it; with `aliases`, also by similarity (the names it compares
    are embedded first, in one call, outside the store's lock)."""
    if not store.keeps_graph or not changes.inserts:
        return
    rules = rules or {}
    given = {i: graph_of(record.text, (triplets or {}).get(record.text, ()), rules.get(record.text))
             for i, (record, _) in enumerate(changes.inserts) if record.valid_to is None}
    criteria = Criteria(scope)
    if aliases is not None:
        with store.graph_view(criteria) as view:
            wanted = aliases.wanted(view, given.values())
        aliases.vectors.fill(wanted)
    with store.graph_view(criteria) as view:
        earlier = EntityIndex()
        known = Layers(view, earlier)
        for i, graph in given.items():
            resolved = resolve(graph, known, aliases)
            if resolved:
                changes.graph[i] = resolved
                earlier.extend(resolved.entities)


def entities(store: Store, criteria: Criteria) -> list[dict[str, Any]]:
    """The entities the admitted memories name: name, kind, aliases and how many memories name it."""
    with store.graph_view(criteria) as view:
        return [{**entity.to_dict(), "memories": count} for entity, count in view.entities()]


def related(store: Store, criteria: Criteria, name: str, hops: int) -> dict[str, Any]:
    """The entity `name` names (by name, alias or short form), the entities within `hops` relations of it, the
    relations between them, and the memories those relations and mentions come from."""
    with store.graph_view(criteria) as view:
        canonical = view.lookup(name)
        if canonical is None:
            raise NotFound(f"no entity {name!r} in this scope")
        distance = view.walk([canonical], hops)
        relations: list[dict[str, Any]] = []
        memories: dict[int, MemoryRecord] = {}
        for row in view.linking(set(distance), canonical):
            record, graph = view.records[row], view.index.graphs[row]
            for relation in graph.relations:
                if relation.subject in distance and relation.object in distance:
                    relations.append({**relation.to_dict(), "memory_id": record.id, "memory": record.text})
                    memories[record.version] = record
            if canonical in graph.names():
                memories[record.version] = record
        found = {n: view.entity(n) for n in distance}
    return {
        "entity": found[canonical].to_dict(),
        "entities": [{**found[n].to_dict(), "distance": d}
                     for n, d in sorted(distance.items(), key=lambda pair: (pair[1], pair[0]))],
        "relations": relations,
        "memories": [r.to_dict() for r in memories.values()],
    }


def linked(store: Store, criteria: Criteria, query: str, hops: int,
           among: Collection[int] | None = None) -> dict[int, tuple[MemoryRecord, float]]:
    """The memories the query's entities link to search, by version, with how strongly: 1 for a memory naming an
    entity the query names, 1/(1+d) for one naming an entity d relations away from one. `among`: only these
    versions (search's candidates), whatever the number of memories naming those entities."""
    with store.graph_view(criteria) as view:
        start = view.named_in(query)
        if not start:
            return {}
        distance = view.walk(start, hops)
        distance.pop(USER, None)  # nearly every memory is about the user: reaching them brings no one in particular
        rows = view.naming(distance) if among is None else view.nearest(distance, among)
        return {view.records[row].version: (view.records[row], 1.0 / (1 + d))  # type: ignore[misc]
                for row, d in rows}


def known_entities(store: Store, criteria: Criteria) -> list[Entity]:
    """The entities the admitted memories name, merged."""
    with store.graph_view(criteria) as view:
        return [entity for entity, _ in view.entities()]


def scope_graph(store: Store, criteria: Criteria) -> dict[str, Any]:
    """The whole graph of the admitted memories: their entities (as `entities` gives them) and every relation
    they state, each with the memory it comes from."""
    with store.graph_view(criteria) as view:
        return {"entities": [{**entity.to_dict(), "memories": count} for entity, count in view.entities()],
                "relations": [{**relation.to_dict(), "memory_id": record.id, "memory": record.text}
                              for record, graph in view.admitted() for relation in graph.relations]}
