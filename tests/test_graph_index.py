"""engram.graph_index answers what engram.graph's reference functions answer over the admitted graphs, for random
graphs, random admission masks and ties in update times; and the SQLite store's index, grown by its writes,
answers what one loaded afresh from the file does (current, as_of, filters)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from engram.filters import parse_filters
from engram.graph import (
    KINDS,
    USER,
    Entity,
    EntityIndex,
    Graph,
    Relation,
    build,
    find,
    merge_entities,
    named_in,
    walk,
)
from engram.graph_index import GraphIndex, GraphView
from engram.stores.base import ChangeSet, Close, Criteria
from engram.stores.sqlite import SQLiteStore
from engram.types import MemoryRecord, Scope, content_hash

NAMES = ["Ana", "Ana Lopez", "Anastasia", "Mel", "Melanie", "Melissa", "Lyon", "Paris", "Acme Corp", "Tom", "Tomas",
         "Bob", "The Hague", "New York City", "NYC", USER]
ALIASES = ["ana", "User's sister", "Mel", "Annie", "Big Apple", "Tommy", "Melanie", "Lopez"]
QUERIES = ["Where does Ana live?", "mel and tom in new york city", "what about the hague", "Tommy went to NYC",
           "Acme Corp hired Melissa", "anastasia", "User's sister", "nothing here", "big apple trip with annie"]


def random_graph(rng: random.Random) -> Graph | None:
    if rng.random() < 0.2:
        return None
    entities = [Entity(name, rng.choice(KINDS), tuple(rng.sample(ALIASES, rng.choice((0, 0, 1, 2)))))
                for name in rng.sample(NAMES, rng.randint(1, 4))]
    names = [e.name for e in entities]
    relations = [Relation(rng.choice(names), rng.choice(("sister", "lives_in", "works_at")), rng.choice(names))
                 for _ in range(rng.randint(0, 3))]
    return build(entities, relations) or None


def reference_order(records: list[MemoryRecord], rows: list[int]) -> list[int]:
    return sorted(rows, key=lambda r: (records[r].updated_at, records[r].version or 0), reverse=True)


@pytest.mark.parametrize("seed", range(40))
def test_the_view_answers_what_the_reference_functions_answer(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 40)
    graphs = [random_graph(rng) for _ in range(size)]
    versions = rng.sample(range(1, 1000), size)
    records = [MemoryRecord(id=f"m{i}", text=f"text {i}", hash=f"h{i}", user_id="u",
                            updated_at=rng.choice((1.0, 2.0, 3.0)), version=versions[i]) for i in range(size)]
    index = GraphIndex(graphs[:size // 2])
    index.append(graphs[size // 2:])  # grown as a store's writes grow it
    keep = np.array([rng.random() < 0.7 for _ in range(size)], dtype=bool)
    view = GraphView(records, index, keep)

    admitted = [r for r in reference_order(records, list(range(size))) if keep[r] and graphs[r]]
    found = [(records[r], g) for r in admitted if (g := graphs[r]) is not None]
    assert view.admitted() == found
    merged = merge_entities(g for _, g in found)
    assert view.entities() == merged
    known = [e for e, _ in merged]
    reference = EntityIndex.of(known)
    relations = [r for _, g in found for r in g.relations]
    for query in QUERIES:
        assert view.named_in(query) == named_in(query, known), query
    for name in [*NAMES, *ALIASES, "an", "Meli", "Anast", "Tomasz", "nobody"]:
        for kind in ("thing", "person", "place"):
            entity = Entity(name, kind)
            assert find(view, entity) == find(reference, entity), (name, kind)
    for kind in KINDS:
        assert {(k, n) for k, n in view.surfaces(kind) if view.admits(k, n, kind)} == set(reference.surfaces(kind))
    for hops in range(4):
        start = set(rng.sample([e.name for e in known], min(2, len(known))))
        assert view.walk(start, hops) == walk(relations, start, hops)
        distance = walk(relations, start, hops)
        expected = [(r, min(distance[n] for n in g.names() if n in distance)) for r, (_, g) in zip(admitted, found,
                    strict=True) if g.names() & distance.keys()]
        assert view.naming(distance) == expected
        among = [*rng.sample(versions, size // 2), 0]  # search's candidates, and a version the scope lacks
        near, row_of = dict(expected), {v: row for row, v in enumerate(versions)}
        assert view.nearest(distance, among) == [(row_of[v], near[row_of[v]]) for v in among if row_of.get(v) in near]
    for entity, _ in merged:
        assert view.entity(entity.name) == entity


def _store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.bind_embedder("test", 2)
    return store


def _insert(store: SQLiteStore, text: str, graph: Graph, at: float, **metadata: object) -> MemoryRecord:
    record = MemoryRecord(id=content_hash(text)[:12], text=text, hash=content_hash(text), user_id="u", created_at=at,
                          updated_at=at, valid_from=at, metadata=dict(metadata))
    [stored] = store.apply(ChangeSet(inserts=[(record, np.array([1.0, 0.0], dtype=np.float32))], graph={0: graph}))
    return stored


def test_the_sqlite_index_grown_by_writes_reads_as_one_loaded_afresh(tmp_path: Path) -> None:
    path = tmp_path / "graph.db"
    store = _store(path)
    ana = Graph((Entity(USER, "person"), Entity("Ana", "person", ("User's sister",)), Entity("Lyon", "place")),
                (Relation(USER, "sister", "Ana"), Relation("Ana", "lives_in", "Lyon")))
    first = _insert(store, "My sister Ana lives in Lyon", ana, 100.0, source="chat")
    criteria = [Criteria(Scope(user_id="u")), Criteria(Scope(user_id="u"), as_of=150.0),
                Criteria(Scope(user_id="u"), where=parse_filters({"source": "chat"}))]
    assert store.graph(criteria[0]) == [(first, ana)]  # the index is loaded now: what follows patches it
    paris = Graph((Entity("Ana", "person"), Entity("Paris", "place")), (Relation("Ana", "lives_in", "Paris"),))
    second = _insert(store, "Ana lives in Paris", paris, 200.0, source="import")
    store.apply(ChangeSet(closes=[Close(first.id, 200.0, version=first.version)]))
    _insert(store, "Mel plays the violin", Graph((Entity("Mel", "person"),)), 300.0, source="chat")
    fresh = _store(path)
    for c in criteria:
        with store.graph_view(c) as grown, fresh.graph_view(c) as loaded:
            assert grown.admitted() == loaded.admitted()
            assert grown.entities() == loaded.entities()
            assert grown.walk({"Ana"}, 2) == loaded.walk({"Ana"}, 2)
    assert [g for _, g in store.graph(criteria[0])] == [Graph((Entity("Mel", "person"),)), paris]
    assert [r.id for r, _ in store.graph(criteria[1])] == [first.id]
    assert second.id not in {r.id for r, _ in store.graph(criteria[2])}
