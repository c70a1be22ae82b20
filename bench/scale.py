"""Search and add cost as the store grows: N memories over USERS users, SQLite store, MiniLM embedder.

    python bench/scale.py N USERS [--db PATH] [--users-searched 400] [--adds 200] [--profile]

Builds the store (or reuses --db when it already holds N memories), then, in a fresh process state:
  cold-user search: a new Memory, each sampled user searched once (their first search loads their scope),
  warm-user search: the same users and queries again,
  single add:       add(infer=False) of one new message for sampled users (embedding included).
Vectors come from a pool of real MiniLM embeddings plus noise; texts are synthetic sentences. With --profile
the cold-user searches run under cProfile and the top functions by cumulative time are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import queries, sentences, summary

from engram import Memory
from engram.stores.base import ChangeSet
from engram.types import MemoryRecord, content_hash

BATCH = 5000


def build(memory: Memory, size: int, users: int) -> None:
    """size memories, user k holding every users-th one; written in large change sets (the bulk path)."""
    pool = memory.embedder.embed(sentences(4000, seed=3))
    rng = np.random.default_rng(0)
    memory.store.bind_embedder(memory.embedder.name, memory.embedder.dimension)
    start = time.perf_counter()
    texts = sentences(BATCH, seed=7)
    for first in range(0, size, BATCH):
        changes = ChangeSet()
        count = min(size, first + BATCH) - first
        noise = rng.normal(scale=0.02, size=(count, pool.shape[1])).astype(np.float32)
        vectors = pool[(np.arange(first, first + count)) % len(pool)] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for j in range(count):
            i = first + j
            text = f"{texts[j].rsplit(' (#', 1)[0]} (#{i})"
            record = MemoryRecord(id=str(uuid.uuid4()), text=text, hash=content_hash(text), user_id=f"user{i % users}",
                                  created_at=1.7e9 + i, updated_at=1.7e9 + i, valid_from=1.7e9 + i)
            changes.inserts.append((record, vectors[j]))
        memory.store.apply(changes)
        done = first + count
        if done % (20 * BATCH) == 0 or done == size:
            rate = done / (time.perf_counter() - start)
            print(f"  built {done:,} / {size:,}  ({rate:,.0f} memories/s, eta {(size - done) / rate:,.0f} s)",
                  file=sys.stderr, flush=True)


def stored(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def both(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one call (CPU time counts every thread of this process, the embedder's too:
    on a shared machine it moves far less than wall time)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0


def report(name: str, samples: list[tuple[float, float]]) -> None:
    print(summary(name, [w for w, _ in samples]))
    print(summary("  (CPU time)", [c for _, c in samples]))


def measure(home: Path, db: Path, users: int, searched: int, adds: int, profile: bool) -> None:
    rng = random.Random(5)
    picks = rng.sample(range(users), min(users, searched))
    qs = queries(len(picks))
    with Memory(home=home, db_path=db) as memory:
        memory.embedder.embed(["load the model before timing"])
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        calls = [partial(memory.search, q, user_id=f"user{u}", limit=10) for q, u in zip(qs, picks, strict=True)]
        cold = [both(call) for call in calls]
        if profiler:
            profiler.disable()
        warm = [both(call) for call in calls]
        run = uuid.uuid4().hex[:8]  # new texts each run: a known text is a NOOP, not an add
        added = [both(partial(memory.add, f"a brand new fact {run}-{i} about user{u}", user_id=f"user{u}", infer=False))
                 for i, u in enumerate(picks[:adds])]
        embed = [both(partial(memory.embedder.embed, [q])) for q in qs]
    report("cold-user search (incl. query embedding)", cold)
    report("warm-user search (incl. query embedding)", warm)
    report("single add(infer=False) (incl. embedding)", added)
    report("query embedding alone", embed)
    print(f"  database {db.stat().st_size / 1e6:,.0f} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", type=int)
    parser.add_argument("users", type=int)
    parser.add_argument("--db", type=Path, help="keep the built store here (reused when it already holds N)")
    parser.add_argument("--users-searched", type=int, default=400)
    parser.add_argument("--adds", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.db.parent if args.db else Path(tmp)  # the exported model is kept beside a kept store
        db = args.db or home / "scale.db"
        have = stored(db)
        if 0 < have < args.size:
            sys.exit(f"error: {db} holds {have:,} memories, fewer than {args.size:,}")
        if have == 0:
            started = time.perf_counter()
            with Memory(home=home, db_path=db) as memory:
                build(memory, args.size, args.users)
            print(f"built {args.size:,} memories in {time.perf_counter() - started:,.0f} s", file=sys.stderr)
        print(f"== {args.size:,} memories over {args.users:,} users ({args.size // args.users} per user) ==")
        measure(home, db, args.users, args.users_searched, args.adds, args.profile)


if __name__ == "__main__":
    main()
