"""Fakes and plumbing shared by bench/reliability.py: embedders that cost nothing, the worst reconciler, stores."""

from __future__ import annotations

import hashlib
import itertools
import random
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engram import Memory
from engram.embed.base import Embedder
from engram.extract import Fact
from engram.inputs import Message
from engram.llm import Usage
from engram.pipeline import Pipeline
from engram.reconcile import Candidate, Proposal
from engram.stores.base import Store
from engram.types import Op

__all__ = ["EveryCandidate", "HashEmbedder", "PoolEmbedder", "Verbatim", "WordHashEmbedder", "open_memory",
           "open_store"]


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")


class HashEmbedder(Embedder):
    """A random unit vector seeded by the text's hash: deterministic, free, and meaningless."""

    name = "bench-hash"

    def __init__(self, dimension: int = 64) -> None:
        self.dimension = dimension

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([np.random.default_rng(_seed(t)).standard_normal(self.dimension) for t in texts])


class WordHashEmbedder(HashEmbedder):
    """The sum of one seeded random vector per word: texts sharing words are similar, so the offline
    reconciler finds something to supersede."""

    name = "bench-word-hash"

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = text.casefold().split() or [""]
            rows.append(sum(np.random.default_rng(_seed(w)).standard_normal(self.dimension) for w in words))
        return np.stack(rows)


class PoolEmbedder(Embedder):
    """Real vectors at no cost: a text gets one of a pool of precomputed embeddings, picked by its hash, so a
    bulk import through it measures everything but the embedding."""

    name = "bench-pool"
    batch_size = 1024

    def __init__(self, pool: np.ndarray) -> None:
        self.pool = np.asarray(pool, dtype=np.float32)
        self.dimension = self.pool.shape[1]

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.pool[[zlib.crc32(t.encode("utf-8", "surrogatepass")) % len(self.pool) for t in texts]]


class Verbatim:
    """An extractor that takes each user message as one fact, as it is."""

    def extract(self, messages: list[Message], when: float, categories: tuple[str, ...], usage: Usage) -> list[Fact]:
        return [Fact(m.content) for m in messages if m.role == "user"]


class EveryCandidate:
    """The worst reconciler: UPDATE or DELETE of every candidate it is shown, and an id out of range."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def reconcile(self, facts: list[Fact], candidates: list[Candidate], similarity: list[list[float]],
                  usage: Usage) -> list[Proposal]:
        pairs = itertools.product(range(len(facts)), range(len(candidates)))
        proposals = [Proposal(self.rng.choice([Op.UPDATE, Op.DELETE]), i, j, text=f"rewritten {j} by fact {i}")
                     for i, j in pairs]
        return [*proposals, Proposal(Op.UPDATE, 0, 10_000, text="out of range")]


def open_store(kind: str, home: Path) -> Store:
    if kind == "sqlite":
        from engram.stores.sqlite import SQLiteStore

        return SQLiteStore(home / "engram.db")
    from engram.stores.qdrant import QdrantStore

    return QdrantStore(path=home / "qdrant")


def open_memory(kind: str, home: Path, embedder: Embedder | None = None, pipeline: Pipeline | None = None) -> Memory:
    home.mkdir(parents=True, exist_ok=True)
    return Memory(home=home, store=open_store(kind, home), embedder=embedder or HashEmbedder(), pipeline=pipeline)
