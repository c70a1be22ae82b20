"""Rerankers: a second opinion on search's best candidates, from a model that reads the query and each memory.

A reranker implements one method, `rerank(query, hits) -> hits`: the same hits, best first, each with its
`rerank_score`. `search(..., rerank=True)` hands it the best `candidates` hits (at least the limit asked for)
and keeps the limit. Two ship here: `HTTPReranker` for any Cohere-style `/rerank` endpoint (Cohere, Jina, vLLM,
TEI's Cohere route) and `LLMReranker`, one DSPy call to the configured LLM. Neither drops a candidate in silence:
an answer that does not score each one exactly once, with a finite number, is an error.
"""

from __future__ import annotations

import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from engram.config import Settings
from engram.errors import ConfigError, LLMError, RerankerError
from engram.http import JSONClient
from engram.types import Hit

__all__ = ["HTTPReranker", "LLMReranker", "Reranker", "ordered", "scores_from_endpoint", "scores_from_llm"]

log = logging.getLogger("engram.rerank")
LLM_SCALE = 10.0  # the LLM scores 0 (unrelated) to 10 (answers the query); rerank_score is that / 10


class Reranker(ABC):
    """Reorders search hits. `candidates`: how many of search's best hits it is given."""

    name: str = "reranker"
    candidates: int = 20

    @abstractmethod
    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        """The same hits, most relevant first, each with its rerank_score; raise rather than drop any."""


def ordered(hits: Sequence[Hit], scores: Sequence[float]) -> list[Hit]:
    """Hits with their scores attached, best first; equal scores keep search's order."""
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    return [replace(hits[i], rerank_score=float(scores[i])) for i in order]


def _check_candidates(candidates: int) -> int:
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ConfigError(f"candidates must be a positive integer, not {candidates!r}")
    return candidates


# -- an OpenAI/Cohere-style /rerank endpoint -------------------------------------------------------------------

class HTTPReranker(Reranker):
    """POST {base_url}/rerank {model, query, documents, top_n} -> {results: [{index, relevance_score}]}: the
    shape Cohere, Jina and vLLM serve (for TEI, its Cohere-compatible route). Retries 429, 5xx and timeouts."""

    def __init__(self, model: str, base_url: str, api_key: str | None = None, *, candidates: int = 20,
                 timeout: float = 30.0, max_retries: int = 3, backoff: float = 0.5,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError("the rerank endpoint needs a model name (setting reranker_model)")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"reranker_base_url must be an http(s) URL, not {base_url!r}")
        self.model = model
        self.candidates = _check_candidates(candidates)
        self.name = f"rerank:{model}"
        self._http = JSONClient(self.name, base_url, error=RerankerError, api_key=api_key, timeout=timeout,
                                max_retries=max_retries, backoff=backoff, transport=transport)

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        body = self._http.post("/rerank", {"model": self.model, "query": query,
                                            "documents": [hit.record.text for hit in hits], "top_n": len(hits)})
        return ordered(hits, scores_from_endpoint(body, len(hits), self.name))

    def close(self) -> None:
        self._http.close()


def scores_from_endpoint(body: Any, count: int, name: str = "rerank") -> list[float]:
    """Each document's relevance_score from a /rerank answer, by index; RerankerError unless every one of the
    `count` documents is scored exactly once with a finite number."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise RerankerError(f"{name}: the answer has no 'results' list: {str(body)[:200]}")
    scores: list[float | None] = [None] * count
    for item in results:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count or scores[index] is not None:
            raise RerankerError(f"{name}: bad or repeated index {index!r} for {count} documents")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise RerankerError(f"{name}: document {index} has no finite relevance_score: {score!r}")
        scores[index] = float(score)
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise RerankerError(f"{name}: {len(missing)} of {count} documents were not scored (first: {missing[0]})")
    return [s for s in scores if s is not None]


# -- the configured LLM, through DSPy ----------------------------------------------------------------------------

class LLMReranker(Reranker):
    """One DSPy call: the LLM scores every candidate from 0 to 10 by a small integer id (never a store id). The
    LLM is made on first use from `settings` (llm_model, llm_api_base, llm_api_key), so DSPy is imported only
    when a search asks to rerank."""

    def __init__(self, settings: Settings, *, candidates: int = 20) -> None:
        if not settings.llm_model:
            raise ConfigError("the LLM reranker needs a model: set llm_model or reranker_model")
        self.settings = settings
        self.candidates = _check_candidates(candidates)
        self.name = f"llm:{settings.llm_model}"
        self._program: tuple[Any, Any] | None = None  # (LLM, DSPy program), made on first use
        self._lock = threading.Lock()

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return []
        from engram.llm import Usage

        llm, program = self._ready()
        usage = Usage()
        prediction = llm.run(program, usage, query=query,
                             memories=[{"id": i, "text": hit.record.text} for i, hit in enumerate(hits)])
        log.info("rerank of %d memories by %s: %s", len(hits), self.name, usage.to_dict())
        raw = [(getattr(s, "id", None), getattr(s, "score", None)) for s in (prediction.scores or [])]
        return ordered(hits, [score / LLM_SCALE for score in scores_from_llm(raw, len(hits))])

    def _ready(self) -> tuple[Any, Any]:
        with self._lock:
            if self._program is None:
                from engram.llm import LLM

                llm = LLM(self.settings)
                from engram.signatures import Rerank

                self._program = (llm, llm.dspy.Predict(Rerank))
            return self._program


def scores_from_llm(raw: Sequence[tuple[Any, Any]], count: int) -> list[float]:
    """(id, score) pairs from the LLM -> each candidate's score, by id; LLMError unless every one of the
    `count` candidates is scored exactly once with a finite number from 0 to 10."""
    scores: list[float | None] = [None] * count
    for memory_id, score in raw:
        if isinstance(memory_id, bool) or not isinstance(memory_id, int) or not 0 <= memory_id < count:
            raise LLMError(f"the reranking LLM scored memory id {memory_id!r}; the ids shown were 0 to {count - 1}")
        if scores[memory_id] is not None:
            raise LLMError(f"the reranking LLM scored memory id {memory_id} twice")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= LLM_SCALE:
            raise LLMError(f"the reranking LLM gave memory id {memory_id} the score {score!r}, not a number "
                           f"from 0 to {LLM_SCALE:g}")
        scores[memory_id] = float(score)
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise LLMError(f"the reranking LLM left {len(missing)} of {count} memories unscored (first: id {missing[0]})")
    return [s for s in scores if s is not None]
