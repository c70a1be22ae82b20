"""Search latency at 10k and 100k memories over 100 users (SQLite store, MiniLM embedder).

    python bench/search_latency.py [--sizes 10000 100000] [--users 100] [--queries 400]

Memory texts are synthetic; their vectors are real MiniLM embeddings of a pool of distinct sentences (plus
small noise, so no two are equal), which keeps building 100k memories to a minute. Latency depends on matrix
size and keyword matches, not on which sentences they are.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import uuid
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import queries, sentences, summary, timed

from engram import Memory
from engram.retrieval import search
from engram.stores.base import ChangeSet, Criteria
from engram.types import MemoryRecord, Scope, content_hash


def populate(memory: Memory, size: int, users: int, pool: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    texts = sentences(size)
    memory.store.bind_embedder(memory.embedder.name, memory.embedder.dimension)
    for start in range(0, size, 2000):
        changes = ChangeSet()
        for i in range(start, min(size, start + 2000)):
            vector = pool[i % len(pool)] + rng.normal(scale=0.02, size=pool.shape[1:]).astype(np.float32)
            record = MemoryRecord(id=str(uuid.uuid4()), text=texts[i], hash=content_hash(texts[i]),
                                  user_id=f"user{i % users}", created_at=1.7e9 + i, updated_at=1.7e9 + i,
                                  valid_from=1.7e9 + i)
            changes.inserts.append((record, vector / np.linalg.norm(vector)))
        memory.store.apply(changes)


def measure(memory: Memory, users: int, count: int) -> None:
    rng = random.Random(2)
    qs = queries(count)
    picks = [f"user{rng.randrange(users)}" for _ in qs]
    for user in {*picks}:  # load every scope's matrix once, as a long-running process would have
        memory.search("warm up", user_id=user)
    full = [timed(partial(memory.search, q, user_id=u, limit=10)) for q, u in zip(qs, picks, strict=True)]
    vectors = memory.embedder.embed(qs)
    crit = [Criteria(Scope(user_id=u)) for u in picks]
    no_embed = [timed(partial(search, memory.store, v, q, c, 10)) for v, q, c in zip(vectors, qs, crit, strict=True)]
    dense = [timed(partial(memory.store.dense, v, c, 50)) for v, c in zip(vectors, crit, strict=True)]
    keyword = [timed(partial(memory.store.keyword, q, c, 50)) for q, c in zip(qs, crit, strict=True)]
    embed = [timed(partial(memory.embedder.embed, [q])) for q in qs]
    after_write = []
    for i in range(min(users, 50)):  # a write invalidates the user's cached matrix: the next search reloads it
        memory.add(f"fresh fact number {i}", user_id=f"user{i}", infer=False)
        after_write.append(timed(partial(memory.search, "first query after a write", user_id=f"user{i}")))
    for name, samples in [("search incl. query embedding", full),
                          ("search excl. embedding (dense+kw+fusion)", no_embed),
                          ("  dense only (numpy)", dense), ("  keyword only (FTS5)", keyword),
                          ("  query embedding only", embed), ("search right after a write to that user", after_write)]:
        print(summary(name, samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            with Memory(home=tmp, db_path=Path(tmp) / f"{size}.db") as memory:
                pool = memory.embedder.embed(sentences(4000, seed=3))
                populate(memory, size, args.users, pool)
                print(f"\n== {size:,} memories over {args.users} users ({size // args.users} per user) ==")
                measure(memory, args.users, args.queries)


if __name__ == "__main__":
    main()
