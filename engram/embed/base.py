"""The embedder protocol: one abstract method, the conveniences built on it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from engram.errors import EmbedderError

__all__ = ["Embedder"]


class Embedder(ABC):
    """Turns texts into unit-length float32 vectors.

    Subclasses set `name` (stable, recorded in the store: vectors of two names never mix), `dimension`,
    and implement `embed_batch`.
    """

    name: str
    dimension: int
    batch_size: int = 64

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed at most `batch_size` texts; returns an (n, dimension) array."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed any number of texts in batches; rows are L2-normalised float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Batching texts of similar length wastes less work on padding; the caller still gets input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        parts = [self.embed_batch(ordered[i : i + self.batch_size]) for i in range(0, len(ordered), self.batch_size)]
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        stacked = np.asarray(np.concatenate(parts), dtype=np.float32)
        if stacked.shape != (len(texts), self.dimension):
            raise EmbedderError(f"{self.name} returned vectors of shape {stacked.shape} for {len(texts)} texts "
                                f"(expected dimension {self.dimension})")
        vectors[order] = stacked
        if not np.isfinite(vectors).all():
            raise EmbedderError(f"{self.name} returned non-finite values")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if (norms == 0).any():
            raise EmbedderError(f"{self.name} returned a zero vector")
        return vectors / norms

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
