"""Keyword search inside one scope: BM25 over the scope's own postings, so its cost follows the scope's size.

Each version stores its term counts and length (engram.stores.sparse.term_counts: hashed Porter stems) beside
its dense vector. A scope's versions are loaded together (see ScopeMatrix); this index keeps their postings
sorted by term, and a query reads only the postings of its own terms within the scope. Scores are SQLite
FTS5's BM25 (k1 = 1.2, b = 0.75), with the document count, document frequencies and average length taken
over the rows the search may return, so what other users write never changes a user's ranking.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["Document", "ScopeTerms", "pack", "unpack"]

K1, B = 1.2, 0.75
# Two tokens more per document than its text holds: the FTS5 index this replaced counted a current row's two
# scope tokens in its length. Kept so that rankings (and the fusion tuned on them) stay exactly as they were.
LENGTH_OFFSET = 2.0
# Postings appended by writes after the index was built stay in a short unsorted tail, scanned per query, and
# are merged into the sorted arrays once the tail holds this many.
_TAIL = 2048

Document = tuple[np.ndarray, np.ndarray, int]  # term indices (uint32), their counts, the length in tokens


def pack(indices: Sequence[int], counts: Sequence[int], length: int) -> bytes:
    """A document's terms as bytes: uint32 length, then the term indices, then their counts."""
    return np.array([length, *indices, *counts], dtype=np.uint32).tobytes()


def unpack(blob: bytes) -> Document:
    values = np.frombuffer(blob, dtype=np.uint32)
    n = (len(values) - 1) // 2
    return values[1 : 1 + n], values[1 + n :], int(values[0])


class ScopeTerms:
    """The postings (term, row, count) of one scope's rows, sorted by term, and each row's length."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.lengths = np.fromiter((d[2] + LENGTH_OFFSET for d in documents), dtype=np.float64, count=len(documents))
        self._terms, self._rows, self._counts = _postings(documents, 0)
        self._tail: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def append(self, documents: Sequence[Document]) -> None:
        """Rows added after the existing ones (row numbers continue from self.rows)."""
        if documents:
            self._tail.append(_postings(documents, self.rows))
            self.lengths = np.concatenate([self.lengths, [d[2] + LENGTH_OFFSET for d in documents]])
        if sum(len(t) for t, _, _ in self._tail) > _TAIL:
            self._merge()

    def scores(self, query: Iterable[int], admitted: np.ndarray) -> np.ndarray:
        """BM25 of every row for the query's term indices, one per query word (0 where no term matches). `admitted`
        marks the rows that count for the statistics (document count, frequencies, average length) and may score."""
        scores = np.zeros(self.rows, dtype=np.float64)
        total = int(admitted.sum())
        if total == 0:
            return scores
        lengths = self.lengths
        average = float(lengths[admitted].mean())
        for term in query:
            rows, counts = self._postings(term)
            keep = admitted[rows]
            rows, tf = rows[keep], counts[keep].astype(np.float64)
            if len(rows):
                idf = math.log((total - len(rows) + 0.5) / (len(rows) + 0.5))
                idf = idf if idf > 0 else 1e-6  # as FTS5: a word in most rows still counts a little
                norm = K1 * (1.0 - B + B * lengths[rows] / average)
                np.add.at(scores, rows, idf * tf * (K1 + 1.0) / (tf + norm))
        return scores

    def _postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.searchsorted(self._terms, term, "left"), np.searchsorted(self._terms, term, "right")
        rows, counts = self._rows[lo:hi], self._counts[lo:hi]
        if self._tail:
            hits = [(r[t == term], c[t == term]) for t, r, c in self._tail]
            rows = np.concatenate([rows, *(r for r, _ in hits)])
            counts = np.concatenate([counts, *(c for _, c in hits)])
        return rows, counts

    def _merge(self) -> None:
        parts = [(self._terms, self._rows, self._counts), *self._tail]
        terms, rows, counts = (np.concatenate([p[i] for p in parts]) for i in range(3))
        order = np.argsort(terms, kind="stable")
        self._terms, self._rows, self._counts = terms[order], rows[order], counts[order]
        self._tail = []


def _postings(documents: Sequence[Document], first_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not documents:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.uint32)
    sizes = np.fromiter((len(d[0]) for d in documents), dtype=np.int64, count=len(documents))
    terms = np.concatenate([np.asarray(d[0], dtype=np.uint32) for d in documents])
    counts = np.concatenate([np.asarray(d[1], dtype=np.uint32) for d in documents])
    rows = np.repeat(np.arange(first_row, first_row + len(documents), dtype=np.int64), sizes)
    order = np.argsort(terms, kind="stable")
    return terms[order], rows[order], counts[order]
