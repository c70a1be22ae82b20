"""What a bulk write (an import) changes about the process while it runs: how often Python's cycle collector runs.

An import allocates millions of objects that form no cycles (records, rows, graphs). At Python's default pace
(a collection every 700 net allocations) the collector took about an eighth of the store side's time
(bench/import_store.py); every 10,000 it costs little. The pace is the whole process's: it is raised when the
first bulk write starts and put back when the last one ends, however they overlap (a server's threads).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BULK_THRESHOLD", "fewer_collections"]

BULK_THRESHOLD = 10_000  # net allocations between two collections of the youngest generation


class _Pace:
    """The collector's pace while bulk writes run: raised by the first, put back by the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved = gc.get_threshold()

    def enter(self) -> None:
        with self._lock:
            if self._running == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(max(self._saved[0], BULK_THRESHOLD), *self._saved[1:])
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                gc.set_threshold(*self._saved)


_PACE = _Pace()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cycle collector at most every BULK_THRESHOLD allocations inside the block."""
    _PACE.enter()
    try:
        yield
    finally:
        _PACE.leave()
