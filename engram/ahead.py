"""What an import's texts give by themselves, found ahead of its writes by worker processes.

A raw text's rules graph (engram.graph_rules) and its keyword term counts (engram.stores.sparse) depend on the
text alone, and finding them is what the store side of a bulk import costs most in Python; with the GIL, a thread
would not run it beside the writer. So an import hands each write's new texts to `workers` processes while the
write before is stored, and the write is left with what depends on the store: resolving the graph's names
against what the scope holds (in order, in the writer) and writing. Without workers (import_items' default;
`engram import` asks for `auto_workers`), the write finds them itself, as add() does.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

from engram.errors import InvalidInput
from engram.graph import Graph
from engram.graph_rules import rules_graph
from engram.stores.keywords import pack
from engram.stores.sparse import term_counts

__all__ = ["AUTO_MIN_ITEMS", "Found", "TextsAhead", "auto_workers", "find"]

AUTO_MIN_ITEMS = 5_000  # below this, starting processes (about 0.1 s each) costs more than they save
# One worker finds a text's graph and terms in about 50 µs, under half of what the writer then spends storing it
# (about 120 µs, bench/import_store.py): a second only starts each write sooner.
_MAX_AUTO = 2


@dataclass(frozen=True)
class Found:
    """By text: its rules graph, and its term counts packed as the SQLite store keeps them."""

    graphs: dict[str, Graph] = field(default_factory=dict)
    terms: dict[str, bytes] = field(default_factory=dict)


Ready = Callable[[], Found]


def find(texts: list[str]) -> Found:
    """What a worker finds for each text."""
    return Found({text: rules_graph(text) for text in texts}, {text: pack(*term_counts(text)) for text in texts})


def auto_workers(items: int, cores: int | None = None) -> int:
    """How many workers `engram import` of `items` texts uses: none for a small one, else one fewer than the cores
    (the writer keeps one), at most two."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    return 0 if items < AUTO_MIN_ITEMS else max(0, min(_MAX_AUTO, cores - 1))


class TextsAhead:
    """`submit(texts)` starts finding what they give and returns what waits for it. Used as a context manager;
    the worker processes (spawned: the importing process may hold threads) end with it."""

    def __init__(self, workers: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise InvalidInput(f"workers must be a non-negative integer, got {workers!r}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> TextsAhead:
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
            return Found
        size = -(-len(texts) // self.workers)  # one share a worker
        shares = [self._pool.submit(find, texts[start:start + size]) for start in range(0, len(texts), size)]
        return lambda: _joined(shares)


def _joined(shares: list[Future[Found]]) -> Found:
    """The workers' shares as one (a worker's error is raised here)."""
    joined = Found()
    for share in shares:
        found = share.result()
        joined.graphs.update(found.graphs)
        joined.terms.update(found.terms)
    return joined
