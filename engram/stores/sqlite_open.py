"""Opening the SQLite store's file, and the embedder binding it records.

A new database is created 0600 and migrated by whichever process gets there first while the others wait; one
engram may not write (a read-only file, directory or mount) is opened read-only and must already be migrated.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path

from engram.errors import CorruptStore, EmbedderMismatch, StoreError
from engram.private import create_file
from engram.stores.schema import APP_ID, MIGRATIONS, migrate

__all__ = ["BINDING", "check_binding", "connect", "record_binding", "unwritable"]

BINDING = "SELECT key, value FROM engram_meta WHERE key IN ('embedder', 'dimension')"


def connect(path: Path, timeout: float, read_only: str | None) -> sqlite3.Connection:
    """A connection to the engram database at `path`, made and migrated when it may be written (`read_only`:
    why it may not, or None)."""
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise CorruptStore(f"{path} is not a SQLite database")
    if read_only is not None:
        if not path.exists() or path.stat().st_size == 0:
            raise StoreError(f"{path} holds no database yet, and {read_only}")
        return _open_read_only(path, timeout, read_only)
    create_file(path)  # 0600 before SQLite opens it: its -wal and -shm files take the same mode
    deadline = time.monotonic() + timeout
    while True:  # several processes may create the same new database at once: a lock means wait, not corrupt
        try:
            return _open(path, timeout)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise CorruptStore(f"cannot open {path}: {exc}") from exc
            if time.monotonic() > deadline:
                raise StoreError(f"{path} stayed locked by another process for {timeout:.0f} s") from exc
            time.sleep(random.uniform(0.005, 0.05))
        except sqlite3.DatabaseError as exc:
            raise CorruptStore(f"cannot open {path}: {exc}") from exc


def _open(path: Path, timeout: float, read_only_uri: str | None = None,
          read_only: str | None = None) -> sqlite3.Connection:
    db = sqlite3.connect(read_only_uri or path, timeout=timeout, isolation_level=None, check_same_thread=False,
                         uri=read_only_uri is not None)
    try:
        db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        if read_only_uri is None:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "engram_migrations" not in tables:
            raise CorruptStore(f"{path} is a SQLite database but not an engram one (tables: {sorted(tables)[:5]})")
        if read_only_uri is None:
            migrate(db)
        elif {name for name, _ in MIGRATIONS} != {row[0] for row in db.execute("SELECT name FROM engram_migrations")}:
            raise StoreError(f"{path} was written by another version of engram and needs migrating, "
                             f"but {read_only}: open it once where it can be written")
        app = db.execute("SELECT value FROM engram_meta WHERE key='app'").fetchone()
        if not app or app[0] != APP_ID:
            raise CorruptStore(f"{path} is not an engram database")
    except BaseException:
        db.close()
        raise
    return db


def _open_read_only(path: Path, timeout: float, read_only: str) -> sqlite3.Connection:
    """SQLite's mode=ro. Without a -wal file it cannot read a WAL database it may not make a -shm file for;
    then all of it is in the main file and it is read as immutable (a read-only mount, a snapshot)."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        return _open(path, timeout, uri, read_only)
    except sqlite3.OperationalError as exc:
        if Path(f"{path}-wal").exists():
            raise StoreError(f"cannot read {path} ({read_only}): {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise CorruptStore(f"cannot open {path}: {exc}") from exc
    try:
        return _open(path, timeout, uri + "&immutable=1", read_only)
    except sqlite3.DatabaseError as exc:
        raise CorruptStore(f"cannot open {path}: {exc}") from exc


def unwritable(path: Path) -> str | None:
    """Why engram may not write the database at `path` (access(2): modes, and read-only mounts even for root)."""
    directory = path.parent
    if directory.exists() and not os.access(directory, os.W_OK):
        return f"its directory {directory} is read-only"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    return None


def record_binding(db: sqlite3.Connection, name: str, dimension: int) -> None:
    db.executemany("INSERT INTO engram_meta VALUES (?, ?)", [("embedder", name), ("dimension", str(dimension))])


def check_binding(path: Path, rows: dict[str, str], name: str, dimension: int) -> None:
    """EmbedderMismatch when the binding `rows` (as BINDING reads them) is another embedder's."""
    if rows and (rows.get("embedder") != name or rows.get("dimension") != str(dimension)):
        raise EmbedderMismatch(
            f"{path} holds vectors of embedder {rows.get('embedder')!r} (dimension {rows.get('dimension')}); this "
            f"engram is configured with {name!r} (dimension {dimension}). Use the same embedder, or another data "
            "directory."
        )


def _busy(exc: sqlite3.OperationalError) -> bool:
    return any(word in str(exc) for word in ("locked", "busy"))
