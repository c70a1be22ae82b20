"""The embedded default store: one SQLite file (WAL) holding memories, their dense and sparse vectors, and history.

Search is exact and reads only the query scope: each scope's versions are loaded once into a numpy matrix
(dense vectors, and keyword postings from their sparse vectors) and reused while the
scope's version (bumped in the same transaction as every write touching it) is unchanged, which keeps the
cache coherent with writes from this process and from any other process using the same file.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from engram.errors import Conflict, CorruptStore, EmbedderMismatch, NotFound, StoreError
from engram.ownership import check_write
from engram.private import create_file
from engram.stores.base import ChangeSet, Criteria, Store, batch_neighbours, deduplicate
from engram.stores.matrix import MatrixCache, ScopeMatrix
from engram.stores.schema import APP_ID, MIGRATIONS, migrate
from engram.stores.keywords import pack
from engram.stores.sparse import term_counts
from engram.stores.sqlite_sessions import SessionTables
from engram.types import SCOPE_FIELDS, Event, MemoryRecord, Op, Scope, now

__all__ = ["SQLiteStore"]

_COLUMNS = (
    "rowid, id, text, hash, user_id, agent_id, run_id, role, categories, metadata, source, "
    "created_at, updated_at, valid_from, valid_to, superseded_by, batch_id, position, expires_at"
)


class SQLiteStore(SessionTables, Store):
    def __init__(self, path: str | Path, *, cache_rows: int = 500_000, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._cache = MatrixCache(cache_rows)
        self.read_only = _unwritable(self.path)  # why engram may not write this database; None when it may
        self._db = self._connect(timeout)
        self._binding: tuple[str, int] | None = None  # this handle's embedder, once bound

    # -- opening -----------------------------------------------------------------------------------------

    def _connect(self, timeout: float) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise CorruptStore(f"{self.path} is not a SQLite database")
        if self.read_only is not None:
            if not self.path.exists() or self.path.stat().st_size == 0:
                raise StoreError(f"{self.path} holds no database yet, and {self.read_only}")
            return self._open_read_only(timeout)
        create_file(self.path)  # 0600 before SQLite opens it: its -wal and -shm files take the same mode
        deadline = time.monotonic() + timeout
        while True:  # several processes may create the same new database at once: a lock means wait, not corrupt
            try:
                return self._open(timeout)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise CorruptStore(f"cannot open {self.path}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.path} stayed locked by another process for {timeout:.0f} s") from exc
                time.sleep(random.uniform(0.005, 0.05))
            except sqlite3.DatabaseError as exc:
                raise CorruptStore(f"cannot open {self.path}: {exc}") from exc

    def _open(self, timeout: float, read_only_uri: str | None = None) -> sqlite3.Connection:
        db = sqlite3.connect(read_only_uri or self.path, timeout=timeout, isolation_level=None, check_same_thread=False,
                             uri=read_only_uri is not None)
        try:
            db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if read_only_uri is None:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "engram_migrations" not in tables:
                raise CorruptStore(f"{self.path} is a SQLite database but not an engram one (tables: {sorted(tables)[:5]})")
            if read_only_uri is None:
                migrate(db)
            elif {name for name, _ in MIGRATIONS} != {row[0] for row in db.execute("SELECT name FROM engram_migrations")}:
                raise StoreError(f"{self.path} was written by another version of engram and needs migrating, "
                                 f"but {self.read_only}: open it once where it can be written")
            app = db.execute("SELECT value FROM engram_meta WHERE key='app'").fetchone()
            if not app or app[0] != APP_ID:
                raise CorruptStore(f"{self.path} is not an engram database")
        except BaseException:
            db.close()
            raise
        return db

    def _open_read_only(self, timeout: float) -> sqlite3.Connection:
        """SQLite's mode=ro. Without a -wal file it cannot read a WAL database it may not make a -shm file for;
        then all of it is in the main file and it is read as immutable (a read-only mount, a snapshot)."""
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            return self._open(timeout, uri)
        except sqlite3.OperationalError as exc:
            if Path(f"{self.path}-wal").exists():
                raise StoreError(f"cannot read {self.path} ({self.read_only}): {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise CorruptStore(f"cannot open {self.path}: {exc}") from exc
        try:
            return self._open(timeout, uri + "&immutable=1")
        except sqlite3.DatabaseError as exc:
            raise CorruptStore(f"cannot open {self.path}: {exc}") from exc

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
            _check_binding(self.path, dict(self._read(_BINDING)), name, dimension)
        else:
            with self._write() as db:
                rows = dict(db.execute(_BINDING))
                if not rows:
                    _record_binding(db, name, dimension)
                _check_binding(self.path, rows, name, dimension)
        self._binding = (name, dimension)

    def binding(self) -> tuple[str, int] | None:
        """(embedder name, dimension) recorded in the store, or None while unbound."""
        rows = dict(self._read(_BINDING))
        return (rows["embedder"], int(rows["dimension"])) if len(rows) == 2 else None

    def apply(self, changes: ChangeSet) -> list[MemoryRecord]:
        with self._lock:  # held until the cache is patched too
            with self._write() as db:
                stored, kept, changed, before, seq = self._apply(db, changes)
            self._cache.patch(before, seq, [(stored[i], np.asarray(v, dtype=np.float32)) for i, v in kept], changed)
        return [stored[i] for i in range(len(changes.inserts))]

    def _apply(self, db: sqlite3.Connection, changes: ChangeSet) -> tuple[dict[int, MemoryRecord], list, list, dict, int]:
        dimension = self._binding_in(db) if changes.inserts else 0
        closed, changed = self._close(db, changes)
        changed += self._reopen(db, changes.reopens)
        referenced = set(closed) | {c.superseded_by for c in changes.closes if c.superseded_by}
        twins = deduplicate(changes.inserts, lambda scope, hashes: self._twins(db, scope, hashes),
                            referenced) if changes.dedup else {}
        kept = [(i, vector) for i, (_, vector) in enumerate(changes.inserts) if i not in twins]
        check_write(changes.owner, closed, [changes.inserts[i][0] for i, _ in kept])
        stored: dict[int, MemoryRecord] = dict(twins)
        versions: dict[str, int] = {}
        for i, vector in kept:
            record = changes.inserts[i][0]
            versions[record.id] = self._insert(db, record, vector, dimension, changes.keep_versions)
            stored[i] = _with_version(record, versions[record.id])
        skipped = {changes.inserts[i][0].id for i in twins}  # a duplicate's events go with it
        for event in changes.events:
            if event.memory_id not in skipped:
                old = closed.get(event.memory_id)
                self._log(db, event, old.version if old else None, versions.get(event.memory_id), changes.keep_versions)
        if changes.saved is not None:
            self._mark(db, *changes.saved)
        inserted = [stored[i] for i, _ in kept]
        cached = self._cache.keys_touching(inserted + changed)
        before = {key: self._scope_version(db, Scope(*key)) for key in cached}
        seq = self._bump(db, {f"{k}\x00{v}" for r in inserted + changed for k, v in r.scope.items()})
        return stored, kept, changed, before, seq

    def _close(self, db: sqlite3.Connection, changes: ChangeSet) -> tuple[dict[str, MemoryRecord], list[MemoryRecord]]:
        """End the current versions the change set names, each as it was read inside this write."""
        closed: dict[str, MemoryRecord] = {}
        changed: list[MemoryRecord] = []
        for close in changes.closes:
            row = db.execute(f"SELECT {_COLUMNS} FROM memories WHERE id=? AND valid_to IS NULL", (close.memory_id,)).fetchone()
            if row is None or close.memory_id in closed:
                raise NotFound(f"memory {close.memory_id} has no current version")
            record = _record(row)
            if close.version is not None and record.version != close.version:
                raise Conflict(f"memory {close.memory_id} changed: version {close.version} is no longer the current one")
            ended = replace(record, valid_to=max(close.valid_to, record.valid_from), superseded_by=close.superseded_by)
            db.execute("UPDATE memories SET valid_to=?, superseded_by=? WHERE rowid=?",
                       (ended.valid_to, ended.superseded_by, record.version))
            closed[record.id] = record
            changed.append(ended)
        return closed, changed

    def _reopen(self, db: sqlite3.Connection, versions: list[int]) -> list[MemoryRecord]:
        changed = []
        for version in versions:
            row = db.execute(f"SELECT {_COLUMNS} FROM memories WHERE rowid=?", (version,)).fetchone()
            if row is None:
                raise NotFound(f"no version {version} to reopen")
            record = _record(row)
            if db.execute("SELECT 1 FROM memories WHERE id=? AND valid_to IS NULL", (record.id,)).fetchone():
                raise StoreError(f"memory {record.id} already has a current version; cannot reopen {version}")
            db.execute("UPDATE memories SET valid_to=NULL, superseded_by=NULL WHERE rowid=?", (version,))
            changed.append(replace(record, valid_to=None, superseded_by=None))
        return changed

    def _binding_in(self, db: sqlite3.Connection) -> int:
        """The bound dimension, read inside the write: another handle may have reset the store meanwhile (then
        this handle's embedder binds it again) or bound it to another embedder (then nothing is written)."""
        rows = dict(db.execute(_BINDING))
        if not rows:
            if self._binding is None:
                raise StoreError("no embedder is bound to this store yet: call bind_embedder() first")
            _record_binding(db, *self._binding)
            return self._binding[1]
        if self._binding is not None:
            _check_binding(self.path, rows, *self._binding)
        return int(rows.get("dimension", 0))

    def _insert(self, db: sqlite3.Connection, record: MemoryRecord, vector: np.ndarray, dimension: int,
                keep: bool = False) -> int:
        blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        if len(blob) != 4 * dimension:
            raise StoreError(f"vector of dimension {len(blob) // 4} given to a store bound to {dimension}")
        cursor = db.execute(
            "INSERT INTO memories (id, text, hash, user_id, agent_id, run_id, role, categories, metadata, source, "
            "created_at, updated_at, valid_from, valid_to, superseded_by, batch_id, position, expires_at, vector, terms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id, record.text, record.hash, record.user_id, record.agent_id, record.run_id, record.role,
                json.dumps(list(record.categories)), json.dumps(record.metadata, ensure_ascii=False),
                json.dumps(list(record.source)), record.created_at, record.updated_at, record.valid_from,
                record.valid_to, record.superseded_by, record.batch_id, record.position, record.expires_at, blob,
                pack(*term_counts(record.text)),
            ),
        )
        version = cursor.lastrowid
        if keep and record.version is not None and record.version != version:  # taken: a UNIQUE error, nothing written
            db.execute("UPDATE memories SET rowid=? WHERE rowid=?", (record.version, version))
            version = record.version
        return int(version)  # type: ignore[arg-type]

    @staticmethod
    def _log(db: sqlite3.Connection, event: Event, old_version: int | None, new_version: int | None,
             keep: bool = False) -> None:
        cursor = db.execute(
            "INSERT INTO history (memory_id, op, old_text, new_text, reason, source, old_version, new_version, "
            "actor, batch_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.memory_id, event.op.value, event.old_text, event.new_text, event.reason,
                json.dumps(list(event.source)), event.old_version or old_version, event.new_version or new_version,
                event.actor, event.batch_id, event.created_at,
            ),
        )
        if keep and event.seq is not None and event.seq != cursor.lastrowid:  # a copy keeps its place in history
            db.execute("UPDATE history SET seq=? WHERE seq=?", (event.seq, cursor.lastrowid))

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
            f"SELECT {_COLUMNS} FROM memories WHERE id=? ORDER BY valid_to IS NULL DESC, rowid DESC LIMIT 1",
            (memory_id,),
        )
        return _record(rows[0]) if rows else None

    def find_hashes(self, scope: Scope, hashes: list[str]) -> dict[str, MemoryRecord]:
        with self._lock:
            try:
                return self._twins(self._db, scope, hashes)
            except sqlite3.Error as exc:
                raise StoreError(f"read from {self.path} failed: {exc}") from exc

    @staticmethod
    def _twins(db: sqlite3.Connection, scope: Scope, hashes: list[str]) -> dict[str, MemoryRecord]:
        found: dict[str, MemoryRecord] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE valid_to IS NULL AND hash IN ({','.join('?' * len(chunk))}) "
                "AND user_id IS ? AND agent_id IS ? AND run_id IS ? AND (expires_at IS NULL OR expires_at > ?)",
                (*chunk, scope.user_id, scope.agent_id, scope.run_id, now()),
            ).fetchall()
            found.update((record.hash, record) for record in map(_record, rows))
        return found

    def _matrix(self, scope: Scope) -> ScopeMatrix:
        with self._lock:
            try:
                version = self._scope_version(self._db, scope)
            except sqlite3.Error as exc:
                raise StoreError(f"read from {self.path} failed: {exc}") from exc
            return self._cache.get((scope.user_id, scope.agent_id, scope.run_id), version, lambda: self._load(scope, version))

    def _load(self, scope: Scope, version: int) -> ScopeMatrix:
        where = " AND ".join(f"{name}=?" for name, _ in scope.items())
        rows = self._read(
            f"SELECT {_COLUMNS}, terms, vector FROM memories WHERE {where} ORDER BY rowid",
            tuple(value for _, value in scope.items()),
        )
        dimension = len(rows[0][-1]) // 4 if rows else (self._binding[1] if self._binding else 1)
        if self._binding is not None and rows and dimension != self._binding[1]:
            raise EmbedderMismatch(f"{self.path} holds vectors of dimension {dimension}; this handle's embedder "
                                   f"{self._binding[0]!r} makes {self._binding[1]} (another handle reset the store)")
        try:
            vectors = np.frombuffer(b"".join(row[-1] for row in rows), dtype=np.float32).reshape(len(rows), dimension)
        except ValueError as exc:
            raise CorruptStore(f"{self.path} holds vectors of several dimensions: {exc}") from exc
        return ScopeMatrix([_record(row[:-2]) for row in rows], vectors, version, [row[-2] for row in rows])

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
            admitted = {matrix.records[i].version for i in np.flatnonzero(keep)}
            wanted = {matrix.records[i].batch_id for i in (matrix.position.get(v) for v in versions) if i is not None}
            records = [r for batch in wanted if batch is not None for r in matrix.batch(batch)]
        return batch_neighbours(records, lambda r: r.version in admitted, versions, window)

    def vectors(self, versions: list[int]) -> np.ndarray:
        if not versions:
            return np.zeros((0, self._binding[1] if self._binding else 0), dtype=np.float32)
        rows = dict(self._read(f"SELECT rowid, vector FROM memories WHERE rowid IN ({','.join('?' * len(versions))})",
                               tuple(versions)))
        missing = set(versions) - set(rows)
        if missing:
            raise NotFound(f"no stored vector for version(s) {sorted(missing)}")
        return np.stack([np.frombuffer(rows[v], dtype=np.float32) for v in versions])

    def history(self, memory_id: str) -> list[Event]:
        return self._events("memory_id", memory_id)

    def batch(self, batch_id: str) -> list[Event]:
        return self._events("batch_id", batch_id)

    def _events(self, column: str, value: str) -> list[Event]:
        rows = self._read(
            "SELECT seq, memory_id, op, old_text, new_text, reason, source, old_version, new_version, actor, "
            f"batch_id, created_at FROM history WHERE {column}=? ORDER BY seq",
            (value,),
        )
        return [
            Event(memory_id=r[1], op=Op(r[2]), old_text=r[3], new_text=r[4], reason=r[5], source=tuple(json.loads(r[6])),
                  old_version=r[7], new_version=r[8], actor=r[9], batch_id=r[10], created_at=r[11], seq=r[0])
            for r in rows
        ]

    def ids_with_prefix(self, prefix: str, *, kind: Literal["memory", "batch"] = "memory", limit: int = 10) -> list[str]:
        table, column = {"memory": ("memories", "id"), "batch": ("history", "batch_id")}[kind]
        # A range the column's index answers, then an exact test: LIKE would read % and _ as wildcards
        rows = self._read(f"SELECT DISTINCT {column} FROM {table} WHERE {column} >= ? AND {column} < ? "
                          f"AND substr({column}, 1, ?) = ? ORDER BY {column} LIMIT ?",
                          (prefix, prefix + "\U0010ffff", len(prefix), prefix, limit))
        return [row[0] for row in rows]

    def dump(self) -> Iterator[tuple[MemoryRecord, np.ndarray]]:
        last = 0
        while True:
            rows = self._read(f"SELECT {_COLUMNS}, vector FROM memories WHERE rowid > ? ORDER BY rowid LIMIT 1000", (last,))
            if not rows:
                return
            for row in rows:
                yield _record(row[:-1]), np.frombuffer(row[-1], dtype=np.float32)
            last = rows[-1][0]

    def count(self) -> int:
        return int(self._read("SELECT count(*) FROM memories WHERE valid_to IS NULL")[0][0])

    def reset(self) -> None:
        with self._write() as db:
            keys = [row[0] for row in db.execute("SELECT key FROM scope_versions")]
            for table in ("memories", "history", "turns", "sessions"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM engram_meta WHERE key IN ('embedder', 'dimension')")
            self._bump(db, set(keys))
            self._cache.clear()
        self._binding = None

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._db.close()


_BINDING = "SELECT key, value FROM engram_meta WHERE key IN ('embedder', 'dimension')"


def _record_binding(db: sqlite3.Connection, name: str, dimension: int) -> None:
    db.executemany("INSERT INTO engram_meta VALUES (?, ?)", [("embedder", name), ("dimension", str(dimension))])


def _check_binding(path: Path, rows: dict[str, str], name: str, dimension: int) -> None:
    if rows and (rows.get("embedder") != name or rows.get("dimension") != str(dimension)):
        raise EmbedderMismatch(
            f"{path} holds vectors of embedder {rows.get('embedder')!r} (dimension {rows.get('dimension')}); this "
            f"engram is configured with {name!r} (dimension {dimension}). Use the same embedder, or another data directory."
        )


def _unwritable(path: Path) -> str | None:
    """Why engram may not write the database at `path` (access(2): modes, and read-only mounts even for root)."""
    directory = path.parent
    if directory.exists() and not os.access(directory, os.W_OK):
        return f"its directory {directory} is read-only"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    return None


def _record(row: tuple) -> MemoryRecord:
    return MemoryRecord(
        version=row[0], id=row[1], text=row[2], hash=row[3], user_id=row[4], agent_id=row[5], run_id=row[6],
        role=row[7], categories=tuple(json.loads(row[8])), metadata=json.loads(row[9]), source=tuple(json.loads(row[10])),
        created_at=row[11], updated_at=row[12], valid_from=row[13], valid_to=row[14], superseded_by=row[15],
        batch_id=row[16], position=row[17], expires_at=row[18],
    )


def _busy(exc: sqlite3.OperationalError) -> bool:
    return any(word in str(exc) for word in ("locked", "busy"))


def _with_version(record: MemoryRecord, version: int) -> MemoryRecord:
    return replace(record, version=version)


assert SCOPE_FIELDS == ("user_id", "agent_id", "run_id")  # the SQL above names them in this order
