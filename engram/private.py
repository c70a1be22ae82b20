"""Directories engram creates are 0700 and files it creates 0600, whatever the umask; existing ones keep their mode.

Memories are personal data: under the usual umask 022 a plain mkdir or open would make them readable by every
user of the machine. An existing file or directory is left as it is, so one shared on purpose stays shared.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "create_file", "make_dirs", "opener", "write_text"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dirs(path: str | Path) -> Path:
    """`mkdir -p` whose every new directory is 0700 (Path.mkdir(parents=True) gives parents the umask's mode)."""
    target = Path(path)
    missing = []
    probe = target
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        # another process or thread may make it in between: that one is as good
        with suppress(FileExistsError):
            directory.mkdir(mode=DIR_MODE)
    return target


def create_file(path: str | Path) -> Path:
    """`path` as an empty 0600 file (in 0700 directories) unless it exists; an existing file is not touched."""
    path = Path(path)
    make_dirs(path.parent)
    # An existing one is a database (or whatever is there: its opener reports what is wrong with it).
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    return path


def opener(path: str, flags: int) -> int:
    """For open(..., opener=opener): a file it creates is 0600."""
    return os.open(path, flags, FILE_MODE)


def write_text(path: str | Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", opener=opener) as fh:
        fh.write(text)
