"""Search and add cost as the store grows: N memories over USERS users, SQLite store, MiniLM embedder.

    python bench/scale.py N USERS [--db PATH] [--users-searched 400] [--adds 200] [--profile]

Builds the store (reusing --db when an earlier run built N memories into it, growing it when it built fewer with
the same memories per user: 5000000 100000 then 10000000 200000), then, in a fresh process state:
  cold-user search: a new Memory, each sampled user searched once (their first search loads their scope),
  warm-user search: the same users and queries again,
  single add:       add(infer=False) of one new message for sampled users (embedding included).
Vectors come from a pool of real MiniLM embeddings plus noise; texts are synthetic sentences. With --profile
the cold-user searches run under cProfile and the top functions by cumulative time are printed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
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


def build(memory: Memory, db: Path, size: int, users: int, have: int, old_users: int) -> None:
    """Grow the store from what --db already holds to size memories, written in large change sets (the bulk
    path). The memories added in one run go round-robin to that run's new users, so a 5M/100k store grown to
    10M/200k holds the 5M/100k store first, and every user's rows stay scattered over the file."""
    pool = memory.embedder.embed(sentences(4000, seed=3))
    rng = np.random.default_rng(have)
    memory.store.bind_embedder(memory.embedder.name, memory.embedder.dimension)
    start = time.perf_counter()
    texts = sentences(BATCH, seed=7)
    for first in range(have, size, BATCH):
        changes = ChangeSet()
        count = min(size, first + BATCH) - first
        noise = rng.normal(scale=0.02, size=(count, pool.shape[1])).astype(np.float32)
        vectors = pool[(np.arange(first, first + count)) % len(pool)] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for j in range(count):
            i = first + j
            text = f"{texts[j].rsplit(' (#', 1)[0]} (#{i})"
            user = old_users + (i - have) % (users - old_users)
            record = MemoryRecord(id=str(uuid.uuid4()), text=text, hash=content_hash(text), user_id=f"user{user}",
                                  created_at=1.7e9 + i, updated_at=1.7e9 + i, valid_from=1.7e9 + i)
            changes.inserts.append((record, vectors[j]))
        memory.store.apply(changes)
        done = first + count
        _sidecar(db).write_text(json.dumps({"size": done, "users": users if done == size else old_users}))
        if (done - have) % (20 * BATCH) == 0 or done == size:
            rate = (done - have) / (time.perf_counter() - start)
            print(f"  built {done:,} / {size:,}  ({rate:,.0f} memories/s, eta {(size - done) / rate:,.0f} s)",
                  file=sys.stderr, flush=True)


def _sidecar(db: Path) -> Path:
    return db.with_name(db.name + ".built.json")


def built(db: Path) -> tuple[int, int]:
    """(memories, users) that earlier runs built into db, from the note they left beside it; (0, 0) for none."""
    note = _sidecar(db)
    if not db.exists():
        return 0, 0
    if not note.exists():
        sys.exit(f"error: {db} exists but {note.name} beside it does not say what was built into it")
    data = json.loads(note.read_text())
    return int(data["size"]), int(data["users"])


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
        have, old_users = built(db)
        if have > args.size or (have < args.size and old_users not in (0, args.users * have // args.size)):
            sys.exit(f"error: {db} holds {have:,} memories over {old_users:,} users: it cannot grow to "
                     f"{args.size:,} over {args.users:,} with the same memories per user")
        if have < args.size:
            started = time.perf_counter()
            with Memory(home=home, db_path=db) as memory:
                build(memory, db, args.size, args.users, have, old_users)
            print(f"built {args.size - have:,} memories in {time.perf_counter() - started:,.0f} s", file=sys.stderr)
        print(f"== {args.size:,} memories over {args.users:,} users ({args.size // args.users} per user) ==")
        measure(home, db, args.users, args.users_searched, args.adds, args.profile)


if __name__ == "__main__":
    main()
