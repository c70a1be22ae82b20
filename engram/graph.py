"""Graph memory, the pure part: entities and relations a memory version names, how names resolve, how to walk.

Each memory version carries its own small graph (the entities it names and the relations it states, with
canonical names); the scope's graph is the union over the versions a read admits. A relation therefore holds
exactly while the version it came from holds: closing, superseding or reverting a memory closes its relations,
and `as_of` reads the graph of that instant, with nothing to keep in step. Names resolve to a scope's existing
entities without an LLM: a normalised name or alias, a kin phrase ("User's sister") already tied to a name, or a
short form of exactly one person's name ("Mel" of "Melanie"); an ambiguous name stays an entity of its own.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

__all__ = ["Entity", "Graph", "Relation", "Resolver", "USER", "merge_entities", "named_in", "normal", "resolve", "walk"]

USER = "User"  # the entity every first-person fact is about
KINDS = ("person", "place", "organisation", "date", "thing")
_PUNCT = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")
MAX_NAME = 100


@lru_cache(maxsize=1 << 16)  # names repeat (every first-person fact names User): resolving reads each a few times
def normal(name: str) -> str:
    """The key two spellings of one name share: case-folded, punctuation and a leading "the" dropped."""
    key = _SPACES.sub(" ", _PUNCT.sub(" ", name)).strip().casefold()
    return key.removeprefix("the ")


def relation_name(text: str) -> str:
    """'Works at' -> 'works_at'."""
    return "_".join(normal(text).replace("'", "").split())


@dataclass(frozen=True)
class Entity:
    """Someone or something a memory names. `aliases`: other names used for it (never the name itself)."""

    name: str
    kind: str = "thing"
    aliases: tuple[str, ...] = ()

    def names(self) -> set[str]:
        return {normal(n) for n in (self.name, *self.aliases)} - {""}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "aliases": list(self.aliases)}


@dataclass(frozen=True)
class Relation:
    """`subject` --relation--> `object`, by entity names."""

    subject: str
    relation: str
    object: str

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "relation": self.relation, "object": self.object}


@dataclass(frozen=True)
class Graph:
    """The entities one memory version names and the relations it states (every relation's ends are entities)."""

    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entities or self.relations)

    def to_json(self) -> dict[str, Any]:
        return {"entities": [[e.name, e.kind, list(e.aliases)] for e in self.entities],
                "relations": [[r.subject, r.relation, r.object] for r in self.relations]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Graph:
        if not data:
            return cls()
        return cls(tuple(Entity(n, k, tuple(a)) for n, k, a in data.get("entities", ())),
                   tuple(Relation(s, r, o) for s, r, o in data.get("relations", ())))

    def names(self) -> set[str]:
        return {e.name for e in self.entities}


def build(entities: Iterable[Entity], relations: Iterable[Relation]) -> Graph:
    """A graph from possibly repeated entities and relations: one entity per name (aliases merged, the first
    specific kind kept), every relation's ends present, nothing repeated."""
    merged: dict[str, Entity] = {}
    for given in entities:
        name = given.name.strip()
        if not name or len(name) > MAX_NAME:
            continue
        merged[name] = _join(merged.get(name), given if name == given.name else Entity(name, given.kind, given.aliases))
    kept = [r for r in dict.fromkeys(relations) if r.subject in merged and r.object in merged and r.subject != r.object]
    return Graph(tuple(merged.values()), tuple(kept))


def _join(old: Entity | None, new: Entity) -> Entity:
    # The shortcuts return what the general case below would build: most entities have no aliases, and a bulk
    # import builds a few graphs for each of its texts
    if old is None:
        if not new.aliases:
            return new
        return Entity(new.name, new.kind, tuple(a for a in dict.fromkeys(new.aliases) if normal(a) != normal(new.name)))
    if not new.aliases and (old.kind != "thing" or new.kind == "thing"):
        return old
    kind = old.kind if old.kind != "thing" else new.kind
    aliases = tuple(a for a in dict.fromkeys((*old.aliases, *new.aliases)) if normal(a) != normal(old.name))
    return Entity(old.name, kind, aliases)


def merge_entities(graphs: Iterable[Graph]) -> list[tuple[Entity, int]]:
    """The scope's entities from its versions' graphs: one per name, aliases merged, the commonest specific
    kind, with how many versions name it; most named first."""
    found: dict[str, Entity] = {}
    kinds: dict[str, Counter[str]] = {}
    counts: Counter[str] = Counter()
    for graph in graphs:
        for entity in graph.entities:
            found[entity.name] = _join(found.get(entity.name), entity)
            kinds.setdefault(entity.name, Counter())[entity.kind] += 1
            counts[entity.name] += 1
    out = []
    for name, entity in found.items():
        specific = [(n, k) for k, n in kinds[name].items() if k != "thing"]
        kind = max(specific)[1] if specific else "thing"
        out.append((replace(entity, kind=kind), counts[name]))
    return sorted(out, key=lambda pair: (-pair[1], pair[0].name))


@dataclass
class _Index:
    """Known entities by every key they answer to."""

    by_key: dict[str, set[str]] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)  # single first names of persons -> canonical

    @classmethod
    def of(cls, known: Iterable[Entity]) -> _Index:
        index = cls()
        for entity in known:
            index.add(entity)
        return index

    def add(self, entity: Entity) -> None:
        for key in entity.names():
            self.by_key.setdefault(key, set()).add(entity.name)
        if entity.kind == "person":
            for name in (entity.name, *entity.aliases):
                first = normal(name).split(" ")[0] if normal(name) else ""
                if first and "'" not in first:
                    self.people.setdefault(first, entity.name)

    def find(self, entity: Entity) -> str | None:
        """The one known entity this one is, or None (unknown, or ambiguous)."""
        found: set[str] = set()
        for key in entity.names():
            found |= self.by_key.get(key, set())
        if len(found) == 1:
            return next(iter(found))
        if found or entity.kind not in ("person", "thing"):
            return None
        return self._short_form(normal(entity.name))

    def _short_form(self, key: str) -> str | None:
        """'Mel' for exactly one known 'Melanie' (or the reverse): a first name of three letters or more that
        begins another person's first name."""
        if " " in key or len(key) < 3:
            return None
        matches = {canonical for first, canonical in self.people.items() if first != key
                   and min(len(first), len(key)) >= 3 and (first.startswith(key) or key.startswith(first))}
        return next(iter(matches)) if len(matches) == 1 else None


def resolve(graph: Graph, known: Iterable[Entity]) -> Graph:
    """`graph` with each entity renamed to the known entity it is (its own name kept as an alias), the rest
    as they are; relations follow their ends' names. Entities of `graph` itself resolve against each other too
    (a name is known once an earlier entity of the same graph declared it)."""
    return Resolver(known).resolve(graph)


class Resolver:
    """`resolve` for graph after graph, each knowing the entities of those before it: one index of names, kept
    and grown, where building it again for every graph made a bulk write quadratic in its size."""

    def __init__(self, known: Iterable[Entity]) -> None:
        self._index = _Index.of(known)

    def resolve(self, graph: Graph) -> Graph:
        return _resolve(graph, self._index)


def _resolve(graph: Graph, index: _Index) -> Graph:
    renamed: dict[str, str] = {}
    out: list[Entity] = []
    for given in sorted(graph.entities, key=lambda e: (not e.aliases, e.kind == "thing")):
        canonical = index.find(given)
        entity = given
        if canonical is not None and canonical != given.name:
            entity = Entity(canonical, given.kind, (*given.aliases, given.name))
        renamed[given.name] = entity.name
        index.add(entity)
        out.append(entity)
    relations = [Relation(renamed.get(r.subject, r.subject), r.relation, renamed.get(r.object, r.object))
                 for r in graph.relations]
    return build(out, relations)


def walk(relations: Iterable[Relation], start: Iterable[str], hops: int) -> dict[str, int]:
    """Entity name -> its distance from `start` along relations (either direction), up to `hops`."""
    links: dict[str, set[str]] = {}
    for relation in relations:
        links.setdefault(relation.subject, set()).add(relation.object)
        links.setdefault(relation.object, set()).add(relation.subject)
    distance = dict.fromkeys(start, 0)
    queue = deque(distance)
    while queue:
        name = queue.popleft()
        if distance[name] >= hops:
            continue
        for other in sorted(links.get(name, ())):
            if other not in distance:
                distance[other] = distance[name] + 1
                queue.append(other)
    return distance


def lookup(name: str, entities: Iterable[Entity]) -> str | None:
    """The canonical name of the entity `name` names (by name or alias, else a short form), or None."""
    return _Index.of(entities).find(Entity(name.strip(), "thing"))


def named_in(text: str, entities: Iterable[Entity]) -> set[str]:
    """The entities whose name or an alias appears in `text` as whole words (case-insensitive); the user's own
    entity is left out (every first-person fact names it)."""
    words = f" {normal(text)} "
    found = set()
    for entity in entities:
        if entity.name == USER:
            continue
        if any(len(key) >= 3 and f" {key} " in words for key in entity.names()):
            found.add(entity.name)
    return found
