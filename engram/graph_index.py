"""A scope's graphs indexed for the reads graph memory makes: pure (numpy, no I/O).

A GraphIndex holds the graph of every row of one scope (a row: one version, current or closed, in the order the
store keeps them) and only grows, by appending rows: which rows a read admits (current ones, `as_of`, filters) is
a mask given with the read, and a GraphView is the index seen through one. The view answers what engram.graph's
list-based reference functions answer over the admitted graphs (merge_entities, the lookups of resolve,
named_in, walk) from the rows each name, key and link was seen in, so that a search or an add costs what the
entities it touches cost, not what the scope holds.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from engram.graph import USER, Entity, Graph, KnownEntities, find, normal
from engram.types import MemoryRecord

__all__ = ["GraphIndex", "GraphView"]


class _Ints:
    """Integers in the order they were appended, with a numpy copy made when read."""

    __slots__ = ("_array", "_items")

    def __init__(self) -> None:
        self._items = array("q")
        self._array: np.ndarray | None = None

    def append(self, value: int) -> None:
        self._items.append(value)
        self._array = None

    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.array(self._items, dtype=np.int64)
        return self._array


class GraphIndex:
    """The graphs of one scope's rows, by entity: the rows that name it (and as what kind), the keys it answers
    to in which rows, its relations to other entities in which rows, and the aliases it carries where it has some."""

    def __init__(self, graphs: Iterable[Graph | None] = ()) -> None:
        self.graphs: list[Graph | None] = []
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.kinds: list[str] = []  # kind code -> kind
        self._kind_ids: dict[str, int] = {}
        self.rows: list[_Ints] = []  # entity -> rows naming it
        self.row_kinds: list[_Ints] = []  # entity -> the kind each of those rows gives it
        self.aliased: list[list[tuple[int, tuple[str, ...]]]] = []  # entity -> (row, aliases) where it has some
        self.keys: dict[str, dict[int, _Ints]] = {}  # normal() key -> entity -> rows where it answers to the key
        self.entity_keys: list[set[str]] = []
        self.firsts: dict[str, set[str]] = {}  # first word -> the keys it begins
        self.sorted_firsts: list[str] = []
        self.links: list[tuple[_Ints, _Ints]] = []  # entity -> (other end, row) of each relation it is an end of
        self.of_kind: dict[str, set[int]] = {}  # kind -> entities some row gives that kind
        self.graph_rows = _Ints()  # rows that have a graph
        self.longest_key = 1  # in words
        self.append(graphs)

    def __len__(self) -> int:
        return len(self.graphs)

    def append(self, graphs: Iterable[Graph | None]) -> None:
        """Add the next rows, each with its graph (None: none)."""
        for graph in graphs:
            row = len(self.graphs)
            self.graphs.append(graph or None)
            if graph:
                self.graph_rows.append(row)
                self._add(row, graph)

    def _add(self, row: int, graph: Graph) -> None:
        for entity in graph.entities:
            entity_id = self._id(entity.name)
            self.rows[entity_id].append(row)
            self.row_kinds[entity_id].append(self._kind_id(entity.kind))
            self.of_kind.setdefault(entity.kind, set()).add(entity_id)
            if entity.aliases:
                self.aliased[entity_id].append((row, entity.aliases))
            for key in entity.names():
                self._holders(key).setdefault(entity_id, _Ints()).append(row)
                self.entity_keys[entity_id].add(key)
        for relation in graph.relations:
            subject, obj = self._id(relation.subject), self._id(relation.object)
            for end, other in ((subject, obj), (obj, subject)):
                self.links[end][0].append(other)
                self.links[end][1].append(row)

    def _id(self, name: str) -> int:
        found = self.ids.get(name)
        if found is None:
            found = self.ids[name] = len(self.names)
            self.names.append(name)
            self.rows.append(_Ints())
            self.row_kinds.append(_Ints())
            self.aliased.append([])
            self.entity_keys.append(set())
            self.links.append((_Ints(), _Ints()))
        return found

    def _kind_id(self, kind: str) -> int:
        found = self._kind_ids.get(kind)
        if found is None:
            found = self._kind_ids[kind] = len(self.kinds)
            self.kinds.append(kind)
        return found

    def _holders(self, key: str) -> dict[int, _Ints]:
        holders = self.keys.get(key)
        if holders is None:
            holders = self.keys[key] = {}
            self.longest_key = max(self.longest_key, key.count(" ") + 1)
            first = key.split(" ", maxsplit=1)[0]
            if "'" not in first:
                if first not in self.firsts:
                    insort(self.sorted_firsts, first)
                self.firsts.setdefault(first, set()).add(key)
        return holders


class GraphView(KnownEntities):
    """`index` through a mask: `keep[row]` says whether a read admits the row; `records[row]` is its version."""

    def __init__(self, records: Sequence[MemoryRecord], index: GraphIndex, keep: np.ndarray,
                 position: Mapping[int, int] | None = None) -> None:
        self.records = records
        self.index = index
        self.keep = keep
        self.position = position if position is not None else {r.version: i for i, r in enumerate(records)}
        self._surfaces: dict[str, list[tuple[str, str]]] = {}

    @classmethod
    def of(cls, found: Sequence[tuple[MemoryRecord, Graph]]) -> GraphView:
        """A view of versions already admitted, each with its graph (what Store.graph returns)."""
        return cls([r for r, _ in found], GraphIndex(g for _, g in found), np.ones(len(found), dtype=bool))

    # -- admission -------------------------------------------------------------------------------------------

    def _admitted(self, rows: _Ints) -> np.ndarray:
        found = rows.array()
        return found[self.keep[found]]

    def _any(self, rows: _Ints) -> bool:
        return bool(self.keep[rows.array()].any())

    def _count(self, entity_id: int) -> int:
        return int(self.keep[self.index.rows[entity_id].array()].sum())

    def _kind(self, entity_id: int) -> str | None:
        """The entity's commonest specific kind over the admitted rows (then the greatest by name), else
        "thing"; None when no admitted row names it."""
        kept = self.keep[self.index.rows[entity_id].array()]
        if not kept.any():
            return None
        counts = np.bincount(self.index.row_kinds[entity_id].array()[kept], minlength=len(self.index.kinds))
        specific = [(int(n), kind) for kind, n in zip(self.index.kinds, counts, strict=True) if n and kind != "thing"]
        return max(specific)[1] if specific else "thing"

    def newest_first(self, rows: np.ndarray) -> np.ndarray:
        """`rows` ordered as Store.select orders versions: last updated first, then the later version."""
        updated = np.fromiter((self.records[r].updated_at for r in rows), dtype=np.float64, count=len(rows))
        version = np.fromiter((self.records[r].version or 0 for r in rows), dtype=np.int64, count=len(rows))
        return rows[np.lexsort((-version, -updated))]

    # -- what names resolve against (engram.graph.KnownEntities) ----------------------------------------------

    def holders(self, key: str) -> set[str]:
        return {self.index.names[e] for e, rows in self.index.keys.get(key, {}).items() if self._any(rows)}

    def person(self, first: str) -> str | None:
        index = self.index
        candidates = {e for key in index.firsts.get(first, ()) for e, rows in index.keys[key].items()
                      if self._any(rows)}
        persons = [(-self._count(e), index.names[e]) for e in candidates if self._kind(e) == "person"]
        return min(persons)[1] if persons else None

    def firsts(self, key: str) -> set[str]:
        index = self.index
        found = {key[:end] for end in range(3, len(key)) if key[:end] in index.firsts}
        at = bisect_left(index.sorted_firsts, key)
        while at < len(index.sorted_firsts) and index.sorted_firsts[at].startswith(key):
            found.add(index.sorted_firsts[at])
            at += 1
        return {first for first in found if first != key and min(len(first), len(key)) >= 3
                and self.person(first) is not None}

    def surfaces(self, kind: str) -> list[tuple[str, str]]:
        if kind not in self._surfaces:
            index = self.index
            self._surfaces[kind] = [(key, index.names[e]) for e in sorted(index.of_kind.get(kind, ()))
                                    for key in sorted(index.entity_keys[e])]
        return self._surfaces[kind]

    def admits(self, key: str, name: str, kind: str) -> bool:
        entity_id = self.index.ids.get(name)
        rows = self.index.keys.get(key, {}).get(entity_id) if entity_id is not None else None
        return rows is not None and self._any(rows) and self._kind(entity_id) == kind  # type: ignore[arg-type]

    # -- reads ---------------------------------------------------------------------------------------------

    def entity(self, name: str) -> Entity:
        """The entity as the admitted rows name it: its kind, and its aliases, newest first."""
        entity_id = self.index.ids[name]
        return Entity(name, self._kind(entity_id) or "thing", self._aliases(entity_id))

    def _aliases(self, entity_id: int) -> tuple[str, ...]:
        carried = [(row, aliases) for row, aliases in self.index.aliased[entity_id] if self.keep[row]]
        if not carried:
            return ()
        order = self.newest_first(np.array([row for row, _ in carried], dtype=np.int64))
        by_row = dict(carried)
        key = normal(self.index.names[entity_id])
        return tuple(a for a in dict.fromkeys(a for row in order for a in by_row[int(row)]) if normal(a) != key)

    def entities(self) -> list[tuple[Entity, int]]:
        """engram.graph.merge_entities of the admitted graphs: every entity with how many rows name it, most
        named first."""
        counts = np.zeros(len(self.index.names), dtype=np.int64)
        for entity_id, rows in enumerate(self.index.rows):
            counts[entity_id] = self.keep[rows.array()].sum() if len(rows.array()) else 0
        named = [(self.entity(self.index.names[e]), int(counts[e])) for e in np.flatnonzero(counts)]
        return sorted(named, key=lambda pair: (-pair[1], pair[0].name))

    def lookup(self, name: str) -> str | None:
        """engram.graph.lookup over the admitted entities."""
        return find(self, Entity(name.strip(), "thing"))

    def named_in(self, text: str) -> set[str]:
        """engram.graph.named_in over the admitted entities: those a run of whole words of `text` names."""
        key = normal(text)
        words = key.split(" ") if key else []
        found: set[str] = set()
        for size in range(1, min(self.index.longest_key, len(words)) + 1):
            for start in range(len(words) - size + 1):
                run = " ".join(words[start:start + size])
                if len(run) >= 3 and run in self.index.keys:
                    found |= self.holders(run)
        found.discard(USER)
        return found

    def walk(self, start: Iterable[str], hops: int) -> dict[str, int]:
        """engram.graph.walk over the admitted relations."""
        index = self.index
        distance = dict.fromkeys(start, 0)
        frontier = [index.ids[name] for name in distance if name in index.ids]
        for step in range(1, hops + 1):
            reached = []
            for entity_id in frontier:
                others, rows = index.links[entity_id]
                for other in np.unique(others.array()[self.keep[rows.array()]]):
                    name = index.names[other]
                    if name not in distance:
                        distance[name] = step
                        reached.append(int(other))
            frontier = reached
        return distance

    def naming(self, distance: dict[str, int]) -> list[tuple[int, int]]:
        """(row, distance) of the admitted rows naming any of these entities (at its nearest), newest first."""
        nearest = np.full(len(self.keep), np.iinfo(np.int64).max, dtype=np.int64)
        for name, d in distance.items():
            if name in self.index.ids:
                rows = self._admitted(self.index.rows[self.index.ids[name]])
                nearest[rows] = np.minimum(nearest[rows], d)
        rows = self.newest_first(np.flatnonzero(nearest < np.iinfo(np.int64).max))
        return [(int(row), int(nearest[row])) for row in rows]

    def nearest(self, distance: Mapping[str, int], versions: Iterable[int]) -> list[tuple[int, int]]:
        """`naming` among these versions only (in their order): what it costs follows them, not the entities."""
        found = []
        for version in versions:
            row = self.position.get(version)
            graph = self.index.graphs[row] if row is not None and row < len(self.keep) and self.keep[row] else None
            near = [distance[n] for n in graph.names() if n in distance] if graph else []
            if near:
                found.append((row, min(near)))
        return found  # type: ignore[return-value]

    def linking(self, names: set[str], center: str) -> np.ndarray:
        """The admitted rows holding a relation between two of `names`, or naming `center`, newest first."""
        index = self.index
        ids = np.array(sorted(index.ids[n] for n in names if n in index.ids), dtype=np.int64)
        found = [index.rows[index.ids[center]].array()] if center in index.ids else []
        for entity_id in ids:
            others, rows = index.links[entity_id]
            found.append(rows.array()[np.isin(others.array(), ids)])
        rows = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        return self.newest_first(rows[self.keep[rows]])

    def admitted(self) -> list[tuple[MemoryRecord, Graph]]:
        """Store.graph: the admitted rows that have a graph, each with it, newest first."""
        rows = self._admitted(self.index.graph_rows)
        return [(self.records[r], self.index.graphs[r]) for r in self.newest_first(rows)]
