"""A new name resolved by similarity, once no name, alias or short form resolved it: the embedding of the name
(abbreviations and variants: "NYC" for "New York City") or its spelling (misspellings: "Melany" for "Melanie").

No LLM: names are embedded with the memory's own embedder, at most once per add (every name the add may compare,
in one call) and once per process (NameVectors keeps them). The decision is engram.graph.pick_alias; what is
compared with what is decided here: an entity only with known entities of its own kind, never a date (two dates
embed alike and are different days), never a kin phrase ("User's sister"), and by spelling only a typed name
(person, place, organisation): an untyped "thing" is any capitalised word, and words one letter apart are often
different words ("Talking", "Taking"). Measured on LoCoMo's names and on pairs that must or must not merge by
bench/graph_alias.py.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np

from engram.graph import USER, Entity, Graph, KnownEntities, normal, pick_alias, spelling

__all__ = ["AliasMatcher", "NameVectors", "comparable"]

SIMILAR_KINDS = ("person", "place", "organisation", "thing")
SPELLED_KINDS = ("person", "place", "organisation")


def comparable(entity: Entity) -> bool:
    """Whether `entity` may resolve by similarity at all."""
    key = normal(entity.name)
    return entity.kind in SIMILAR_KINDS and bool(key) and "'s " not in key and entity.name != USER


class NameVectors:
    """The embeddings of names (their normal() forms), each made once per process: the `limit` used last are
    kept (50,000 names: 77 MB of MiniLM vectors)."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], limit: int = 50_000) -> None:
        self._embed = embed
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.limit = limit

    def __contains__(self, key: str) -> bool:
        return key in self._vectors

    def fill(self, keys: Iterable[str]) -> None:
        """Embed the keys not embedded yet, in one call."""
        wanted = set(keys)
        for key in wanted & self._vectors.keys():
            self._vectors.move_to_end(key)
        missing = sorted(wanted - self._vectors.keys())
        if not missing:
            return
        vectors = np.asarray(self._embed(missing), dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self._vectors.update(zip(missing, vectors, strict=True))
        while len(self._vectors) > self.limit:
            self._vectors.popitem(last=False)

    def matrix(self, keys: list[str]) -> np.ndarray:
        return np.stack([self._vectors[key] for key in keys])

    def get(self, key: str) -> np.ndarray | None:
        return self._vectors.get(key)


class AliasMatcher:
    """engram.graph.Similar: a new name against the known entities of its kind, by embedding (a cosine of
    `meaning_min` or more) and by spelling (`spelling_min`); the settings graph_alias_similarity and
    graph_alias_spelling. Above 1, a threshold never matches."""

    def __init__(self, vectors: NameVectors, meaning_min: float, spelling_min: float) -> None:
        self.vectors = vectors
        self.meaning_min = meaning_min
        self.spelling_min = spelling_min

    def wanted(self, known: KnownEntities, graphs: Iterable[Graph]) -> set[str]:
        """The names to embed before `graphs` resolve against `known`: none when each of their comparable
        entities is known by a name already; else all of them and the known names of their kinds."""
        entities = [e for graph in graphs for e in graph.entities if comparable(e)]
        new = {e.kind for e in entities if not any(known.holders(key) for key in e.names())}
        if not new or self.meaning_min > 1:
            return set()
        keys = {normal(e.name) for e in entities}
        for kind in new:
            keys |= {key for key, name in known.surfaces(kind) if name != USER and "'s " not in key}
        return keys

    def __call__(self, entity: Entity, known: KnownEntities) -> str | None:
        if not comparable(entity):
            return None
        key = normal(entity.name)
        candidates = [(k, name) for k, name in known.surfaces(entity.kind) if name != USER and "'s " not in k]
        meaning: dict[str, float] = {}
        vector = self.vectors.get(key)
        embedded = [(k, name) for k, name in candidates if k in self.vectors]
        if vector is not None and embedded:
            cosines = self.vectors.matrix([k for k, _ in embedded]) @ vector
            for at in np.flatnonzero(cosines >= self.meaning_min):
                k, name = embedded[at]
                if known.admits(k, name, entity.kind):
                    meaning[name] = max(meaning.get(name, -1.0), float(cosines[at]))
        spelled: dict[str, float] = {}
        if entity.kind in SPELLED_KINDS:
            for k, name in candidates:
                if k[:1] == key[:1] and abs(len(k) - len(key)) <= (1 - self.spelling_min) * max(len(k), len(key)):
                    alike = spelling(k, key)
                    if alike >= self.spelling_min and known.admits(k, name, entity.kind):
                        spelled[name] = max(spelled.get(name, 0.0), alike)
        return pick_alias(meaning, spelled, self.meaning_min, self.spelling_min)
