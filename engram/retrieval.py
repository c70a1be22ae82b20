"""Query -> dense + keyword candidates -> fusion -> named times -> conversational context -> threshold -> hits.

The default (each step measured on LoCoMo, see bench/README.md): a candidate's score is a weighted sum of its
BM25 score and its cosine, each divided by the best of its list; memories from a day, month or year the query
names get a bonus; then every candidate also earns a share of the score of the memories written next to it by
the same add() call (the turns around a message), because a reply like "yes, last Tuesday" is only found
through the question it answers. Fusion, times and context are pure functions; only `search` does I/O.
Every store tells which memories one add() call wrote next to each other (`Store.neighbours`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np

from engram.config import Settings
from engram.errors import ConfigError
from engram.graph_memory import linked
from engram.stores.base import Criteria, Store
from engram.types import FIRST_EPOCH, LAST_EPOCH, Hit, MemoryRecord

__all__ = [
    "SearchConfig", "search_config", "FUSIONS", "TimeRef", "parse_weights", "rrf", "fuse", "prefer_linked",
    "spread_context", "time_refs", "search",
]

K = TypeVar("K", bound=Hashable)
FUSIONS = ("score", "rrf", "dense", "keyword")


@dataclass(frozen=True)
class SearchConfig:
    """How search ranks. `fusion`: "score" (weighted sum of normalised scores, the default), "rrf"
    (reciprocal rank fusion), or one list alone ("dense", "keyword") for comparison."""

    pool: int = 50  # candidates from each of dense and keyword search
    rrf_k: int = 60
    fusion: str = "score"
    keyword_weight: float = 0.5  # share of the keyword score in "score" fusion; the rest is the cosine's
    context: tuple[float, ...] = (0.4, 0.2)  # share of the best neighbour's score at distance 1, 2, ...
    time_weight: float = 0.2  # bonus for memories from a time the query names ("in May 2023"), before context
    # A named time's window is widened by these days (people mention things a little after they happen) ...
    time_slack_days: tuple[float, float] = (3.0, 10.0)
    # ... and "May" alone, or "Jan", is read as a month only after one of these words (or with a day or year).
    time_words: tuple[str, ...] = ("in", "on", "of", "since", "during", "until", "early", "mid", "late", "by")
    # search(graph=True): a candidate naming an entity the query names (strength 1), or one `graph_hops`
    # relations from it (1/(1+d)), has its fused score raised by this share of that strength (prefer_linked).
    # Measured on LoCoMo's tuning conversations (bench/locomo_graph.py): 0.05 is the largest weight that costs
    # no category recall, and hops add nothing there (raw turns state few relations).
    graph_weight: float = 0.05
    graph_hops: int = 0

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; known: {', '.join(FUSIONS)}")
        if not 0.0 <= self.keyword_weight <= 1.0:
            raise ConfigError(f"keyword_weight must be in [0, 1], got {self.keyword_weight!r}")
        if self.time_weight < 0:
            raise ConfigError(f"time_weight must be non-negative, got {self.time_weight!r}")
        if any(w < 0 for w in self.context) or len(self.context) > 5:
            raise ConfigError(f"context takes up to 5 non-negative weights, got {self.context!r}")
        if self.graph_weight < 0 or not 0 <= self.graph_hops <= 5:
            raise ConfigError(f"graph_weight must be non-negative and graph_hops in [0, 5], got "
                              f"{self.graph_weight!r}, {self.graph_hops!r}")
        if self.pool <= 0 or self.rrf_k <= 0:
            raise ConfigError("pool and rrf_k must be positive")
        if len(self.time_slack_days) != 2 or any(not 0 <= d <= 366 for d in self.time_slack_days):
            raise ConfigError("time_slack_days takes (days before, days after), each in [0, 366], "
                              f"got {self.time_slack_days!r}")


def search_config(settings: Settings) -> SearchConfig:
    """The search behaviour the settings ask for."""
    return SearchConfig(pool=settings.search_pool, rrf_k=settings.rrf_k, fusion=settings.search_fusion,
                        keyword_weight=settings.search_keyword_weight, context=parse_weights(settings.search_context),
                        time_weight=settings.search_time_weight, graph_weight=settings.search_graph_weight)


def parse_weights(text: str | Sequence[float]) -> tuple[float, ...]:
    """"0.4,0.2" -> (0.4, 0.2); "" or "0" -> () (no context)."""
    if not isinstance(text, str):
        return tuple(float(w) for w in text)
    try:
        weights = tuple(float(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(f"search_context must be comma-separated numbers, got {text!r}") from None
    return () if all(w == 0 for w in weights) else weights


def rrf(rankings: Sequence[Sequence[K]], k: int = 60) -> dict[K, float]:
    """Reciprocal rank fusion, normalised so that first place in every list scores 1.0."""
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    best = len(rankings) / (k + 1)
    return {key: score / best for key, score in scores.items()}


def fuse(cosine: Mapping[K, float], keyword: Mapping[K, float], keyword_weight: float,
         best_cosine: float | None = None) -> dict[K, float]:
    """Score fusion in [0, 1]: keyword_weight * bm25 / best bm25 + (1 - keyword_weight) * cosine / best cosine.
    Every key of `cosine` is scored (a key missing from `keyword` did not match any query word); negative
    cosines count as 0. `best_cosine` is the best of the whole dense list when `cosine` holds more keys."""
    top = max(cosine.values(), default=0.0) if best_cosine is None else best_cosine
    top_keyword = max(keyword.values(), default=0.0)
    out = {}
    for key, cos in cosine.items():
        dense = max(cos, 0.0) / top if top > 0 else 0.0
        bm25 = keyword.get(key, 0.0) / top_keyword if top_keyword > 0 else 0.0
        out[key] = keyword_weight * max(bm25, 0.0) + (1 - keyword_weight) * min(dense, 1.0)
    return out


def spread_context(scores: Mapping[K, float], neighbours: Mapping[K, Sequence[tuple[K | None, K | None]]],
                   weights: Sequence[float]) -> dict[K, float]:
    """Each key's score plus, at each distance d, weights[d-1] times the better of its two neighbours' scores
    at that distance (a neighbour without a score counts 0). Divided by 1 + sum(weights): stays in [0, 1]."""
    total = 1.0 + sum(weights)
    out = {}
    for key, own in scores.items():
        score = own
        # a key without neighbours is absent from `neighbours`: only its own score counts
        for weight, (before, after) in zip(weights, neighbours.get(key, ()), strict=False):
            score += weight * max(scores.get(before, 0.0) if before is not None else 0.0,
                                  scores.get(after, 0.0) if after is not None else 0.0)
        out[key] = score / total
    return out


_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_ABBREVIATIONS = {abbr.lower(): i for i, abbr in enumerate(calendar.month_abbr) if abbr} | {"sept": 9}
_ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(1[89]\d\d|2[01]\d\d)"
_MONTH_WORDS = "|".join(sorted(_MONTHS.keys() | _ABBREVIATIONS.keys(), key=len, reverse=True))
_DATE = re.compile(
    rf"\b(?:{_ORDINAL}\s+(?:of\s+)?)?({_MONTH_WORDS})"
    rf"\b\.?(?:\s+{_ORDINAL}\b)?(?:,?\s+{_YEAR}\b)?",
    re.IGNORECASE,
)
_YEAR_ALONE = re.compile(rf"\b{_YEAR}\b")


@dataclass(frozen=True)
class TimeRef:
    """A time a query names: a year, a month (of a given year, or of any), or a day."""

    year: int | None = None
    month: int | None = None
    day: int | None = None

    def windows(self, years: range, slack_days: tuple[float, float] = (3.0, 10.0)) -> list[tuple[float, float]]:
        """[start, end) epoch ranges of this time in each of `years` (in its own year only, when it names one),
        widened by `slack_days` (before, after)."""
        wanted = [self.year] if self.year else [y for y in years if 1 <= y <= 9998]
        before, after = (days * 86_400.0 for days in slack_days)
        # In epoch seconds: three days before 0001-01-01 is no datetime, but a stored row can be from then
        return [(start.timestamp() - before, end.timestamp() + after) for start, end in map(self._span, wanted)]

    def _span(self, year: int) -> tuple[datetime, datetime]:
        if self.month is None:
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        start = datetime(year, self.month, 1, tzinfo=UTC)
        if self.day is not None:
            start = start.replace(day=min(self.day, calendar.monthrange(year, self.month)[1]))
            return start, start + timedelta(days=1)
        return start, (start + timedelta(days=32)).replace(day=1)


def time_refs(query: str, words: tuple[str, ...] = SearchConfig.time_words) -> list[TimeRef]:
    """The days, months and years a query names ("on 3 May, 2023", "in June", "August 2023", "in 2022").
    An abbreviation ("Jan") or "May" alone is read as a month only next to a day, a year or "in"/"on"/..."""
    refs = []
    for match in _DATE.finditer(query):
        word = match[2].lower()
        day = match[1] or match[3]
        year = match[4]
        if ((word in _ABBREVIATIONS and word not in _MONTHS) or word == "may") and not (day or year) \
                and not _before_word(query[:match.start()], words):
            continue
        month = _MONTHS.get(word) or _ABBREVIATIONS[word]
        refs.append(TimeRef(int(year) if year else None, month, int(day) if day and 1 <= int(day) <= 31 else None))
    if not refs:
        refs = [TimeRef(int(year)) for year in _YEAR_ALONE.findall(query)]
    return refs


def _before_word(text: str, words: tuple[str, ...]) -> bool:
    """Whether `text` ends with one of `words` and a space (what stands before a month name)."""
    last = re.search(r"(\w+)\s+$", text)
    return last is not None and last.group(1).casefold() in words


def search(
    store: Store,
    vector: np.ndarray,
    query: str,
    criteria: Criteria,
    limit: int,
    *,
    threshold: float | None = None,
    config: SearchConfig = SearchConfig(),
    explain: bool = False,
    graph: bool = False,
) -> list[Hit]:
    """The best `limit` admitted records for `query`. With `explain`, each hit carries the parts of its score:
    cosine, keyword (bm25 over the best one of this query), fused (the two mixed), and what the time named in
    the query and the neighbouring turns (context) added to it (score = fused + time + context, then clipped).
    With `graph`, the candidates linked to the entities the query names (engram.graph_memory) rank higher and
    `explain` has that part too (score = fused + graph + time + context)."""
    pool = max(config.pool, limit)
    dense = store.dense(vector, criteria, pool) if config.fusion != "keyword" else []
    keyword = store.keyword(query, criteria, pool) if config.fusion != "dense" else []
    records: dict[int, MemoryRecord] = {}
    similarity: dict[int, float] = {}
    for record, cosine in dense:
        records[record.version] = record  # type: ignore[index]
        similarity[record.version] = cosine  # type: ignore[index]
    for record, _ in keyword:
        records.setdefault(record.version, record)  # type: ignore[arg-type]
    near: dict[int, list[tuple[int | None, int | None]]] = {}
    if config.context:
        near = _neighbours(store.neighbours(list(records), criteria, len(config.context)), records)
    strength: dict[int, float] = {}
    if graph:  # the graph reorders the candidates; a memory it alone brings has no similarity to rank by
        strength = {v: share for v, (_, share) in linked(store, criteria, query, config.graph_hops).items()
                    if v in records}
    missing = [v for v in records if v not in similarity]
    if missing:  # every candidate gets a true cosine, so `threshold` means the same for all
        for version, cosine in zip(missing, store.vectors(missing) @ vector, strict=True):
            similarity[version] = float(cosine)
    scores = stages = _fused(config, dense, keyword, similarity)
    if graph:
        scores = prefer_linked(scores, strength, config.graph_weight)
    graphed = scores
    refs = time_refs(query, config.time_words) if config.time_weight else []
    if refs and scores:
        scores = _prefer_times(scores, records, refs, config.time_weight, config.time_slack_days)
    timed = scores
    if near:
        scores = spread_context(scores, near, config.context)
    parts = _parts(similarity, {r.version: s for r, s in keyword}, (stages, graphed, timed, scores)) if explain else {}  # type: ignore[misc]
    if explain and not graph:
        for part in parts.values():
            del part["graph"]
    return _hits(records, scores, similarity, parts, threshold, limit)


def _hits(records: dict[int, MemoryRecord], scores: dict[int, float], similarity: dict[int, float],
          parts: dict[int, dict[str, float]], threshold: float | None, limit: int) -> list[Hit]:
    """The best `limit` candidates by score (then cosine) whose cosine reaches `threshold`, scores clipped."""
    order = sorted(scores, key=lambda v: (-scores[v], -similarity[v]))
    hits = []
    for version in order:
        sim = min(max(similarity[version], 0.0), 1.0)
        if threshold is not None and sim < threshold:
            continue
        hits.append(Hit(records[version], min(max(scores[version], 0.0), 1.0), sim, explain=parts.get(version)))
        if len(hits) == limit:
            break
    return hits


def _parts(similarity: dict[int, float], keyword: dict[int, float],
           stages: tuple[dict[int, float], ...]) -> dict[int, dict[str, float]]:
    """Each candidate's score taken apart (search(explain=True)): stages are fused, after the graph, after time,
    after context."""
    fused, graphed, timed, final = stages
    best = max(keyword.values(), default=0.0)
    return {v: {"cosine": round(similarity[v], 6),
                "keyword": round(max(keyword.get(v, 0.0), 0.0) / best if best > 0 else 0.0, 6),
                "fused": round(fused[v], 6), "graph": round(graphed[v] - fused[v], 6),
                "time": round(timed[v] - graphed[v], 6), "context": round(final[v] - timed[v], 6)}
            for v in final}


def _neighbours(found: Mapping[int, Sequence[tuple[MemoryRecord | None, MemoryRecord | None]]],
                records: dict[int, MemoryRecord]) -> dict[int, list[tuple[int | None, int | None]]]:
    """Store answer -> versions. Neighbours become candidates too (a turn next to a hit may be the answer),
    and since "B follows A" is "A precedes B", they learn their links to the candidates without another read."""
    links: dict[int, list[list[int | None]]] = {}
    for version, pairs in found.items():
        for distance, (before, after) in enumerate(pairs):
            for side, record in ((0, before), (1, after)):
                if record is None:
                    continue
                records.setdefault(record.version, record)  # type: ignore[arg-type]
                _link(links, version, distance, side, record.version, len(pairs))  # type: ignore[arg-type]
                _link(links, record.version, distance, 1 - side, version, len(pairs))  # type: ignore[arg-type]
    return {version: [(b, a) for b, a in rows] for version, rows in links.items()}


def _link(links: dict[int, list[list[int | None]]], version: int, distance: int, side: int, other: int,
          window: int) -> None:
    rows = links.setdefault(version, [[None, None] for _ in range(window)])
    rows[distance][side] = other


def _prefer_times(scores: dict[int, float], records: dict[int, MemoryRecord], refs: list[TimeRef],
                  bonus: float, slack_days: tuple[float, float]) -> dict[int, float]:
    stamps = [records[v].valid_from for v in scores]
    first, last = (datetime.fromtimestamp(min(max(ts, FIRST_EPOCH), LAST_EPOCH), tz=UTC).year
                   for ts in (min(stamps), max(stamps)))  # clamped: rows from before to_epoch checked ranges
    windows = [w for ref in refs for w in ref.windows(range(first - 1, last + 1), slack_days)]
    return {v: (s + bonus * any(lo <= records[v].valid_from < hi for lo, hi in windows)) / (1 + bonus)
            for v, s in scores.items()}


def prefer_linked(scores: Mapping[K, float], strength: Mapping[K, float], weight: float) -> dict[K, float]:
    """Each score times 1 + `weight` x its graph strength, over 1 + weight: stays in [0, 1]. A link raises a
    memory in proportion to how well it matches already, so it reorders close matches and never lifts an
    unrelated memory over a strong one (an added share did: every turn of the person a question names
    outranked the one turn that answered it)."""
    return {v: s * (1 + weight * strength.get(v, 0.0)) / (1 + weight) for v, s in scores.items()}


def _fused(config: SearchConfig, dense: list[tuple[MemoryRecord, float]], keyword: list[tuple[MemoryRecord, float]],
           similarity: dict[int, float]) -> dict[int, float]:
    if config.fusion == "rrf":
        ranked = rrf([[r.version for r, _ in dense], [r.version for r, _ in keyword]], config.rrf_k)
        return {v: ranked.get(v, 0.0) for v in similarity}
    weight = {"dense": 0.0, "keyword": 1.0}.get(config.fusion, config.keyword_weight)
    best = max((cos for _, cos in dense), default=max(similarity.values(), default=0.0))
    return fuse(similarity, {r.version: s for r, s in keyword}, weight, best)  # type: ignore[misc]
