"""Figures measured by bench/reliability.py, and the summary table they end in."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Figure", "at_least", "stage", "table", "zero"]


@dataclass
class Figure:
    """One measured figure. `ok` None: informational, judged by no target (printed, never fails the run)."""

    prop: str
    store: str
    measured: str
    target: str
    ok: bool | None
    trials: str = ""
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "ok", False: "MISSED", None: "info"}[self.ok]


def zero(prop: str, store: str, what: str, count: int, trials: str, note: str = "") -> Figure:
    """A figure whose target is 0 of something."""
    return Figure(prop, store, f"{count} {what}", f"0 {what}", count == 0, trials, note)


def at_least(prop: str, store: str, what: str, count: int, minimum: int, judged: bool, note: str = "") -> Figure:
    """A figure whose target is a minimum number of trials; `judged=False` (a quick run) reports it only."""
    return Figure(prop, store, f"{count} {what}", f">= {minimum} {what}", (count >= minimum) if judged else None,
                  note=note if judged else (note + "; " if note else "") + "quick run: not judged")


def table(figures: list[Figure]) -> str:
    head = ("property", "store", "measured", "target", "trials", "verdict")
    rows = [head] + [(f.prop, f.store, f.measured, f.target, f.trials, f.verdict) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    line = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    out = [line.format(*head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line.format(*r) for r in rows[1:]]
    notes = [f"- {f.prop} ({f.store}): {f.note}" for f in figures if f.note]
    return "\n".join(out + (["", *notes] if notes else []))


@contextmanager
def stage(name: str, log: Callable[[str], None] = print) -> Iterator[None]:
    log(f"\n== {name}")
    start = time.monotonic()
    yield
    log(f"   ({time.monotonic() - start:.1f} s)")
