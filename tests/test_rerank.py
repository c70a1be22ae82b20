"""Reranking: search(rerank=True) with a pluggable reranker; the /rerank endpoint and the LLM one, over real HTTP
against engram.testing.FakeOpenAI. A bad answer is an error, never a silently shorter list."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import pytest

from engram import ConfigError, InvalidInput, LLMError, Memory, RerankerError, Settings
from engram.rerank import (
    HTTPReranker,
    LLMReranker,
    Reranker,
    ordered,
    scores_from_endpoint,
    scores_from_llm,
)
from engram.testing import FakeOpenAI, Reply, dspy_reply
from engram.types import Hit, MemoryRecord

TEAS = ["I like green tea", "My sister lives in Berlin", "I drink black tea with milk", "Tea makes me sleepy",
        "I play chess on Sundays"]


def hit(text: str, score: float = 0.5) -> Hit:
    return Hit(MemoryRecord(id=text, text=text, hash=text), score, score)


# -- pure checks -----------------------------------------------------------------------------------------------

def test_ordered_attaches_scores_best_first_and_keeps_ties_in_search_order() -> None:
    hits = [hit("a"), hit("b"), hit("c")]
    out = ordered(hits, [0.2, 0.9, 0.2])
    assert [(h.record.text, h.rerank_score) for h in out] == [("b", 0.9), ("a", 0.2), ("c", 0.2)]


@pytest.mark.parametrize(("body", "problem"), [
    ({}, "no 'results'"), ({"results": "x"}, "no 'results'"),
    ({"results": [{"index": 0, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.2}]}, "repeated index 0"),
    ({"results": [{"index": 2, "relevance_score": 0.1}]}, "bad or repeated index 2"),
    ({"results": [{"index": True, "relevance_score": 0.1}]}, "index True"),
    ({"results": [{"index": 0, "relevance_score": math.nan}, {"index": 1, "relevance_score": 1}]}, "finite"),
    ({"results": [{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 1}]}, "finite"),
    ({"results": [{"index": 1, "relevance_score": 0.3}]}, "1 of 2 documents were not scored"),
])
def test_an_endpoint_answer_must_score_every_document_once(body: dict, problem: str) -> None:
    with pytest.raises(RerankerError, match=problem):
        scores_from_endpoint(body, 2)


def test_an_endpoint_answer_is_read_by_index() -> None:
    body = {"results": [{"index": 1, "relevance_score": 3}, {"index": 0, "relevance_score": -1.5}]}
    assert scores_from_endpoint(body, 2) == [-1.5, 3.0]


@pytest.mark.parametrize(("raw", "problem"), [
    ([(0, 5), (2, 1)], "id 2"), ([(0, 5), (-1, 1)], "id -1"), ([(0, 5), ("1", 1)], "id '1'"),
    ([(0, 5), (0, 1)], "twice"), ([(0, 5), (1, 11)], "score 11"), ([(0, 5), (1, math.inf)], "score inf"),
    ([(0, 5), (1, math.nan)], "score nan"), ([(0, 5), (1, None)], "score None"), ([(0, 5)], "1 of 2 memories unscored"),
])
def test_the_llms_scores_are_checked(raw: list, problem: str) -> None:
    with pytest.raises(LLMError, match=problem):
        scores_from_llm(raw, 2)


# -- the /rerank endpoint --------------------------------------------------------------------------------------

@pytest.fixture
def served(home, embedder, fake_openai: FakeOpenAI) -> Iterator[Memory]:
    reranker = HTTPReranker("fake-rerank", fake_openai.base_url, "rk-test", max_retries=1, backoff=0.001)
    with Memory(home=home, embedder=embedder, reranker=reranker) as m:
        m.add(TEAS, user_id="u", infer=False)
        yield m


def test_search_rerank_sends_the_candidates_and_keeps_the_limit(served: Memory, fake_openai: FakeOpenAI) -> None:
    plain = served.search("black tea with milk", user_id="u", top_k=2)["results"]
    assert fake_openai.rerank_requests == [] and all("rerank_score" not in r for r in plain)
    out = served.search("black tea with milk", user_id="u", top_k=2, rerank=True)["results"]
    [request] = fake_openai.rerank_requests
    assert request.headers["authorization"] == "Bearer rk-test"
    assert request.body is not None and request.body["model"] == "fake-rerank"
    assert request.body["query"] == "black tea with milk" and request.body["top_n"] == len(TEAS)
    assert sorted(request.body["documents"]) == sorted(TEAS)  # every candidate (fewer than `candidates` exist)
    assert out[0]["memory"] == "I drink black tea with milk" and out[0]["rerank_score"] == 1.0
    assert out[1]["memory"] in ("I like green tea", "Tea makes me sleepy") and out[1]["rerank_score"] == 0.25
    assert {"score", "similarity"} <= set(out[0])


def test_the_reranker_decides_the_order(served: Memory, fake_openai: FakeOpenAI) -> None:
    def chess_first(body: dict) -> dict:
        return {"results": [{"index": i, "relevance_score": 1.0 if "chess" in d else 0.0}
                            for i, d in enumerate(body["documents"])]}
    fake_openai.script_rerank(chess_first)
    out = served.search("tea", user_id="u", top_k=1, rerank=True)["results"]
    assert [r["memory"] for r in out] == ["I play chess on Sundays"]


@pytest.mark.parametrize(("answer", "problem"), [
    (Reply(status=500, content="down"), "HTTP 500.*after 2 attempts: down"),
    (Reply(status=400, content="bad model"), "HTTP 400.*bad model"),
    (Reply(body="not json"), "malformed"),
    ({"results": [{"index": 0, "relevance_score": 0.5}]}, "not scored"),
])
def test_a_failed_or_short_answer_is_an_error(served: Memory, fake_openai: FakeOpenAI, answer, problem: str) -> None:
    fake_openai.script_rerank(answer, answer)
    with pytest.raises(RerankerError, match=problem):
        served.search("tea", user_id="u", rerank=True)


def test_rerank_is_checked_and_without_a_reranker_changes_nothing(memory: Memory, caplog) -> None:
    memory.add(TEAS, user_id="u", infer=False)
    plain = memory.search("tea", user_id="u")
    with caplog.at_level(logging.WARNING, logger="engram"):
        assert memory.search("tea", user_id="u", rerank=True) == plain
        memory.search("tea", user_id="u", rerank=True)
    assert [r.message for r in caplog.records].count(
        "search(rerank=True): no reranker is configured (setting reranker), so results keep search's own order") == 1
    with pytest.raises(InvalidInput, match="rerank"):
        memory.search("tea", user_id="u", rerank="yes")  # type: ignore[arg-type]


def test_settings_build_the_reranker_at_the_edge(home, embedder, fake_openai: FakeOpenAI) -> None:
    settings = Settings.load(home=home, reranker="http", reranker_model="fake-rerank",
                             reranker_base_url=fake_openai.base_url)
    with Memory(settings, embedder=embedder) as m:
        assert isinstance(m.reranker, HTTPReranker)
        m.add(TEAS, user_id="u", infer=False)
        assert m.search("chess", user_id="u", top_k=1, rerank=True)["results"][0]["rerank_score"] == 1.0
    for reranker, problem in [("cohere", "unknown reranker 'cohere'"), ("http", "reranker_model"),
                              ("llm", "llm_model or reranker_model")]:
        with pytest.raises(ConfigError, match=problem):
            Memory(Settings.load(home=home, reranker=reranker), embedder=embedder)
    with pytest.raises(ConfigError, match="reranker= takes a Reranker"):
        Memory(home=home, embedder=embedder, reranker="http")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="http"):
        HTTPReranker("m", "localhost:8080")


# -- the LLM reranker ------------------------------------------------------------------------------------------

@pytest.fixture
def judged(home, embedder, fake_openai: FakeOpenAI) -> Iterator[Memory]:
    settings = Settings.load(home=home, llm_model="openai/fake-judge", llm_api_base=fake_openai.base_url,
                             llm_api_key="sk-test", llm_retries=0, reranker="llm")
    with Memory(settings, embedder=embedder) as m:
        m.add(TEAS[:3], user_id="u", infer=False)
        yield m


def scores_by_text(body: dict, wanted: dict[str, float]) -> list[dict]:
    """The reranking prompt lists the memories with their ids: score them by text."""
    import json
    import re

    prompt = json.dumps(body["messages"])
    shown = re.findall(r'\\"id\\": (\d+), \\"text\\": \\"([^\\]+)\\"', prompt)
    return [{"id": int(i), "score": wanted[text]} for i, text in shown]


def test_the_llm_reranker_scores_every_candidate_in_one_call(judged: Memory, fake_openai: FakeOpenAI) -> None:
    wanted: dict[str, float] = {TEAS[0]: 2, TEAS[1]: 9, TEAS[2]: 5}
    fake_openai.script_chat(lambda body: dspy_reply(scores=scores_by_text(body, wanted)))
    out = judged.search("tea", user_id="u", top_k=2, rerank=True)["results"]
    assert [(r["memory"], r["rerank_score"]) for r in out] == [(TEAS[1], 0.9), (TEAS[2], 0.5)]
    assert fake_openai.count("/chat/completions") == 1
    prompt = str(fake_openai.chat_requests[0].body)
    assert all(r["id"] not in prompt for r in out)  # small integer ids, never store ids
    assert isinstance(judged.reranker, LLMReranker)


@pytest.mark.parametrize(("scores", "problem"), [
    ([{"id": 0, "score": 5}, {"id": 1, "score": 5}], "unscored"),
    ([{"id": 0, "score": 5}, {"id": 1, "score": 5}, {"id": 7, "score": 5}], "id 7"),
    ([{"id": 0, "score": 5}, {"id": 1, "score": 5}, {"id": 2, "score": 50}], "score 50"),
    ([{"id": 0, "score": 5}, {"id": 1, "score": 5}, {"id": 1, "score": 5}], "twice"),
])
def test_a_bad_llm_answer_is_an_llm_error(judged: Memory, fake_openai: FakeOpenAI, scores: list, problem: str) -> None:
    fake_openai.script_chat(dspy_reply(scores=scores))
    with pytest.raises(LLMError, match=problem):
        judged.search("tea", user_id="u", rerank=True)


def test_an_unreadable_llm_answer_is_an_llm_error(judged: Memory, fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat("no scores here", "still none")
    with pytest.raises(LLMError):
        judged.search("tea", user_id="u", rerank=True)


def test_a_reranker_is_one_method(memory: Memory) -> None:
    class Reverse(Reranker):
        candidates = 3

        def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
            return ordered(hits, [float(i) for i in range(len(hits))])

    memory.add(TEAS, user_id="u", infer=False)
    top3 = [r["memory"] for r in memory.search("tea", user_id="u", top_k=3)["results"]]
    with Memory(memory.settings, embedder=memory.embedder, store=memory.store, reranker=Reverse()) as m:
        assert [r["memory"] for r in m.search("tea", user_id="u", top_k=3, rerank=True)["results"]] == top3[::-1]
