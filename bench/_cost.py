"""Figure 7: the cost of one user's add and search does not grow with other users. Two SQLite stores hold the
same user's memories; the second also holds `others` users' memories, each user's matrix loaded in the store's
cache (`SQLiteStore._cache`), as a long-running server would have them. Timings alternate between the stores."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import queries, sentences
from _fakes import HashEmbedder

from engram import Memory
from engram.stores.base import ChangeSet, Criteria
from engram.stores.sqlite import SQLiteStore
from engram.types import Event, MemoryRecord, Op, Scope, content_hash

__all__ = ["Cost", "run_cost"]

ME = "me"


@dataclass
class Cost:
    others: int
    cached: tuple[int, int]  # matrices in each store's cache
    add: tuple[float, float]  # median ms: alone, among others
    search: tuple[float, float]
    samples: int
    populate_s: float
    parts: dict[str, tuple[float, float]]  # store-level dense / keyword search (no embedding), median ms


    def ratio(self, name: str) -> float:
        alone, crowded = getattr(self, name)
        return crowded / alone


def _insert(store: SQLiteStore, users: list[str], texts: list[str], dimension: int, rng: np.random.Generator) -> None:
    """One memory per (user, text), straight into the store in large change sets (an add per user would take long).
    Memories form batches (add() calls) of 1 to 10 consecutive texts of the same user."""
    batch, position = "", 0
    for start in range(0, len(users), 5000):
        changes, stamp = ChangeSet(), time.time()
        vectors = rng.standard_normal((min(5000, len(users) - start), dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i, vector in enumerate(vectors):
            text, user = texts[start + i], users[start + i]
            if position == 0 or position >= rng.integers(1, 11) or users[start + i - 1] != user:
                batch, position = uuid.uuid4().hex, 0
            record = MemoryRecord(id=str(uuid.uuid4()), text=text, hash=content_hash(text), user_id=user,
                                  created_at=stamp, updated_at=stamp, valid_from=stamp, batch_id=batch,
                                  position=position)
            position += 1
            changes.inserts.append((record, vector))
            changes.events.append(Event(record.id, Op.ADD, batch, stamp, new_text=text))
        store.apply(changes)


def _crowd(store: SQLiteStore, others: int, dimension: int) -> None:
    users = [f"user{i:06d}" for i in range(others)]
    _insert(store, users, sentences(others, seed=7), dimension, np.random.default_rng(7))
    for user in users:  # load each user's matrix into the cache, as searches of every user would
        store._matrix(Scope(user))


def _measure(memories: list[Memory], samples: int, seed: int) -> tuple[list[list[float]], list[list[float]]]:
    rng = random.Random(seed)
    adds: list[list[float]] = [[] for _ in memories]
    searches: list[list[float]] = [[] for _ in memories]
    qs = queries(samples, seed=seed)
    for n in range(samples):
        order = list(range(len(memories)))
        rng.shuffle(order)  # alternate, so a busy moment of the shared machine falls on both
        for i in order:
            text = f"{sentences(1, seed=seed * 100_000 + n)[0]} (sample {n})"
            start = time.perf_counter()
            memories[i].add(text, user_id=ME, infer=False)
            adds[i].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            memories[i].search(qs[n], user_id=ME, limit=10)
            searches[i].append((time.perf_counter() - start) * 1000)
    return adds, searches


def _parts(stores: list[SQLiteStore], samples: int, seed: int, dimension: int) -> dict[str, tuple[float, float]]:
    """Where a search's time goes: the store's dense and keyword halves, timed alone, alternating stores."""
    criteria, embedder = Criteria(Scope(ME)), HashEmbedder(dimension)
    found: dict[str, tuple[float, float]] = {}
    for name in ("dense", "keyword"):
        times: list[list[float]] = [[], []]
        for q in queries(samples, seed=seed + 1):
            vector = embedder.embed([q])[0]
            for i, store in enumerate(stores):
                start = time.perf_counter()
                store.dense(vector, criteria, 50) if name == "dense" else store.keyword(q, criteria, 50)
                times[i].append((time.perf_counter() - start) * 1000)
        found[name] = (statistics.median(times[0]), statistics.median(times[1]))
    return found


def run_cost(base: Path, seed: int, others: int, samples: int, mine: int = 200, dimension: int = 384) -> Cost:
    stores = [SQLiteStore(base / "alone.db"), SQLiteStore(base / "crowded.db")]
    embedder = HashEmbedder(dimension)
    for store in stores:
        store.bind_embedder(embedder.name, embedder.dimension)
        _insert(store, [ME] * mine, sentences(mine, seed=seed), dimension, np.random.default_rng(seed))
    start = time.monotonic()
    _crowd(stores[1], others, dimension)
    populated = time.monotonic() - start
    memories = [Memory(home=base, store=store, embedder=embedder) for store in stores]
    try:
        for m in memories:
            m.search("warm up", user_id=ME)
        adds, searches = _measure(memories, samples, seed)
        parts = _parts(stores, samples, seed, dimension)
        cached = (len(stores[0]._cache._entries), len(stores[1]._cache._entries))
    finally:
        for m in memories:
            m.close()
    median = statistics.median
    return Cost(others, cached, (median(adds[0]), median(adds[1])), (median(searches[0]), median(searches[1])),
                samples, populated, parts)
