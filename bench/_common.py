"""Shared by the bench scripts: synthetic memories, a timer, and percentile printing."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

SUBJECTS = ["User", "My sister", "My boss", "Our neighbour", "My son", "My partner", "The dog", "My best friend"]
VERBS = ["likes", "hates", "is learning", "works on", "talks about", "dreams of", "bought", "visited", "cooked",
         "lost", "painted", "wrote about", "reads about", "collects", "is allergic to", "planned"]
OBJECTS = ["green tea", "jazz records", "the Berlin trip", "sourdough bread", "marathon training", "python code",
           "oil paintings", "a red bicycle", "Japanese novels", "vintage cameras", "chess openings", "peanuts",
           "the garden", "a new apartment", "salsa dancing", "mountain hiking", "board games", "pottery classes",
           "electric guitars", "French cooking", "bird watching", "sci-fi movies", "yoga", "the piano"]
WHEN = ["last week", "every Sunday", "since 2019", "in the summer", "this morning", "on holidays", "at night", ""]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)} (#{i})"
            .replace("  ", " ") for i in range(n)]


def queries(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"what does the user think about {rng.choice(OBJECTS)}?" for _ in range(n)]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100.0 * (len(ordered) - 1)))]


def summary(name: str, samples_ms: list[float]) -> str:
    return (f"{name:<44} p50 {statistics.median(samples_ms):7.2f} ms   p95 {pct(samples_ms, 95):7.2f} ms"
            f"   (n={len(samples_ms)})")
