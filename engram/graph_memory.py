"""Graph memory over a store: the graph a write adds, the entities of a scope, what is related to one, and the
memories a query's entities bring into search. Reads go through `Store.graph`; decisions are engram.graph's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engram.errors import NotFound
from engram.graph import USER, Entity, Graph, Relation, Resolver, lookup, merge_entities, named_in, walk
from engram.graph_rules import graph_of
from engram.stores.base import ChangeSet, Criteria, Store
from engram.types import MemoryRecord, Scope

__all__ = ["add_graph", "entities", "known_entities", "linked", "names_of", "related", "scope_graph"]

Triplets = Iterable[tuple[str, str, str]]


def add_graph(changes: ChangeSet, store: Store, scope: Scope, triplets: Mapping[str, Triplets] | None = None,
              names: Resolver | None = None) -> None:
    """Give each current insert of `changes` its graph: the LLM's triplets for its text (`triplets`), completed
    by rules, names resolved against the entities the scope holds and those of the inserts before it. `names`:
    the scope's names as `names_of` read them before and the writes since added (an import's writes of one
    scope), instead of reading them all again for each write."""
    if not store.keeps_graph or not changes.inserts:
        return
    resolver = names if names is not None else names_of(store, scope)  # learns each insert's entities as it goes
    for i, (record, _) in enumerate(changes.inserts):
        if record.valid_to is not None:
            continue
        graph = resolver.resolve(graph_of(record.text, (triplets or {}).get(record.text, ())))
        if graph:
            changes.graph[i] = graph


def entities(store: Store, criteria: Criteria) -> list[dict[str, Any]]:
    """The entities the admitted memories name: name, kind, aliases and how many memories name it."""
    return [{**entity.to_dict(), "memories": count}
            for entity, count in merge_entities(g for _, g in store.graph(criteria))]


def related(store: Store, criteria: Criteria, name: str, hops: int) -> dict[str, Any]:
    """The entity `name` names (by name, alias or short form), the entities within `hops` relations of it, the
    relations between them, and the memories those relations and mentions come from."""
    found = store.graph(criteria)
    known = _known(found)
    canonical = lookup(name, known)
    if canonical is None:
        raise NotFound(f"no entity {name!r} in this scope")
    distance = walk(_relations(found), [canonical], hops)
    by_name = {entity.name: entity for entity in known}
    relations: list[dict[str, Any]] = []
    memories: dict[int, MemoryRecord] = {}
    for record, graph in found:
        for relation in graph.relations:
            if relation.subject in distance and relation.object in distance:
                relations.append({**relation.to_dict(), "memory_id": record.id, "memory": record.text})
                memories[record.version] = record  # type: ignore[index]
        if canonical in graph.names():
            memories[record.version] = record  # type: ignore[index]
    return {
        "entity": by_name[canonical].to_dict(),
        "entities": [{**by_name[n].to_dict(), "distance": d}
                     for n, d in sorted(distance.items(), key=lambda pair: (pair[1], pair[0]))],
        "relations": relations,
        "memories": [r.to_dict() for r in memories.values()],
    }


def linked(store: Store, criteria: Criteria, query: str, hops: int) -> dict[int, tuple[MemoryRecord, float]]:
    """The memories the query's entities bring into search, by version, with how strongly: 1 for a memory
    naming an entity the query names, 1/(1+d) for one naming an entity d relations away from one."""
    found = store.graph(criteria)
    if not found:
        return {}
    known = _known(found)
    start = named_in(query, known)
    if not start:
        return {}
    distance = walk(_relations(found), start, hops)
    distance.pop(USER, None)  # nearly every memory is about the user: reaching them brings no one in particular
    out: dict[int, tuple[MemoryRecord, float]] = {}
    for record, graph in found:
        near = [distance[n] for n in graph.names() if n in distance]
        if near:
            out[record.version] = (record, 1.0 / (1 + min(near)))  # type: ignore[index]
    return out


def _relations(found: Iterable[tuple[MemoryRecord, Graph]]) -> list[Relation]:
    return [r for _, g in found for r in g.relations]


def _known(found: Iterable[tuple[MemoryRecord, Graph]]) -> list[Entity]:
    return [entity for entity, _ in merge_entities(g for _, g in found)]


def names_of(store: Store, scope: Scope) -> Resolver:
    """The names of the entities the scope's current memories name, to resolve new ones against."""
    return Resolver(known_entities(store, Criteria(scope)) if store.keeps_graph else ())


def known_entities(store: Store, criteria: Criteria) -> list[Entity]:
    """The entities the admitted memories name, merged."""
    return _known(store.graph(criteria))


def scope_graph(store: Store, criteria: Criteria) -> dict[str, Any]:
    """The whole graph of the admitted memories: their entities (as `entities` gives them) and every relation
    they state, each with the memory it comes from."""
    found = store.graph(criteria)
    return {"entities": [{**entity.to_dict(), "memories": count}
                         for entity, count in merge_entities(g for _, g in found)],
            "relations": [{**relation.to_dict(), "memory_id": record.id, "memory": record.text}
                          for record, graph in found for relation in graph.relations]}
