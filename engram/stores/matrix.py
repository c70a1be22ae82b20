"""An in-memory matrix of one scope's versions: exact cosine search and filtering with numpy, and the versions'
graphs indexed for graph memory (engram.graph_index), both patched by the writes of the process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping

import numpy as np

from engram.filters import ALL
from engram.graph import Graph
from engram.graph_index import GraphIndex
from engram.stores.base import Criteria
from engram.stores.keywords import Document, ScopeTerms, unpack
from engram.stores.sparse import query_terms, term_counts
from engram.types import MemoryRecord, Scope

__all__ = ["MatrixCache", "ScopeMatrix"]


class ScopeMatrix:
    """Every version (current and closed) of one query scope, with its vectors, as loaded at `version`."""

    def __init__(self, records: list[MemoryRecord], vectors: np.ndarray, version: int,
                 documents: list[bytes | None] | None = None) -> None:
        self.records = records
        self._vectors = _Grown(vectors)
        self.version = version
        self.position = {record.version: i for i, record in enumerate(records)}
        self._batches: dict[str | None, list[int]] | None = None  # batch id -> rows, built on first use
        self._documents = documents  # each row's packed sparse vector as stored (None: encode its text)
        self._terms: ScopeTerms | None = None  # the keyword index, built on first use
        self._graph: GraphIndex | None = None  # the rows' graphs, loaded on first use
        self._valid_from = _Grown(np.array([r.valid_from for r in records], dtype=np.float64))
        self._valid_to = _Grown(np.array([np.inf if r.valid_to is None else r.valid_to for r in records],
                                         dtype=np.float64))
        self._expires_at = _Grown(np.array([_expiry(r) for r in records], dtype=np.float64))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors.rows

    @property
    def valid_from(self) -> np.ndarray:
        return self._valid_from.rows

    @property
    def valid_to(self) -> np.ndarray:  # a view: a row closed by a write is set in place
        return self._valid_to.rows

    @property
    def expires_at(self) -> np.ndarray:
        return self._expires_at.rows

    @property
    def terms(self) -> ScopeTerms:
        """The rows' keyword postings (engram.stores.keywords)."""
        if self._terms is None:
            stored = self._documents or [None] * len(self.records)
            self._terms = ScopeTerms([_document(blob, record)
                                      for blob, record in zip(stored, self.records, strict=True)])
            self._documents = None
        return self._terms

    def keyword(self, text: str, keep: np.ndarray, k: int) -> list[tuple[MemoryRecord, float]]:
        """The k admitted rows with the best BM25 for `text` (rows matching no query word are not hits)."""
        query = query_terms(text)
        if not query or k <= 0 or not keep.any():
            return []
        scores = self.terms.scores(query, keep)
        rows = np.flatnonzero(scores > 0)
        if rows.size > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        rows = rows[np.lexsort((rows, -scores[rows]))]  # best first; ties in write order
        return [(self.records[i], float(scores[i])) for i in rows]

    def graph(self, load: Callable[[list[int]], Mapping[int, Graph]]) -> GraphIndex:
        """The rows' graphs, indexed; `load` reads the graphs of versions (those without one are left out)."""
        if self._graph is None:
            found = load([r.version for r in self.records])  # type: ignore[misc]
            self._graph = GraphIndex(found.get(r.version) for r in self.records)  # type: ignore[arg-type]
        return self._graph

    def batch(self, batch_id: str) -> list[MemoryRecord]:
        """This scope's versions written by one batch (one add() call, update, ...)."""
        if self._batches is None:
            self._batches = {}
            for i, record in enumerate(self.records):
                self._batches.setdefault(record.batch_id, []).append(i)
        return [self.records[i] for i in self._batches.get(batch_id, ())]

    def patch(self, scope: Scope, inserted: list[tuple[MemoryRecord, np.ndarray]], changed: list[MemoryRecord],
              version: int, graphs: Mapping[int, Graph] | None = None,
              terms: Mapping[int, bytes] | None = None) -> None:
        """Apply a write this process just committed, instead of reloading the scope from disk. `changed` are
        existing versions as they are now (closed or reopened); `graphs` and `terms` (packed term counts, as the
        store wrote them): the inserted versions', by version."""
        for record in changed:
            i = self.position.get(record.version)
            if i is not None:
                self.records[i] = record
                self.valid_to[i] = np.inf if record.valid_to is None else record.valid_to
        mine = [(r, v) for r, v in inserted if scope.contains(r)]
        if mine:
            start = len(self.records)
            self.records.extend(r for r, _ in mine)
            self.position.update((r.version, start + i) for i, (r, _) in enumerate(mine))
            new = np.stack([v for _, v in mine]).astype(np.float32)
            if start:
                self._vectors.append(new)
            else:
                self._vectors = _Grown(new)  # an empty matrix has no dimension yet
            self._valid_from.append(np.array([r.valid_from for r, _ in mine]))
            self._valid_to.append(np.array([np.inf if r.valid_to is None else r.valid_to for r, _ in mine]))
            self._expires_at.append(np.array([_expiry(r) for r, _ in mine]))
            if self._terms is not None:
                known = terms or {}
                self._terms.append([_document(known.get(r.version or 0), r) for r, _ in mine])
            elif self._documents is not None:
                self._documents.extend(None for _ in mine)
            if self._batches is not None:
                for i, (record, _) in enumerate(mine):
                    self._batches.setdefault(record.batch_id, []).append(start + i)
            if self._graph is not None:
                self._graph.append((graphs or {}).get(r.version) for r, _ in mine)  # type: ignore[arg-type]
        self.version = version

    def mask(self, criteria: Criteria) -> np.ndarray:
        """Which rows `criteria` admits (the matrix holds exactly the rows of `criteria.scope`)."""
        if criteria.as_of is None:
            keep = np.isinf(self.valid_to)
        else:
            keep = (self.valid_from <= criteria.as_of) & (criteria.as_of < self.valid_to)
        cutoff = criteria.expiry_cutoff
        if cutoff is not None:
            keep &= self.expires_at > cutoff
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


class _Grown:
    """A column (or matrix) of a scope's rows that writes append to. It keeps room to grow (half as much again
    when full), so a scope written many times (a bulk import) is copied a few times in all, not at every write."""

    def __init__(self, rows: np.ndarray) -> None:
        self._data = rows
        self._size = len(rows)

    @property
    def rows(self) -> np.ndarray:
        return self._data[: self._size]

    def append(self, new: np.ndarray) -> None:
        end = self._size + len(new)
        if end > len(self._data):
            grown = np.empty((max(end, len(self._data) * 3 // 2), *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = new
        self._size = end


def _document(blob: bytes | None, record: MemoryRecord) -> Document:
    if blob is not None:
        return unpack(blob)
    indices, counts, length = term_counts(record.text)
    return np.asarray(indices, dtype=np.uint32), np.asarray(counts, dtype=np.uint32), length


def _expiry(record: MemoryRecord) -> float:
    return np.inf if record.expires_at is None else record.expires_at


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

    def keys_touching(self, records: list[MemoryRecord]) -> set[tuple]:
        """Cached query scopes that contain any of these records: each record lies in at most 7 query scopes
        (the non-empty subsets of its owner fields), so this costs the same however many scopes are cached."""
        keys = set()
        for owner in {(record.user_id, record.agent_id, record.run_id) for record in records}:
            for subset in range(1, 8):
                key = tuple(value if subset >> i & 1 else None for i, value in enumerate(owner))
                if key in self._entries and key != (None, None, None):
                    keys.add(key)
        return keys

    def patch(self, before: dict[tuple, int], version: int, inserted: list[tuple[MemoryRecord, np.ndarray]],
              changed: list[MemoryRecord], graphs: Mapping[int, Graph] | None = None,
              terms: Mapping[int, bytes] | None = None) -> None:
        """Bring entries that were up to date before a local write (version `before[key]`) to `version`;
        `graphs` and `terms`: the inserted versions', by version (ScopeMatrix.patch)."""
        for key, old in before.items():
            entry = self._entries.get(key)
            if entry is None or entry.version != old:
                continue  # stale already (another process wrote): the next read reloads it
            rows = len(entry)
            entry.patch(Scope(*key), inserted, changed, version, graphs, terms)
            self._rows += len(entry) - rows

    def _drop(self, key: tuple) -> None:
        self._rows -= len(self._entries.pop(key))

    def clear(self) -> None:
        self._entries.clear()
        self._rows = 0
