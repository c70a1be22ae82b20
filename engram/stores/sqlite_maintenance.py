"""Whole-database operations on the SQLite store: backup, restore, and taking in the vectors of another embedder.

Backup and restore go through SQLite's online backup API, so other processes may keep using the database: a
backup copies one consistent snapshot (a write in progress is either in it whole or not at all), and a restore
replaces the whole database in one step that other connections see as any other write. A vector swap is one
write transaction. After a restore or a swap every scope's version moves past anything a running process has
cached, so no process keeps searching the vectors it had before.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import numpy as np

from engram.errors import CorruptStore, InvalidInput, StoreError
from engram.private import create_file
from engram.stores.schema import APP_ID, MIGRATIONS, migrate
from engram.stores.vectors import valid_sizes

__all__ = ["backup", "contents", "restore", "swap_vectors"]

_MAGIC = b"SQLite format 3\x00"
T = TypeVar("T")


def contents(db: sqlite3.Connection) -> dict[str, int]:
    """What a database holds: memories, versions, events, sessions and chat turns."""
    def one(sql: str) -> int:
        return int(db.execute(sql).fetchone()[0])

    return {"memories": one("SELECT count(DISTINCT id) FROM memories"),
            "versions": one("SELECT count(*) FROM memories"), "events": one("SELECT count(*) FROM history"),
            "sessions": one("SELECT count(*) FROM sessions"), "turns": one("SELECT count(*) FROM turns")}


def backup(database: str | Path, dest: str | Path, *, force: bool = False) -> dict[str, int]:
    """Copy the engram database at `database` into `dest`: one self-contained 0600 file (no -wal beside it),
    checked with SQLite's integrity check before it takes the name `dest`. An existing `dest` is replaced only
    with `force`. Returns what the copy holds."""
    database, dest = Path(database), Path(dest)
    if dest.exists() and not force:
        raise InvalidInput(f"{dest} exists; give another path, or --force to replace it")
    with closing(_open_engram(database)) as source:
        partial = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            create_file(partial)  # 0600 before SQLite writes into it
            with closing(sqlite3.connect(partial, isolation_level=None)) as copy:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one file: no -wal or -shm to carry along
                _check(copy, partial)
                held = contents(copy)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
    return held


def restore(source: str | Path, database: str | Path, *, force: bool = False) -> dict[str, int]:
    """Replace the engram database at `database` (made when missing) with the backup `source`, which must be an
    engram database that passes SQLite's integrity check. A database holding any memory, event or chat session
    is replaced only with `force`. Returns what the restored database holds."""
    source, database = Path(source), Path(database)
    with closing(_open_engram(source)) as backup_db:
        _check(backup_db, source)
        create_file(database)  # 0600, in 0700 directories, unless it exists
        with closing(sqlite3.connect(database, timeout=30.0, isolation_level=None)) as target:
            tables = {row[0] for row in target.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "engram_migrations" not in tables:
                raise CorruptStore(f"{database} is a SQLite database but not an engram one; not replacing it")
            held = contents(target) if "memories" in tables else {}
            if any(held.get(name) for name in ("versions", "events", "sessions")) and not force:
                raise InvalidInput(f"{database} is not empty (memories: {held['memories']}, chat sessions: "
                                   f"{held['sessions']}); restore with --force to replace everything in it")
            seen = _write_seq(target) if "engram_meta" in tables else 0
            target.execute("PRAGMA journal_mode=WAL")
            backup_db.backup(target)
            migrate(target)  # a backup made by an older engram: brought to this schema
            _in_one_write(target, lambda: _move_past(target, seen))
            return contents(target)


def swap_vectors(database: str | Path, copy: str | Path, binding: tuple[str, int],
                 embed: Callable[[list[str]], np.ndarray]) -> int:
    """In one write transaction on the engram database `database`: every version takes the vector the same version
    (rowid, id and hash) has in the engram database `copy`, whose vectors are `binding`'s (name, dimension), and
    the store is bound to it. Versions the copy lacks (written since it was made) are embedded with `embed` inside
    the transaction, so no write is lost. Returns how many were. Writers using the old embedder then get
    EmbedderMismatch."""
    database, copy = Path(database), Path(copy)
    same = "w.rowid = m.rowid AND w.id = m.id AND w.hash = m.hash"
    with closing(_open_engram(database)) as db:
        db.execute("ATTACH DATABASE ? AS w", (f"{copy.resolve().as_uri()}?mode=ro",))

        def swap() -> int:
            later = db.execute(f"SELECT m.rowid, m.text FROM main.memories m LEFT JOIN w.memories w ON {same} "
                               "WHERE w.rowid IS NULL").fetchall()
            db.execute(f"UPDATE main.memories AS m SET vector = w.vector FROM w.memories AS w WHERE {same}")
            if later:
                made = np.asarray(embed([text for _, text in later]), dtype="<f4")
                db.executemany("UPDATE main.memories SET vector=? WHERE rowid=?",
                               [(vector.tobytes(), rowid) for (rowid, _), vector in zip(later, made, strict=True)])
            sizes = valid_sizes(binding[1])
            marks = ",".join("?" * len(sizes))
            wrong = db.execute(f"SELECT count(*) FROM main.memories WHERE length(vector) NOT IN ({marks})", sizes)
            if wrong.fetchone()[0]:
                raise StoreError("vectors of another size remain after the swap; nothing was changed")
            db.executemany("INSERT INTO main.engram_meta VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                           [("embedder", binding[0]), ("dimension", str(binding[1]))])
            _move_past(db, 0)
            return len(later)

        try:
            return _in_one_write(db, swap)
        finally:
            db.execute("DETACH DATABASE w")


def _open_engram(path: Path) -> sqlite3.Connection:
    """A connection to an existing engram database (CorruptStore for anything else; nothing is created)."""
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    with open(path, "rb") as fh:
        if fh.read(16) != _MAGIC:
            raise CorruptStore(f"{path} is not a SQLite database")
    # rw: never creates it; read-only where the file is; and the last to close tidies a -wal away
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30.0, isolation_level=None)
    try:
        app = db.execute("SELECT value FROM engram_meta WHERE key='app'").fetchone()
        if not app or app[0] != APP_ID:
            raise CorruptStore(f"{path} is not an engram database")
        applied = {row[0] for row in db.execute("SELECT name FROM engram_migrations")}
        newer = applied - {name for name, _ in MIGRATIONS}
        if newer:
            raise StoreError(f"{path} was written by a newer engram (migrations {sorted(newer)})")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise CorruptStore(f"{path} is not an engram database: {exc}") from exc
    except BaseException:
        db.close()
        raise
    return db


def _check(db: sqlite3.Connection, path: Path) -> None:
    problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise CorruptStore(f"{path} fails SQLite's integrity check: {'; '.join(problems[:3])}")


def _write_seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM main.engram_meta WHERE key='write_seq'").fetchone()
    return int(row[0]) if row else 0


def _in_one_write(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    db.execute("BEGIN IMMEDIATE")
    try:
        done = work()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return done


def _move_past(db: sqlite3.Connection, seen: int) -> None:
    """Inside a write: every scope's version past anything a process may have cached (from the database before a
    restore: caches compare versions, and a restored counter could repeat one they hold for other contents)."""
    seq = max(seen, _write_seq(db)) + 1
    db.execute("INSERT INTO main.engram_meta VALUES ('write_seq', ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(seq),))
    db.execute("UPDATE main.scope_versions SET version=?", (seq,))
