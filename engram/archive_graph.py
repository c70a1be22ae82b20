"""The graph part of a full export (engram.archive): a version line's `graph`, checked as strictly as the rest of
the file, and the graphs an export written before graphs were exported (format 1) is given on import.

A version's graph is written as `Graph.to_json` gives it: `{"entities": [[name, kind, [aliases...]], ...],
"relations": [[subject, relation, object], ...]}`, each relation's ends among the entities' names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engram.errors import InvalidInput
from engram.graph import KINDS, MAX_NAME, Entity, Graph, Relation, merge_entities, resolve
from engram.graph_rules import graph_of
from engram.inputs import check_string
from engram.types import MemoryRecord, Scope

__all__ = ["check_graph", "rules_graphs"]

_FIELDS = {"entities", "relations"}


def check_graph(value: Any) -> Graph:
    """A version line's `graph` as a Graph (empty when it names nothing), or InvalidInput saying what is wrong."""
    if not isinstance(value, dict):
        raise InvalidInput("graph must be an object with entities and relations")
    if set(value) - _FIELDS:
        raise InvalidInput(f"unknown graph field(s) {sorted(set(value) - _FIELDS)} (written by a newer engram?)")
    entities, relations = value.get("entities"), value.get("relations")
    if not isinstance(entities, list) or not isinstance(relations, list):
        raise InvalidInput("graph needs a list of entities and a list of relations")
    checked = [_entity(entity) for entity in entities]
    names = [entity.name for entity in checked]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InvalidInput(f"graph names entity {twice[0]!r} twice")
    return Graph(tuple(checked), tuple(_relation(relation, set(names)) for relation in relations))


def _entity(value: Any) -> Entity:
    if not isinstance(value, list) or len(value) != 3:
        raise InvalidInput("an entity is [name, kind, aliases]")
    name, kind, aliases = value
    if kind not in KINDS:
        raise InvalidInput(f"entity {name!r}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(aliases, list):
        raise InvalidInput(f"entity {name!r}: aliases must be a list of strings")
    return Entity(_name(name, "entity name"), kind, tuple(_name(alias, "an alias") for alias in aliases))


def _relation(value: Any, names: set[str]) -> Relation:
    if not isinstance(value, list) or len(value) != 3:
        raise InvalidInput("a relation is [subject, relation, object]")
    subject, relation, obj = value
    for end in (subject, obj):
        if end not in names:
            raise InvalidInput(f"relation {value!r}: {end!r} is not one of its entities")
    return Relation(subject, _name(relation, "a relation's name"), obj)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip() or len(value) > MAX_NAME:
        raise InvalidInput(f"{what} must be a non-empty string of at most {MAX_NAME} characters without "
                           f"surrounding spaces, not {value!r}"[:300])
    return check_string(value, what)


def rules_graphs(records: Iterable[MemoryRecord]) -> dict[int, Graph]:
    """Each version's graph as add(infer=False) makes one, for an export that carries none: the rules' entities
    and relations of its text, names resolved against those of the earlier versions of its scope."""
    known: dict[Scope, tuple[Entity, ...]] = {}  # merged, as add() reads them: one entity per name
    found: dict[int, Graph] = {}
    for record in sorted(records, key=lambda r: r.version or 0):
        held = known.get(record.scope, ())
        graph = resolve(graph_of(record.text), held)
        if graph and record.version is not None:
            found[record.version] = graph
            known[record.scope] = tuple(e for e, _ in merge_entities([Graph(held), graph]))
    return found
