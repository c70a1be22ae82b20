"""An in-memory matrix of one scope's versions: exact cosine search and filtering with numpy."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from engram.filters import ALL
from engram.stores.base import Criteria
from engram.types import MemoryRecord

__all__ = ["ScopeMatrix", "MatrixCache"]


class ScopeMatrix:
    """Every version (current and closed) of one query scope, with its vectors, as loaded at `version`."""

    def __init__(self, records: list[MemoryRecord], vectors: np.ndarray, version: int) -> None:
        self.records = records
        self.vectors = vectors
        self.version = version
        self.position = {record.version: i for i, record in enumerate(records)}
        self.valid_from = np.array([r.valid_from for r in records], dtype=np.float64)
        self.valid_to = np.array([np.inf if r.valid_to is None else r.valid_to for r in records], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.records)

    def mask(self, criteria: Criteria) -> np.ndarray:
        """Which rows `criteria` admits (the matrix holds exactly the rows of `criteria.scope`)."""
        if criteria.as_of is None:
            keep = np.isinf(self.valid_to)
        else:
            keep = (self.valid_from <= criteria.as_of) & (criteria.as_of < self.valid_to)
        if criteria.categories or criteria.where is not ALL:
            wanted = set(criteria.categories)
            extra = np.fromiter(
                ((not wanted or bool(wanted & set(r.categories))) and criteria.where.matches(r) for r in self.records),
                bool,
                len(self.records),
            )
            keep &= extra
        return keep

    def top(self, vector: np.ndarray, keep: np.ndarray, k: int) -> list[tuple[MemoryRecord, float]]:
        rows = np.flatnonzero(keep)
        if rows.size == 0 or k <= 0:
            return []
        scores = self.vectors[rows] @ vector if rows.size < len(self.records) else self.vectors @ vector
        if k < rows.size:
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.argsort(-scores[best], kind="stable")]
        else:
            best = np.argsort(-scores, kind="stable")
        return [(self.records[rows[i]], float(scores[i])) for i in best]


class MatrixCache:
    """LRU of ScopeMatrix by query scope, bounded by the total number of rows held."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._entries: OrderedDict[tuple, ScopeMatrix] = OrderedDict()
        self._rows = 0

    def get(self, key: tuple, version: int, load: Callable[[], ScopeMatrix]) -> ScopeMatrix:
        entry = self._entries.get(key)
        if entry is not None and entry.version == version:
            self._entries.move_to_end(key)
            return entry
        if entry is not None:
            self._drop(key)
        entry = load()
        self._entries[key] = entry
        self._rows += len(entry)
        while self._rows > self.max_rows and len(self._entries) > 1:
            self._drop(next(iter(self._entries)))
        return entry

    def _drop(self, key: tuple) -> None:
        self._rows -= len(self._entries.pop(key))

    def clear(self) -> None:
        self._entries.clear()
        self._rows = 0
