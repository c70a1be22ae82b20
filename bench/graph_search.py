"""Graph memory's cost in search and add: 100k memories in one scope, and 100k over 100 users (SQLite store).

    python bench/graph_search.py [--size 100000] [--layouts 1 100] [--queries 300] [--adds 100]

Texts are synthetic sentences naming people, places and organisations ("Ana Lopez lives in Lyon", "I met Tom
Berg in Oslo", ...), 60 % of them, the rest naming no one; their graphs come from engram's rules (as add()
would store them) and their vectors are real MiniLM embeddings of a pool of the same sentences plus small
noise (as search_latency.py does), so that building 100k memories takes a minute. Queries name a person.
Printed: p50/p95 of Memory.search with graph=False and graph=True (query embedding included; each query both
ways in turn, so that both see the same load), of the same searches without the embedding, of a graph=True
search right after an add to the same scope, of add(infer=False) of one named sentence (embedding included),
and of the graph channel's own part: linked(), and the memories one hop from a person found two ways, engram's
in-memory index (engram.graph_index) and a recursive CTE over graph_relations (checked equal).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import uuid
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OBJECTS, WHEN, sentences, summary, timed

from engram import Memory
from engram.graph import USER
from engram.graph_memory import linked
from engram.graph_rules import graph_of
from engram.retrieval import search
from engram.stores.base import ChangeSet, Criteria
from engram.types import MemoryRecord, Scope, content_hash

FIRST = ["Ana", "Tom", "Lena", "Omar", "Yuki", "Carlos", "Ingrid", "Ravi", "Sofia", "Piotr", "Amara", "Jonas",
         "Mei", "Diego", "Hanne", "Kofi", "Elena", "Marek", "Noor", "Felix"]
LAST = ["Lopez", "Berg", "Novak", "Haddad", "Tanaka", "Silva", "Olsen", "Patel", "Rossi", "Kowalski",
        "Mensah", "Weber", "Chen", "Garcia", "Dahl", "Owusu", "Petrova", "Horak", "Rahman", "Vogel"]
CITIES = ["Lyon", "Oslo", "Porto", "Kyoto", "Lima", "Accra", "Krakow", "Dublin", "Quito", "Tartu", "Bergen",
          "Seville", "Nagoya", "Leeds", "Turin", "Graz", "Malmo", "Cork", "Basel", "Ghent"] * 3
CITIES = [f"{c}" if i < 20 else f"{c} {'North' if i < 40 else 'South'}" for i, c in enumerate(CITIES)]
ORGS = [f"{name} {suffix}" for name in ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark",
                                        "Wayne", "Tyrell", "Cyberdyne") for suffix in ("Corp", "Labs", "Group", "Bank")]
TEMPLATES = ["{p} lives in {c} {w}", "{p} works at {o}", "I met {p} in {c} {w}", "{p} talks about {x} {w}",
             "{p} and {q} visited {c} {w}", "{p} bought {x} {w}", "My friend {p} moved to {c}"]


def people(count: int) -> list[tuple[str, str, str]]:
    """(name, home city, employer) of `count` distinct people."""
    rng = random.Random(5)
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(names)
    return [(name, rng.choice(CITIES), rng.choice(ORGS)) for name in names[:count]]


def named_sentences(n: int, cast: list[tuple[str, str, str]], seed: int = 0) -> list[str]:
    """n distinct sentences, 60 % naming people of `cast` (each always with the same city and employer)."""
    rng = random.Random(seed)
    plain = sentences(n, seed=seed + 1)
    out = []
    for i in range(n):
        if rng.random() >= 0.6:
            out.append(plain[i])
            continue
        p, c, o = rng.choice(cast)
        text = rng.choice(TEMPLATES).format(p=p, q=rng.choice(cast)[0], c=c, o=o, x=rng.choice(OBJECTS),
                                            w=rng.choice(WHEN))
        out.append(f"{' '.join(text.split())} (#{i})")
    return out


def populate(memory: Memory, texts: list[str], users: int, pool: np.ndarray) -> None:
    """Write the memories in large change sets, each with the graph the rules find in its text; every four
    memories of a user share a batch, as the turns of one add() call do."""
    rng = np.random.default_rng(0)
    memory.store.bind_embedder(memory.embedder.name, memory.embedder.dimension)
    for start in range(0, len(texts), 2000):
        changes = ChangeSet()
        for i in range(start, min(len(texts), start + 2000)):
            vector = pool[i % len(pool)] + rng.normal(scale=0.02, size=pool.shape[1:]).astype(np.float32)
            record = MemoryRecord(id=str(uuid.uuid4()), text=texts[i], hash=content_hash(texts[i]),
                                  user_id=f"user{i % users}", created_at=1.7e9 + i, updated_at=1.7e9 + i,
                                  valid_from=1.7e9 + i, batch_id=f"add{i // (4 * users)}", position=i // users % 4)
            graph = graph_of(texts[i])
            if graph:
                changes.graph[len(changes.inserts)] = graph
            changes.inserts.append((record, vector / np.linalg.norm(vector)))
        memory.store.apply(changes)


_CTE = """
WITH RECURSIVE reach(name, d) AS (
    SELECT value, 0 FROM json_each(?)
    UNION
    SELECT g.object, r.d + 1 FROM reach r JOIN graph_relations g ON g.subject = r.name
        JOIN memories m ON m.rowid = g.version
        WHERE r.d < ? AND m.user_id = ? AND m.valid_to IS NULL
    UNION
    SELECT g.subject, r.d + 1 FROM reach r JOIN graph_relations g ON g.object = r.name
        JOIN memories m ON m.rowid = g.version
        WHERE r.d < ? AND m.user_id = ? AND m.valid_to IS NULL)
SELECT e.version, min(r.d) FROM (SELECT name, min(d) AS d FROM reach WHERE name != 'User' GROUP BY name) r
    JOIN graph_entities e ON e.name = r.name JOIN memories m ON m.rowid = e.version
    WHERE m.user_id = ? AND m.valid_to IS NULL GROUP BY e.version
"""


def walk_cte(db: sqlite3.Connection, user: str, start: str, hops: int) -> dict[int, int]:
    """The versions naming an entity within `hops` relations of `start`, by a recursive query (the alternative
    to engram's in-memory index that the graph issue names), with their distance."""
    import json

    return dict(db.execute(_CTE, (json.dumps([start]), hops, user, hops, user, user)).fetchall())


def measure(memory: Memory, db: Path, users: int, cast: list[tuple[str, str, str]], count: int, adds: int) -> None:
    rng = random.Random(2)
    picks = [(f"user{rng.randrange(users)}", rng.choice(cast)[0], rng.choice(OBJECTS)) for _ in range(count)]
    qs = [(u, f"What does {p} think about {x}?" if i % 2 else f"Where does {p} live?")
          for i, (u, p, x) in enumerate(picks)]
    # every scope loaded once, as a long-running process would have: its vectors, then its graph index
    cold = [timed(partial(memory.search, "warm up", user_id=user)) for user in sorted({u for u, _ in qs})]
    cold_graph = [timed(partial(memory.search, "warm up", user_id=user, graph=True))
                  for user in sorted({u for u, _ in qs})]
    plain, graphed, bare, bare_graphed = [], [], [], []
    for (user, question), vector in zip(qs, memory.embedder.embed([q for _, q in qs]), strict=True):
        # each query with and without the graph, one after the other: both see the same load on the machine
        plain.append(timed(partial(memory.search, question, user_id=user, limit=10)))
        graphed.append(timed(partial(memory.search, question, user_id=user, limit=10, graph=True)))
        criteria = Criteria(Scope(user_id=user))
        bare.append(timed(partial(search, memory.store, vector, question, criteria, 10)))
        bare_graphed.append(timed(partial(search, memory.store, vector, question, criteria, 10, graph=True)))
    sizes = sorted(len(linked(memory.store, Criteria(Scope(user_id=u)), q, 1)) for u, q in qs)
    add, after = [], []
    for i, text in enumerate(named_sentences(adds, cast, seed=99)):
        user, question = qs[i % len(qs)]
        add.append(timed(partial(memory.add, text, user_id=user, infer=False)))
        after.append(timed(partial(memory.search, question, user_id=user, limit=10, graph=True)))
    index, cte, full = [], [], []
    with sqlite3.connect(db) as conn:
        for user, person, _ in picks[:min(count, 100)]:
            full.append(timed(partial(linked, memory.store, Criteria(Scope(user_id=user)), f"Where is {person}?", 1)))
            cte.append(timed(partial(walk_cte, conn, user, person, 1)))
            if hasattr(memory.store, "graph_view"):  # run on a commit before the index, this part is left out
                index.append(timed(partial(walk_index, memory, user, person, 1)))
                assert walk_index(memory, user, person, 1) == walk_cte(conn, user, person, 1)
    extra = [g - p for g, p in zip(graphed, plain, strict=True)]
    for name, samples in [("a scope's first search (loads its vectors)", cold),
                          ("then its first graph=True (loads its graph)", cold_graph),
                          ("search graph=False (incl. embedding)", plain),
                          ("search graph=True (incl. embedding)", graphed),
                          ("  graph=True minus graph=False, same query", extra),
                          ("search graph=False, no embedding", bare),
                          ("search graph=True, no embedding", bare_graphed),
                          ("search graph=True right after an add", after),
                          ("add(infer=False), one named sentence", add),
                          ("  linked(), 1 hop, every memory it links", full),
                          ("  1 hop from a person: engram's index", index),
                          ("  1 hop from a person: recursive CTE", cte)]:
        if samples:
            print(summary(name, samples))
    print(f"  (a query's entities link {sizes[0]} / {sizes[len(sizes) // 2]} / {sizes[-1]} memories at 1 hop (min / "
          f"median / max){'; the CTE and the index found the same' if index else ''})")


def walk_index(memory: Memory, user: str, start: str, hops: int) -> dict[int, int]:
    """What walk_cte computes, from engram's index (engram.graph_index)."""
    with memory.store.graph_view(Criteria(Scope(user_id=user))) as view:
        distance = view.walk({start}, hops)
        distance.pop(USER, None)
        return {int(view.records[row].version): d for row, d in view.naming(distance)}  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--layouts", type=int, nargs="+", default=[1, 100], help="numbers of users")
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--adds", type=int, default=100)
    args = parser.parse_args()
    cast = people(args.people)
    texts = named_sentences(args.size, cast)
    with tempfile.TemporaryDirectory() as tmp:
        for users in args.layouts:
            db = Path(tmp) / f"{users}.db"
            with Memory(home=tmp, db_path=db) as memory:
                pool = memory.embedder.embed(texts[:4000])
                populate(memory, texts, users, pool)
                print(f"\n== {args.size:,} memories over {users} user(s), {args.people} people named ==", flush=True)
                measure(memory, db, users, cast, args.queries, args.adds)


if __name__ == "__main__":
    main()
