"""The embedded default store: one SQLite file (WAL) holding memories, their dense and sparse vectors, and history.

Dense search is exact: each query scope's vectors are loaded once into a numpy matrix and reused while the
scope's version (bumped in the same transaction as every write touching it) is unchanged, which keeps the
cache coherent with writes from this process and from any other process using the same file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np

from engram.errors import EmbedderMismatch, NotFound, StoreError
from engram.graph import Graph
from engram.graph_index import GraphView
from engram.stores.base import ChangeSet, Criteria, Store, UserStats, batch_neighbours
from engram.stores.changes import (
    Checked,
    State,
    check,
    wanted_ids,
    wanted_twins,
    with_versions,
)
from engram.stores.keywords import pack
from engram.stores.matrix import MatrixCache, ScopeMatrix
from engram.stores.sparse import term_counts
from engram.stores.sqlite_graph import read_graphs, write_graphs
from engram.stores.sqlite_open import (
    BINDING,
    check_binding,
    connect,
    record_binding,
    unwritable,
)
from engram.stores.sqlite_rows import (
    COLUMNS,
    HISTORY_INSERT,
    OWNED,
    USER_STATS,
    VERSIONS,
    history_row,
    insert_version,
    log_event,
    rows_in,
    to_record,
)
from engram.stores.sqlite_sessions import SQLiteSessions
from engram.stores.vectors import VectorStorage, as_read, decode
from engram.types import SCOPE_FIELDS, Event, MemoryRecord, Op, Scope, now

__all__ = ["SQLiteStore"]

class SQLiteStore(Store):
    def __init__(self, path: str | Path, *, cache_rows: int = 500_000, timeout: float = 30.0,
                 vector_storage: VectorStorage = "float16") -> None:
        self.path = Path(path)
        self.vector_storage = vector_storage  # how this handle writes new vectors (engram.stores.vectors)
        self._lock = threading.RLock()
        self._cache = MatrixCache(cache_rows)
        self.read_only = unwritable(self.path)  # why engram may not write this database; None when it may
        self._db = connect(self.path, timeout, self.read_only)
        self._binding: tuple[str, int] | None = None  # this handle's embedder, once bound
        self.sessions: SQLiteSessions = SQLiteSessions(self._write, self._read)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it lands or none of it."""
        with self._lock:
            if self.read_only is not None:
                raise StoreError(f"cannot write {self.path}: {self.read_only}; engram can read it, not change it")
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a write on {self.path}: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"write to {self.path} failed: {exc}") from exc
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"read from {self.path} failed: {exc}") from exc

    # -- protocol ----------------------------------------------------------------------------------------

    def bind_embedder(self, name: str, dimension: int) -> None:
        if self.read_only is not None:  # nothing can be bound without a write: check the binding it holds, if any
            check_binding(self.path, dict(self._read(BINDING)), name, dimension)
        else:
            with self._write() as db:
                rows = dict(db.execute(BINDING))
                if not rows:
                    record_binding(db, name, dimension)
                check_binding(self.path, rows, name, dimension)
        self._binding = (name, dimension)

    def binding(self) -> tuple[str, int] | None:
        rows = dict(self._read(BINDING))
        return (rows["embedder"], int(rows["dimension"])) if len(rows) == 2 else None

    def apply(self, changes: ChangeSet) -> list[MemoryRecord]:
        terms = [changes.terms.get(i) or pack(*term_counts(record.text))  # counted before taking the write
                 for i, (record, _) in enumerate(changes.inserts)]
        with self._lock:  # held until the cache is patched too
            with self._write() as db:
                stored, checked, before, seq = self._apply(db, changes, terms)
            changed = [ended for _, _, ended in checked.closes] + checked.reopens
            written = [(stored[i], as_read(changes.inserts[i][1], self.vector_storage)) for i in checked.kept]
            graphs = {stored[i].version: changes.graph[i] for i in checked.kept if changes.graph.get(i)}
            documents = {stored[i].version: terms[i] for i in checked.kept}
            self._cache.patch(before, seq, written, changed, graphs, documents)  # type: ignore[arg-type]
        return [stored[i] for i in range(len(changes.inserts))]

    def _apply(self, db: sqlite3.Connection, changes: ChangeSet,
               terms: list[bytes]) -> tuple[dict[int, MemoryRecord], Checked, dict, int]:
        """Read what the change set depends on, decide (engram.stores.changes), then write it, in `db`'s write;
        `terms`: each insert's packed term counts."""
        checked = check(changes, self._state(db, changes))
        for _, before, ended in checked.closes:
            db.execute("UPDATE memories SET valid_to=?, superseded_by=? WHERE rowid=?",
                       (ended.valid_to, ended.superseded_by, before.version))
        for record in checked.reopens:
            db.execute("UPDATE memories SET valid_to=NULL, superseded_by=NULL WHERE rowid=?", (record.version,))
        stored: dict[int, MemoryRecord] = dict(checked.twins)
        versions: dict[str, int] = {}
        graphs: list[tuple[int, Graph]] = []  # by version: a copy may insert several versions of one memory
        for i in checked.kept:
            record, vector = changes.inserts[i]
            versions[record.id] = insert_version(db, record, vector, changes.keep_versions, self.vector_storage,
                                                 terms[i])
            stored[i] = record.at_version(versions[record.id])
            if changes.graph.get(i):
                graphs.append((versions[record.id], changes.graph[i]))
        write_graphs(db, graphs)
        closed = checked.closed
        events = [with_versions(event, closed, versions) for event in checked.events]
        if changes.keep_versions:
            for event in events:
                log_event(db, event, keep=True)
        else:
            db.executemany(HISTORY_INSERT, map(history_row, events))
        if changes.saved is not None:
            self.sessions.mark_in(db, *changes.saved)
        touched = [stored[i] for i in checked.kept] + [ended for _, _, ended in checked.closes] + checked.reopens
        cached = {key: self._scope_version(db, Scope(*key)) for key in self._cache.keys_touching(touched)}
        owners = {(r.user_id, r.agent_id, r.run_id) for r in touched}  # a few, however many rows
        seq = self._bump(db, {f"{k}\x00{v}" for owner in owners for k, v in zip(SCOPE_FIELDS, owner, strict=True)
                                 if v is not None})
        return stored, checked, cached, seq

    def _state(self, db: sqlite3.Connection, changes: ChangeSet) -> State:
        """What `check` needs, read inside the write."""
        at = now()
        dimension = self._binding_in(db) if changes.inserts else 0
        reopened = {}
        for version in changes.reopens:
            row = db.execute(f"SELECT {COLUMNS} FROM memories WHERE rowid=?", (version,)).fetchone()
            if row is not None:
                reopened[version] = to_record(row)
        current = {r.id: r for r in rows_in(db, f"SELECT {COLUMNS} FROM memories WHERE valid_to IS NULL AND id IN",
                                             wanted_ids(changes, reopened), to_record)}
        twins = {(scope, h): r for scope, hashes in wanted_twins(changes, at).items()
                 for h, r in self._twins(db, scope, hashes, at).items()}
        kept = [r.version for r, _ in changes.inserts if r.version is not None] if changes.keep_versions else []
        taken = frozenset(rows_in(db, "SELECT rowid FROM memories WHERE rowid IN", kept, lambda row: row[0]))
        found = changes.saved is None or self.sessions.started(db, changes.saved[0], changes.saved[1])
        return State(current, reopened, twins, at, dimension, taken, found)

    def _binding_in(self, db: sqlite3.Connection) -> int:
        """The bound dimension, read inside the write: another handle may have reset the store meanwhile (then
        this handle's embedder binds it again) or bound it to another embedder (then nothing is written)."""
        rows = dict(db.execute(BINDING))
        if not rows:
            if self._binding is None:
                raise StoreError("no embedder is bound to this store yet: call bind_embedder() first")
            record_binding(db, *self._binding)
            return self._binding[1]
        if self._binding is not None:
            check_binding(self.path, rows, *self._binding)
        return int(rows.get("dimension", 0))

    @staticmethod
    def _scope_version(db: sqlite3.Connection, scope: Scope) -> int:
        name, value = scope.items()[0]
        row = db.execute("SELECT version FROM scope_versions WHERE key=?", (f"{name}\x00{value}",)).fetchone()
        return row[0] if row else 0

    @staticmethod
    def _bump(db: sqlite3.Connection, keys: set[str]) -> int:
        """Give every touched scope key a new, globally increasing version; return it."""
        db.execute(
            "INSERT INTO engram_meta VALUES ('write_seq', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
        seq = int(db.execute("SELECT value FROM engram_meta WHERE key='write_seq'").fetchone()[0])
        db.executemany(
            "INSERT INTO scope_versions VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET version=excluded.version",
            [(key, seq) for key in keys],
        )
        return seq

    def get(self, memory_id: str) -> MemoryRecord | None:
        rows = self._read(
            f"SELECT {COLUMNS} FROM memories WHERE id=? ORDER BY valid_to IS NULL DESC, rowid DESC LIMIT 1",
            (memory_id,),
        )
        return to_record(rows[0]) if rows else None

    def find_hashes(self, scope: Scope, hashes: list[str]) -> dict[str, MemoryRecord]:
        with self._lock:
            try:
                return self._twins(self._db, scope, hashes, now())
            except sqlite3.Error as exc:
                raise StoreError(f"read from {self.path} failed: {exc}") from exc

    @staticmethod
    def _twins(db: sqlite3.Connection, scope: Scope, hashes: list[str], at: float) -> dict[str, MemoryRecord]:
        """Current records of exactly `scope` holding these hashes, unexpired at `at`."""
        sql = (f"SELECT {COLUMNS} FROM memories WHERE valid_to IS NULL AND user_id IS ? AND agent_id IS ? "
               "AND run_id IS ? AND (expires_at IS NULL OR expires_at > ?) AND hash IN")
        rows = rows_in(db, sql, hashes, to_record, (scope.user_id, scope.agent_id, scope.run_id, at))
        return {record.hash: record for record in rows}

    def _matrix(self, scope: Scope) -> ScopeMatrix:
        with self._lock:
            try:
                version = self._scope_version(self._db, scope)
            except sqlite3.Error as exc:
                raise StoreError(f"read from {self.path} failed: {exc}") from exc
            return self._cache.get((scope.user_id, scope.agent_id, scope.run_id), version,
                                   lambda: self._load(scope, version))

    def _load(self, scope: Scope, version: int) -> ScopeMatrix:
        where = " AND ".join(f"{name}=?" for name, _ in scope.items())
        rows = self._read(
            f"SELECT {COLUMNS}, terms, vector FROM memories WHERE {where} ORDER BY rowid",
            tuple(value for _, value in scope.items()),
        )
        dimension = self._dimension()
        if self._binding is not None and dimension != self._binding[1]:
            raise EmbedderMismatch(f"{self.path} holds vectors of dimension {dimension}; this handle's embedder "
                                   f"{self._binding[0]!r} makes {self._binding[1]} (another handle reset the store)")
        vectors = decode([row[-1] for row in rows], dimension)
        return ScopeMatrix([to_record(row[:-2]) for row in rows], vectors, version, [row[-2] for row in rows])

    # Matrices are patched in place by this handle's writes: every read of one holds the lock, so a search in
    # one thread never sees a matrix half-grown by a write in another.

    def select(self, criteria: Criteria, limit: int | None = None) -> list[MemoryRecord]:
        with self._lock:
            matrix = self._matrix(criteria.scope)
            records = [matrix.records[i] for i in np.flatnonzero(matrix.mask(criteria))]
        records.sort(key=lambda r: (r.updated_at, r.version or 0), reverse=True)
        return records if limit is None else records[:limit]

    def dense(self, vector: np.ndarray, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        with self._lock:
            matrix = self._matrix(criteria.scope)
            return matrix.top(np.asarray(vector, dtype=np.float32), matrix.mask(criteria), k)

    def keyword(self, text: str, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        """BM25 over the query scope's own postings (engram.stores.keywords): the cost follows the scope."""
        with self._lock:
            matrix = self._matrix(criteria.scope)
            return matrix.keyword(text, matrix.mask(criteria), k)

    def neighbours(self, versions: list[int], criteria: Criteria,
                   window: int) -> dict[int, list[tuple[MemoryRecord | None, MemoryRecord | None]]]:
        with self._lock:
            matrix = self._matrix(criteria.scope)
            keep = matrix.mask(criteria)
            wanted = {matrix.records[i].batch_id for i in (matrix.position.get(v) for v in versions) if i is not None}
            records = [r for batch in wanted if batch is not None for r in matrix.batch(batch)]
            # asked of the batches' rows only: a set of every admitted version cost as much as the scope holds
            admitted = {r.version for r in records if keep[matrix.position[r.version]]}
        return batch_neighbours(records, lambda r: r.version in admitted, versions, window)

    def _dimension(self) -> int:
        """The dimension of the stored vectors, as the store records it (this handle's before any is)."""
        stored = dict(self._read(BINDING)).get("dimension")
        return int(stored) if stored is not None else (self._binding[1] if self._binding else 0)

    keeps_graph = True

    def graph(self, criteria: Criteria) -> list[tuple[MemoryRecord, Graph]]:
        with self.graph_view(criteria) as view:
            return view.admitted()

    @contextmanager
    def graph_view(self, criteria: Criteria) -> Iterator[GraphView]:
        """The scope's graph index, loaded with its matrix on first use and patched by this handle's writes; the
        lock is held inside the `with` (a write would grow the index under the reader)."""
        with self._lock:
            matrix = self._matrix(criteria.scope)
            yield GraphView(matrix.records, matrix.graph(self.graphs), matrix.mask(criteria),
                            matrix.position)  # type: ignore[arg-type]

    def graphs(self, versions: list[int]) -> dict[int, Graph]:
        with self._lock:
            try:
                return read_graphs(self._db, versions)
            except sqlite3.Error as exc:
                raise StoreError(f"read from {self.path} failed: {exc}") from exc

    def vectors(self, versions: list[int]) -> np.ndarray:
        if not versions:
            return np.zeros((0, self._binding[1] if self._binding else 0), dtype=np.float32)
        rows = dict(self._read(f"SELECT rowid, vector FROM memories WHERE rowid IN ({','.join('?' * len(versions))})",
                               tuple(versions)))
        missing = set(versions) - set(rows)
        if missing:
            raise NotFound(f"no stored vector for version(s) {sorted(missing)}")
        # on search's path (keyword hits without a cosine): this handle's binding spares reading the store's
        return decode([rows[v] for v in versions], self._binding[1] if self._binding else self._dimension())

    def history(self, memory_id: str) -> list[Event]:
        return self._events("WHERE memory_id=?", (memory_id,))

    def batch(self, batch_id: str) -> list[Event]:
        return self._events("WHERE batch_id=?", (batch_id,))

    def all_events(self) -> list[Event]:
        return self._events("", ())

    def _events(self, where: str, params: tuple) -> list[Event]:
        rows = self._read(
            "SELECT seq, memory_id, op, old_text, new_text, reason, source, old_version, new_version, actor, "
            f"batch_id, created_at FROM history {where} ORDER BY seq",
            params,
        )
        return [
            Event(memory_id=r[1], op=Op(r[2]), old_text=r[3], new_text=r[4], reason=r[5],
                  source=tuple(json.loads(r[6])), old_version=r[7], new_version=r[8], actor=r[9], batch_id=r[10],
                  created_at=r[11], seq=r[0])
            for r in rows
        ]

    def ids_with_prefix(self, prefix: str, *, kind: Literal["memory", "batch"] = "memory",
                        limit: int = 10) -> list[str]:
        table, column = {"memory": ("memories", "id"), "batch": ("history", "batch_id")}[kind]
        # A range the column's index answers, then an exact test: LIKE would read % and _ as wildcards
        rows = self._read(f"SELECT DISTINCT {column} FROM {table} WHERE {column} >= ? AND {column} < ? "
                          f"AND substr({column}, 1, ?) = ? ORDER BY {column} LIMIT ?",
                          (prefix, prefix + "\U0010ffff", len(prefix), prefix, limit))
        return [row[0] for row in rows]

    def dump(self) -> Iterator[tuple[MemoryRecord, np.ndarray]]:
        last = 0
        while True:
            rows = self._read(f"SELECT {COLUMNS}, vector FROM memories WHERE rowid > ? ORDER BY rowid LIMIT 1000",
                              (last,))
            if not rows:
                return
            for row, vector in zip(rows, decode([row[-1] for row in rows], self._dimension()), strict=True):
                yield to_record(row[:-1]), vector
            last = rows[-1][0]

    def versions(self, memory_id: str) -> list[MemoryRecord]:
        return [to_record(row) for row in self._read(VERSIONS, (memory_id,))]

    def owned(self, user_id: str) -> list[MemoryRecord]:
        return [to_record(row) for row in self._read(OWNED, (user_id,))]

    def user_stats(self) -> list[UserStats]:
        return [UserStats(*row) for row in self._read(USER_STATS)]

    def count(self) -> int:
        return int(self._read("SELECT count(*) FROM memories WHERE valid_to IS NULL")[0][0])

    def reset(self) -> None:
        with self._write() as db:
            keys = [row[0] for row in db.execute("SELECT key FROM scope_versions")]
            for table in ("memories", "history", "turns", "sessions", "graph_entities", "graph_relations"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM engram_meta WHERE key IN ('embedder', 'dimension')")
            self._bump(db, set(keys))
            self._cache.clear()
        self._binding = None

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._db.close()


assert SCOPE_FIELDS == ("user_id", "agent_id", "run_id")  # the SQL above names them in this order
