"""All-or-nothing writes across the files store's files: a write-ahead journal, atomic replaces and a lock.

A batch is written as its intent first (`.journal`: whole new contents of the files it replaces, the bytes it
appends and each appended file's size before): made complete under a temporary name, fsynced, then renamed into
place, which is the moment the batch happens. Then each file is replaced (temporary file, fsync, rename) or
appended to (cut back to its size before, then appended: doing it twice does it once), the directories fsynced,
and the journal removed. A process killed at any point leaves either no journal (nothing or all of the batch
was done) or a whole one, which the next opener (`recover`) applies again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engram.errors import CorruptStore

__all__ = ["Batch", "JOURNAL", "atomic_write", "commit", "locked", "recover"]

JOURNAL = ".journal"
KEEP = {".journal", ".lock", ".index.db", ".index.db-wal", ".index.db-shm", ".sessions.db", ".sessions.db-wal",
        ".sessions.db-shm", ".git", ".gitignore"}  # what a reset leaves


@dataclass
class Batch:
    """What one write does to the files, by path relative to the store's directory."""

    replace: dict[str, str] = field(default_factory=dict)
    append: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (its size before, what is added)
    reset: bool = False  # everything but KEEP goes first
    saved: list | None = None  # [session id, user_id, agent_id, run_id, seq]: turns marked saved with the batch

    def to_json(self) -> str:
        return json.dumps({"replace": self.replace, "append": self.append, "reset": self.reset, "saved": self.saved},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Batch:
        data = json.loads(text)
        return cls(data["replace"], {k: (int(v[0]), v[1]) for k, v in data["append"].items()}, data["reset"],
                   data["saved"])


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, content: str) -> None:
    """Replace `path` with `content`: a reader sees the old file or the new one, never part of one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


def _append(path: Path, size: int, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "ab+") as fh:
        have = fh.seek(0, os.SEEK_END)
        if have < size:
            raise CorruptStore(f"{path} is shorter ({have} bytes) than a write found it ({size} bytes)")
        fh.truncate(size)
        fh.write(content.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _clear(root: Path) -> None:
    for child in root.iterdir():
        if child.name in KEEP:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def apply(root: Path, batch: Batch) -> None:
    """Do the batch's file changes (the journal holding it is already in place)."""
    if batch.reset:
        _clear(root)
    touched = {root}
    for name, content in batch.replace.items():
        atomic_write(root / name, content)
        touched.add((root / name).parent)
    for name, (size, content) in batch.append.items():
        _append(root / name, size, content)
        touched.add((root / name).parent)
    for directory in touched:
        fsync_dir(directory)


def commit(root: Path, batch: Batch) -> None:
    """Write the journal (the batch happens), apply it, remove the journal."""
    atomic_write(root / JOURNAL, batch.to_json())
    fsync_dir(root)
    apply(root, batch)
    (root / JOURNAL).unlink()
    fsync_dir(root)


def recover(root: Path) -> Batch | None:
    """Finish the batch a killed writer left (call with the lock held); return it, or None when there was none."""
    temporary = root / f".{JOURNAL}.tmp"
    if temporary.exists():  # never renamed into place: the batch never happened
        temporary.unlink()
    journal = root / JOURNAL
    if not journal.exists():
        return None
    try:
        batch = Batch.from_json(journal.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStore(f"{journal} cannot be read ({exc}); it holds a write that was interrupted") from exc
    apply(root, batch)
    journal.unlink()
    fsync_dir(root)
    return batch


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """The store's lock, across processes (flock on `.lock`): held by every write and every re-reading."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
