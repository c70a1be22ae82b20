"""The graph rules of an import's texts, found ahead of its writes in worker processes.

A raw text's rules graph (engram.graph_rules) depends on the text alone, and finding it is most of what the store
side of a bulk import costs in Python; with the GIL, a thread would not run it beside the writer. So an import
hands each write's new texts to `workers` processes while the write before is stored, and the write only
resolves the names (which depends on what the scope holds, so it stays in order, in the writer). Without workers
(import_items' default; `engram import` asks for `auto_workers`), the write finds them itself, as add() does.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType

from engram.errors import InvalidInput
from engram.graph import Graph
from engram.graph_rules import rules_graphs

__all__ = ["AUTO_MIN_ITEMS", "RulesAhead", "auto_workers"]

AUTO_MIN_ITEMS = 5_000  # below this, starting processes (about 0.1 s each) costs more than they save
_MAX_AUTO = 4  # the writer keeps up with about this many (bench/import_store.py --workers)

Ready = Callable[[], Mapping[str, Graph]]


def auto_workers(items: int, cores: int | None = None) -> int:
    """How many rule workers an import of `items` texts uses by default: none for a small one, else one fewer
    than the cores (the writer keeps one), at most four."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    return 0 if items < AUTO_MIN_ITEMS else max(0, min(_MAX_AUTO, cores - 1))


class RulesAhead:
    """`submit(texts)` starts finding their rules graphs and returns what waits for them, by text. Used as a
    context manager; the worker processes (spawned: the importing process may hold threads) end with it."""

    def __init__(self, workers: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise InvalidInput(f"workers must be a non-negative integer, got {workers!r}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> RulesAhead:
        if self.workers:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, texts: list[str]) -> Ready:
        if self._pool is None or not texts:
            return dict
        size = -(-len(texts) // self.workers)  # one share a worker
        parts = [(texts[start:start + size], self._pool.submit(rules_graphs, texts[start:start + size]))
                 for start in range(0, len(texts), size)]
        return lambda: _joined(parts)


def _joined(parts: list[tuple[list[str], Future[list[Graph]]]]) -> dict[str, Graph]:
    """Each text's graph, from the workers' shares (a worker's error is raised here)."""
    found: dict[str, Graph] = {}
    for texts, graphs in parts:
        found.update(zip(texts, graphs.result(), strict=True))
    return found
