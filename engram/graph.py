"""Graph memory, the pure part: entities and relations a memory version names, how names resolve, how to walk.

Each memory version carries its own small graph (the entities it names and the relations it states, with
canonical names); the scope's graph is the union over the versions a read admits. A relation therefore holds
exactly while the version it came from holds: closing, superseding or reverting a memory closes its relations,
and `as_of` reads the graph of that instant, with nothing to keep in step. Names resolve to a scope's existing
entities without an LLM: a normalised name or alias, a kin phrase ("User's sister") already tied to a name, a
short form of exactly one person's name ("Mel" of "Melanie"), then similarity (`pick_alias`: the embedding of the
name, or its spelling); an ambiguous name stays an entity of its own.

`merge_entities`, `named_in` and `walk` over lists are the reference semantics of reading a scope's graph;
engram.graph_index answers the same from an index kept across reads.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

__all__ = ["Entity", "EntityIndex", "Graph", "KnownEntities", "Layers", "Relation", "USER", "find", "lookup",
           "merge_entities", "named_in", "normal", "pick_alias", "resolve", "spelling", "walk"]

USER = "User"  # the entity every first-person fact is about
KINDS = ("person", "place", "organisation", "date", "thing")
_PUNCT = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")
MAX_NAME = 100


@lru_cache(maxsize=1 << 16)  # names recur: a scope's people, places and months, in write after write
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
    for entity in entities:
        name = entity.name.strip()
        if not name or len(name) > MAX_NAME:
            continue
        merged[name] = _join(merged.get(name), entity if name == entity.name else Entity(name, entity.kind,
                                                                                         entity.aliases))
    kept = [r for r in dict.fromkeys(relations) if r.subject in merged and r.object in merged and r.subject != r.object]
    return Graph(tuple(merged.values()), tuple(kept))


def _join(old: Entity | None, new: Entity) -> Entity:
    if old is None:
        if not new.aliases:
            return new
        return Entity(new.name, new.kind, tuple(a for a in dict.fromkeys(new.aliases) if normal(a) != normal(new.name)))
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


class KnownEntities(ABC):
    """The entities names resolve against, by the keys they answer to: a list of entities (`EntityIndex`), or a
    store scope's admitted graphs (engram.graph_index.GraphView), which answers the same without listing them."""

    @abstractmethod
    def holders(self, key: str) -> set[str]:
        """The known entities that answer to `key` (a normal() form of a name or alias)."""

    @abstractmethod
    def person(self, first: str) -> str | None:
        """The known person that a first name stands for: of the persons whose name or an alias begins with
        `first`, the one named by the most memories (then by name)."""

    @abstractmethod
    def firsts(self, key: str) -> set[str]:
        """The first names of known persons, other than `key`, that begin `key` or that `key` begins (both of
        three letters or more): the names `key` may be a short form of, or the long form."""

    @abstractmethod
    def surfaces(self, kind: str) -> list[tuple[str, str]]:
        """(key, entity) pairs of the known entities that may be of `kind`: a superset, checked with `admits`."""

    @abstractmethod
    def admits(self, key: str, name: str, kind: str) -> bool:
        """Whether the known entity `name` is of `kind` and answers to `key`."""


class EntityIndex(KnownEntities):
    """Known entities from a list, in its order (the first person with a first name keeps it); `add` grows it."""

    def __init__(self) -> None:
        self.by_key: dict[str, set[str]] = {}
        self.people: dict[str, str] = {}  # single first names of persons -> canonical
        self.kinds: dict[str, set[str]] = {}

    @classmethod
    def of(cls, known: Iterable[Entity]) -> EntityIndex:
        index = cls()
        index.extend(known)
        return index

    def extend(self, entities: Iterable[Entity]) -> None:
        for entity in entities:
            self.add(entity)

    def add(self, entity: Entity) -> None:
        for key in entity.names():
            self.by_key.setdefault(key, set()).add(entity.name)
        self.kinds.setdefault(entity.name, set()).add(entity.kind)
        if entity.kind == "person":
            for name in (entity.name, *entity.aliases):
                first = first_name(name)
                if first:
                    self.people.setdefault(first, entity.name)

    def holders(self, key: str) -> set[str]:
        return self.by_key.get(key, set())

    def person(self, first: str) -> str | None:
        return self.people.get(first)

    def firsts(self, key: str) -> set[str]:
        return {first for first in self.people if first != key and min(len(first), len(key)) >= 3
                and (first.startswith(key) or key.startswith(first))}

    def surfaces(self, kind: str) -> list[tuple[str, str]]:
        return [(key, name) for key, names in self.by_key.items() for name in names if kind in self.kinds[name]]

    def admits(self, key: str, name: str, kind: str) -> bool:
        return name in self.by_key.get(key, ()) and kind in self.kinds.get(name, ())


class Layers(KnownEntities):
    """`base`, then `top`: what `top` adds counts where `base` says nothing (a first name `base` gives to one of
    its persons keeps it)."""

    def __init__(self, base: KnownEntities, top: KnownEntities) -> None:
        self.base, self.top = base, top

    def holders(self, key: str) -> set[str]:
        return self.base.holders(key) | self.top.holders(key)

    def person(self, first: str) -> str | None:
        found = self.base.person(first)
        return found if found is not None else self.top.person(first)

    def firsts(self, key: str) -> set[str]:
        return self.base.firsts(key) | self.top.firsts(key)

    def surfaces(self, kind: str) -> list[tuple[str, str]]:
        return self.base.surfaces(kind) + self.top.surfaces(kind)

    def admits(self, key: str, name: str, kind: str) -> bool:
        return self.base.admits(key, name, kind) or self.top.admits(key, name, kind)


def known(entities: Iterable[Entity] | KnownEntities) -> KnownEntities:
    """`entities` as something names resolve against."""
    return entities if isinstance(entities, KnownEntities) else EntityIndex.of(entities)


def first_name(name: str) -> str | None:
    """The first word of a name, as the people index keys it ('Ana Lopez' -> 'ana'); None for none."""
    key = normal(name)
    first = key.split(" ")[0] if key else ""
    return first if first and "'" not in first else None


# Similar: given a new entity that no name, alias or short form resolved, and what is known, the known entity
# it is by similarity (engram.graph_alias), or None.
Similar = Callable[[Entity, KnownEntities], "str | None"]


def find(index: KnownEntities, entity: Entity, similar: Similar | None = None) -> str | None:
    """The one known entity `entity` is, or None (unknown, or ambiguous): by name or alias; for a person or an
    untyped name, as a short form ('Mel' of exactly one known 'Melanie', or the reverse); then by `similar`."""
    found: set[str] = set()
    for key in entity.names():
        found |= index.holders(key)
    if len(found) == 1:
        return next(iter(found))
    if found:
        return None
    if entity.kind in ("person", "thing"):
        short = _short_forms(index, normal(entity.name))
        if short:
            return next(iter(short)) if len(short) == 1 else None
    return similar(entity, index) if similar is not None else None


def _short_forms(index: KnownEntities, key: str) -> set[str]:
    """The known persons `key` is a short (or long) form of: a first name of three letters or more that begins
    another person's first name, or that one begins."""
    if " " in key or len(key) < 3:
        return set()
    return {person for first in index.firsts(key) if (person := index.person(first)) is not None}


def resolve(graph: Graph, known_entities: Iterable[Entity] | KnownEntities, similar: Similar | None = None) -> Graph:
    """`graph` with each entity renamed to the known entity it is (its own name kept as an alias), the rest
    as they are; relations follow their ends' names. Entities of `graph` itself resolve against each other too
    (a name is known once an earlier entity of the same graph declared it)."""
    added = EntityIndex()
    index = Layers(known(known_entities), added)
    renamed: dict[str, str] = {}
    out: list[Entity] = []
    for given in sorted(graph.entities, key=lambda e: (not e.aliases, e.kind == "thing")):
        canonical = find(index, given, similar)
        entity = given
        if canonical is not None and canonical != given.name:
            entity = Entity(canonical, given.kind, (*given.aliases, given.name))
        renamed[given.name] = entity.name
        added.add(entity)
        out.append(entity)
    relations = [Relation(renamed.get(r.subject, r.subject), r.relation, renamed.get(r.object, r.object))
                 for r in graph.relations]
    return build(out, relations)


def spelling(a: str, b: str) -> float:
    """How alike two names are spelled, in [0, 1]: 1 - edits / length of the longer (an edit: a letter added,
    dropped, changed, or two swapped), over their normal() forms. 0 unless both have five letters or more and
    begin with the same letter: short names one letter apart are as often two people (Anna, Hanna; Tom, Tim)."""
    a, b = normal(a), normal(b)
    if min(len(a), len(b)) < 5 or a[0] != b[0]:
        return 0.0
    return 1.0 - _edits(a, b) / max(len(a), len(b))


def _edits(a: str, b: str) -> int:
    """Edit distance with swaps of neighbours (optimal string alignment)."""
    before: list[int] = []
    last = list(range(len(b) + 1))
    for i, char in enumerate(a, start=1):
        row = [i] + [0] * len(b)
        for j, other in enumerate(b, start=1):
            row[j] = min(last[j] + 1, row[j - 1] + 1, last[j - 1] + (char != other))
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                row[j] = min(row[j], before[j - 2] + 1)
        before, last = last, row
    return last[-1]


def pick_alias(meaning: Mapping[str, float], spelled: Mapping[str, float], meaning_min: float,
               spelling_min: float) -> str | None:
    """The one known entity a new name is by similarity: its name's embedding at `meaning_min` or more (cosine)
    or its spelling at `spelling_min` or more (`spelling`). None when no candidate is, and when two or more are:
    an ambiguous name stays an entity of its own rather than merging with the wrong one."""
    above = {name for name, s in meaning.items() if s >= meaning_min}
    above |= {name for name, s in spelled.items() if s >= spelling_min}
    return next(iter(above)) if len(above) == 1 else None


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


def lookup(name: str, entities: Iterable[Entity] | KnownEntities) -> str | None:
    """The canonical name of the entity `name` names (by name or alias, else a short form), or None."""
    return find(known(entities), Entity(name.strip(), "thing"))


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
