"""The files store next to SQLite: search latency and add throughput at 10k memories, and the time to bring the
index up to date after 100 edits by hand.

    python bench/files_store.py [--size 10000] [--users 1] [--queries 200]

Store level, with random unit vectors (384 dimensions) and a fake embedder for the hand edits: what is measured
is the store's own work, not MiniLM's. One user holds all memories unless --users says otherwise (the files store
rewrites a scope's memories.md on each write, so a big single scope is its worst case for adds).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import queries, sentences, summary

from engram.stores.base import ChangeSet, Criteria, Store
from engram.stores.files import FilesStore
from engram.stores.sqlite import SQLiteStore
from engram.types import Event, MemoryRecord, Op, Scope, content_hash

DIM = 384
RNG = np.random.default_rng(0)


def unit(n: int) -> np.ndarray:
    vectors = RNG.normal(size=(n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def changes(texts: list[str], users: int, offset: int) -> ChangeSet:
    batch = uuid.uuid4().hex
    records = [MemoryRecord(id=str(uuid.uuid4()), text=t, hash=content_hash(t), user_id=f"user{(offset + i) % users}",
                            created_at=1.7e9 + offset + i, updated_at=1.7e9 + offset + i,
                            valid_from=1.7e9 + offset + i, batch_id=batch, position=i) for i, t in enumerate(texts)]
    return ChangeSet(inserts=list(zip(records, unit(len(records)), strict=True)),
                     events=[Event(r.id, Op.ADD, batch, r.created_at, new_text=r.text, actor="bench") for r in records])


def fill(store: Store, size: int, users: int) -> float:
    """Seconds to add `size` memories in writes of 100."""
    texts = sentences(size)
    start = time.perf_counter()
    for at in range(0, size, 100):
        store.apply(changes(texts[at:at + 100], users, at))
    return time.perf_counter() - start


def single_adds(store: Store, n: int, users: int, size: int) -> float:
    """Adds per second, one memory per write, into the filled store."""
    texts = [f"one more fact number {i}" for i in range(n)]
    start = time.perf_counter()
    for i, text in enumerate(texts):
        store.apply(changes([text], users, size + i))
    return n / (time.perf_counter() - start)


def search_ms(store: Store, n: int) -> list[float]:
    """One search as retrieval makes it: dense and keyword over the user's scope."""
    criteria = Criteria(Scope(user_id="user0"))
    timings = []
    for query, vector in zip(queries(n), unit(n), strict=True):
        start = time.perf_counter()
        store.dense(vector, criteria, 50)
        store.keyword(query, criteria, 50)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def hand_edits(root: Path, store: FilesStore, edits: int) -> float:
    """Seconds until the store has taken in `edits` lines changed by hand in user0's memories.md."""
    path = root / "user-user0" / "memories.md"
    lines = path.read_text().split("\n")
    items = [i for i, line in enumerate(lines) if line.startswith("- ")]
    for n, i in enumerate(items[:edits]):
        lines[i] = re.sub(r"^- (.*?) <!--", rf"- \1, edited by hand {n} <!--", lines[i])
    path.write_text("\n".join(lines))
    start = time.perf_counter()
    store.select(Criteria(Scope(user_id="user0")), limit=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--singles", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "memory"
        stores: dict[str, Store] = {"sqlite": SQLiteStore(Path(tmp) / "engram.db"),
                                    "files": FilesStore(root, embed=lambda texts: unit(len(texts)))}
        results = {}
        for name, store in stores.items():
            store.bind_embedder("bench", DIM)
            seconds = fill(store, args.size, args.users)
            singles = single_adds(store, args.singles, args.users, args.size)
            search_ms(store, 20)  # warm: matrices loaded
            timings = search_ms(store, args.queries)
            results[name] = timings
            print(f"{name:7s} fill {args.size} in writes of 100: {args.size / seconds:8.0f} memories/s | "
                  f"single adds: {singles:6.1f}/s")
            print(summary(f"{name} search (dense + keyword, k=50)", timings))
        ratio = np.median(results["files"]) / np.median(results["sqlite"])
        print(f"files/sqlite median search latency: {ratio:.2f}x")
        files = stores["files"]
        assert isinstance(files, FilesStore)
        print(f"index up to date after 100 hand edits: {hand_edits(root, files, 100) * 1000:.0f} ms")
        files.close()
        for leftover in root.glob(".index.db*"):
            leftover.unlink()
        start = time.perf_counter()
        again = FilesStore(root)
        print(f"index rebuilt from the files ({args.size + args.singles} memories): "
              f"{(time.perf_counter() - start) * 1000:.0f} ms")
        again.close()
        stores["sqlite"].close()


if __name__ == "__main__":
    main()
