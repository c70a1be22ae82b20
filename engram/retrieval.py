"""Query -> dense + keyword candidates -> reciprocal rank fusion -> threshold -> hits. Fusion is pure."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from engram.stores.base import Criteria, Store
from engram.types import Hit, MemoryRecord

__all__ = ["SearchConfig", "rrf", "search"]


@dataclass(frozen=True)
class SearchConfig:
    pool: int = 50  # candidates from each list before fusion
    rrf_k: int = 60


def rrf(rankings: Sequence[Sequence[Hashable]], k: int = 60) -> dict[Hashable, float]:
    """Reciprocal rank fusion, normalised so that first place in every list scores 1.0."""
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    best = len(rankings) / (k + 1)
    return {key: score / best for key, score in scores.items()}


def search(
    store: Store,
    vector: np.ndarray,
    query: str,
    criteria: Criteria,
    limit: int,
    *,
    threshold: float | None = None,
    config: SearchConfig = SearchConfig(),
) -> list[Hit]:
    pool = max(config.pool, limit)
    dense = store.dense(vector, criteria, pool)
    keyword = store.keyword(query, criteria, pool)
    records: dict[int, MemoryRecord] = {}
    similarity: dict[int, float] = {}
    for record, cosine in dense:
        records[record.version] = record  # type: ignore[index]
        similarity[record.version] = cosine  # type: ignore[index]
    missing = [record for record, _ in keyword if record.version not in records]
    for record in missing:
        records[record.version] = record  # type: ignore[index]
    if missing:  # keyword-only candidates still get a true cosine, so `threshold` means the same for all
        vectors = store.vectors([r.version for r in missing])  # type: ignore[misc]
        for record, cosine in zip(missing, vectors @ vector):
            similarity[record.version] = float(cosine)  # type: ignore[index]
    fused = rrf([[r.version for r, _ in dense], [r.version for r, _ in keyword]], config.rrf_k)
    order = sorted(fused, key=lambda v: (-fused[v], -similarity[v]))
    hits = []
    for version in order:
        sim = min(max(similarity[version], 0.0), 1.0)
        if threshold is not None and sim < threshold:
            continue
        hits.append(Hit(records[version], min(fused[version], 1.0), sim))
        if len(hits) == limit:
            break
    return hits
