"""Scores of one question's retrieval or answer. Pure functions, each checked by hand in tests/test_eval.py."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["parse_evidence", "recall_at_k", "ndcg_at_k", "tokens", "token_f1", "bleu1", "percentile"]

_DIA_ID = re.compile(r"D(\d+):(\d+)")
_SPLIT = re.compile(r"[\s;,]+")
_ARTICLES = frozenset({"a", "an", "the", "and"})
_PUNCTUATION = str.maketrans(dict.fromkeys(string.punctuation, " "))


def parse_evidence(evidence: Iterable[str]) -> tuple[str, ...]:
    """LoCoMo evidence ids, de-duplicated in order. Strings listing several ids ("D8:6; D9:17") are split;
    ids are normalised ("D30:05" is D30:5); a malformed id ("D", "D:11:26") is kept as it is, so it counts
    as evidence nobody can retrieve, exactly as the official scorer counts it."""
    out: list[str] = []
    for raw in evidence:
        for token in _SPLIT.split(str(raw).strip()):
            if not token:
                continue
            match = _DIA_ID.fullmatch(token)
            dia_id = f"D{int(match[1])}:{int(match[2])}" if match else token
            if dia_id not in out:
                out.append(dia_id)
    return tuple(out)


def recall_at_k(evidence: Sequence[str], retrieved: Sequence[Sequence[str]], k: int) -> float:
    """|evidence ∩ ids of the top-k retrieved items| / |evidence|; 1.0 without evidence (the paper's rule).
    Each retrieved item carries the ids of the turns it came from (one for a raw turn, several for a memory)."""
    if not evidence:
        return 1.0
    seen = {dia_id for item in retrieved[:k] for dia_id in item}
    return sum(dia_id in seen for dia_id in evidence) / len(evidence)


def ndcg_at_k(evidence: Sequence[str], retrieved: Sequence[Sequence[str]], k: int) -> float:
    """Binary NDCG: an item is relevant when it carries an evidence id not credited to a better-ranked item;
    the ideal ranking puts one evidence item per position. 1.0 without evidence, like recall."""
    if not evidence:
        return 1.0
    wanted = set(evidence)
    dcg = 0.0
    for rank, item in enumerate(retrieved[:k], start=1):
        found = wanted.intersection(item)
        if found:
            wanted -= found
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(evidence), k) + 1))
    return dcg / ideal


def tokens(text: str) -> list[str]:
    """Lower-cased words without punctuation or articles (SQuAD-style normalisation, as LoCoMo's scorer)."""
    return [w for w in str(text).lower().translate(_PUNCTUATION).split() if w not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the sets of normalised tokens of a prediction and a reference answer."""
    predicted, wanted = set(tokens(prediction)), set(tokens(reference))
    common = len(predicted & wanted)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def bleu1(prediction: str, reference: str) -> float:
    """BLEU with unigrams only: clipped unigram precision times the brevity penalty."""
    predicted, wanted = tokens(prediction), tokens(reference)
    if not predicted or not wanted:
        return 0.0
    counts = Counter(wanted)
    clipped = sum(min(n, counts[w]) for w, n in Counter(predicted).items())
    penalty = 1.0 if len(predicted) > len(wanted) else math.exp(1 - len(wanted) / len(predicted))
    return penalty * clipped / len(predicted)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
