"""The Qdrant store in local mode next to the SQLite store at 10k memories over 100 users, in one run.

    python bench/qdrant_vs_sqlite.py [--size 10000] [--users 100] [--queries 300] [--adds 300]

Both stores get the same records and vectors (real MiniLM embeddings of a pool of sentences plus small noise,
as in search_latency.py). Searches exclude query embedding (it is the same for both) and alternate between
the stores query by query, so both see the same machine noise. Local mode is qdrant-client's pure-Python
engine (exact search, no payload indexes); a Qdrant server behaves differently and is not measured here.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import queries, sentences, summary, timed

from engram.components import embedder_from
from engram.config import Settings
from engram.retrieval import search
from engram.stores.base import ChangeSet, Criteria, Store
from engram.stores.qdrant import QdrantStore
from engram.stores.sqlite import SQLiteStore
from engram.types import Event, MemoryRecord, Op, Scope, content_hash


def records(size: int, users: int, pool: np.ndarray, offset: int = 0) -> list[tuple[MemoryRecord, np.ndarray]]:
    rng = np.random.default_rng(offset)
    out = []
    for i, text in enumerate(sentences(size, seed=offset), start=offset):
        vector = pool[i % len(pool)] + rng.normal(scale=0.02, size=pool.shape[1:]).astype(np.float32)
        record = MemoryRecord(id=str(uuid.uuid4()), text=text, hash=content_hash(text), user_id=f"user{i % users}",
                              created_at=1.7e9 + i, updated_at=1.7e9 + i, valid_from=1.7e9 + i)
        out.append((record, vector / np.linalg.norm(vector)))
    return out


def changes(rows: list[tuple[MemoryRecord, np.ndarray]]) -> ChangeSet:
    events = [Event(r.id, Op.ADD, "bench", r.created_at, new_text=r.text) for r, _ in rows]
    return ChangeSet(inserts=rows, events=events)


def populate(store: Store, rows: list[tuple[MemoryRecord, np.ndarray]], dimension: int) -> float:
    """Bulk load in change sets of 500; returns memories per second."""
    store.bind_embedder("bench", dimension)
    elapsed = timed(lambda: [store.apply(changes(rows[i:i + 500])) for i in range(0, len(rows), 500)])
    return len(rows) / elapsed * 1000.0


def one_at_a_time(store: Store, rows: list[tuple[MemoryRecord, np.ndarray]]) -> list[float]:
    """What add(infer=False) of one message costs the store: one change set per memory."""
    return [timed(partial(store.apply, changes([row]))) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--adds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        embedder = embedder_from(Settings.load(home=tmp))
        pool = embedder.embed(sentences(4000, seed=3))
        rows = records(args.size, args.users, pool)
        extra = records(args.adds, args.users, pool, offset=args.size)
        opener = {"sqlite": lambda: SQLiteStore(Path(tmp) / "engram.db"),
                  "qdrant-local": lambda: QdrantStore(path=Path(tmp) / "qdrant")}
        stores = {name: make() for name, make in opener.items()}
        print(f"== {args.size:,} memories over {args.users} users ({args.size // args.users} per user), "
              f"dimension {embedder.dimension} ==")
        for name, store in stores.items():
            rate = populate(store, rows, embedder.dimension)
            print(f"{name:<13} bulk load (change sets of 500): {rate:8.0f} memories/s")
        for name, store in stores.items():
            print(summary(f"{name:<13} one add (1 memory + event)", one_at_a_time(store, extra)))
        measure_search(stores, embedder, args)
        for name, store in stores.items():
            store.close()
            start = time.perf_counter()
            stores[name] = opener[name]()
            print(f"{name:<13} reopen: {time.perf_counter() - start:6.2f} s")
        for store in stores.values():
            store.close()


def measure_search(stores: dict[str, Store], embedder, args: argparse.Namespace) -> None:
    rng = random.Random(2)
    qs = queries(args.queries)
    vectors = embedder.embed(qs)
    crit = [Criteria(Scope(user_id=f"user{rng.randrange(args.users)}")) for _ in qs]
    for store in stores.values():  # warm caches (SQLite's per-user matrices) as a long-running process would
        for c in {c.scope: c for c in crit}.values():
            store.dense(vectors[0], c, 1)
    kinds = {
        "search (dense+keyword+fusion)": lambda s, v, q, c: search(s, v, q, c, 10),
        "  dense only, k=50": lambda s, v, q, c: s.dense(v, c, 50),
        "  keyword only, k=50": lambda s, v, q, c: s.keyword(q, c, 50),
    }
    for kind, run in kinds.items():
        samples: dict[str, list[float]] = {name: [] for name in stores}
        for v, q, c in zip(vectors, qs, crit, strict=True):
            for name, store in stores.items():
                samples[name].append(timed(partial(run, store, v, q, c)))
        for name in stores:
            print(summary(f"{name:<13} {kind}", samples[name]))
    qdrant = stores["qdrant-local"]
    assert isinstance(qdrant, QdrantStore)  # the one store with a native fused query
    fused = [timed(partial(qdrant.fused, v, q, c, 10)) for v, q, c in zip(vectors, qs, crit, strict=True)]
    print(summary("qdrant-local  native RRF query (one request)", fused))


if __name__ == "__main__":
    main()
