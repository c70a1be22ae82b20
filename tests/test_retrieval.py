"""engram.retrieval: fusion, conversational context and named times as pure functions, then through a store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engram import Memory
from engram.errors import ConfigError
from engram.retrieval import (
    SearchConfig,
    TimeRef,
    fuse,
    parse_weights,
    prefer_linked,
    rrf,
    search,
    spread_context,
    time_refs,
)
from engram.stores.base import Criteria
from engram.types import Scope


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_rrf_first_everywhere_scores_one() -> None:
    scores = rrf([["a", "b"], ["a", "c"]], k=60)
    assert scores["a"] == 1.0 and scores["b"] == scores["c"] == pytest.approx((1 / 62) / (2 / 61))


def test_fuse_weights_normalised_scores() -> None:
    cosine = {"a": 0.8, "b": 0.4, "c": -0.2}
    keyword = {"b": 10.0, "c": 5.0}
    fused = fuse(cosine, keyword, 0.5)
    assert fused["a"] == pytest.approx(0.5)  # best cosine, no keyword match
    assert fused["b"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert fused["c"] == pytest.approx(0.25)  # negative cosine counts 0
    assert fuse(cosine, keyword, 0.0) == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert fuse(cosine, {}, 1.0) == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert fuse({"x": 0.2}, {}, 0.5, best_cosine=0.4) == {"x": pytest.approx(0.25)}


def test_spread_context_adds_the_better_neighbour_per_distance() -> None:
    scores = {"q": 0.9, "reply": 0.1, "far": 0.5, "lone": 0.3}
    near: dict[str, list[tuple[str | None, str | None]]] = {"reply": [("q", None), (None, "far")],
                                                            "q": [(None, "reply"), (None, None)]}
    out = spread_context(scores, near, (0.4, 0.2))
    assert out["reply"] == pytest.approx((0.1 + 0.4 * 0.9 + 0.2 * 0.5) / 1.6)
    assert out["q"] == pytest.approx((0.9 + 0.4 * 0.1) / 1.6)
    assert out["lone"] == pytest.approx(0.3 / 1.6)
    assert spread_context(scores, near, ()) == scores


def test_a_graph_link_multiplies_a_score_so_it_reorders_only_close_matches() -> None:
    scores = {"strong": 0.9, "close": 0.8, "weak": 0.2, "hop": 0.8}
    strength = {"close": 1.0, "weak": 1.0, "hop": 0.5}
    out = prefer_linked(scores, strength, 0.2)
    assert out["strong"] == pytest.approx(0.9 / 1.2) and out["close"] == pytest.approx(0.8)
    assert out["hop"] == pytest.approx(0.8 * 1.1 / 1.2) and out["weak"] == pytest.approx(0.2)
    assert out["close"] > out["strong"] > out["hop"] > out["weak"]  # a weak match stays weak, however linked
    assert prefer_linked(scores, strength, 0.0) == scores
    assert prefer_linked({"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, 5.0) == {"a": 1.0, "b": 0.0}


def test_search_config_is_checked_and_weights_parse() -> None:
    assert parse_weights("0.4, 0.2") == (0.4, 0.2) and parse_weights("0") == () and parse_weights("") == ()
    for bad in ({"fusion": "magic"}, {"keyword_weight": 1.5}, {"context": (-1.0,)}, {"time_weight": -0.1}):
        with pytest.raises(ConfigError):
            SearchConfig(**bad)
    with pytest.raises(ConfigError):
        parse_weights("a,b")


@pytest.mark.parametrize(("query", "refs"), [
    ("Where did we go sailing in June?", [TimeRef(None, 6, None)]),
    ("Which flat did Ada rent on 1 February, 2023?", [TimeRef(2023, 2, 1)]),
    ("what happened on May 23, 2023", [TimeRef(2023, 5, 23)]),
    ("What did I do in 2022?", [TimeRef(2022)]),
    ("Sept. 2021 and in April", [TimeRef(2021, 9), TimeRef(None, 4)]),
    ("What may John do?", []),  # "may" is a month only next to a day, a year or a preposition
    ("Jan said hi", []),
    ("my appointment on Jan 5th", [TimeRef(None, 1, 5)]),
])
def test_time_refs(query: str, refs: list[TimeRef]) -> None:
    assert time_refs(query) == refs


def test_time_windows_have_slack_and_cover_every_year_when_none_is_named() -> None:
    [(start, end)] = TimeRef(2023, 5, 23).windows(range(2000, 2030))
    assert start == ts("2023-05-20") and end == ts("2023-06-03")  # 3 days before, 10 after the day
    [(start, end)] = TimeRef(2023, 12).windows(range(2000, 2001))
    assert start == ts("2023-11-28") and end == ts("2024-01-11")
    assert len(TimeRef(None, 6).windows(range(2020, 2023))) == 3


@pytest.fixture
def chat(memory: Memory) -> Memory:
    """A question and its reply stored by one add(), then similar-sounding memories, each by its own add()."""
    memory.add([{"role": "user", "content": "Did you finally see the dentist on Tuesday?"},
                {"role": "assistant", "content": "Yes, and no cavities at all!"}], user_id="u", infer=False)
    for text in ("I need to book a doctor appointment", "The clinic opens at nine", "My teeth feel sensitive to cold",
                 "I brush my teeth twice a day", "The hospital parking is expensive", "Tuesday is my yoga day"):
        memory.add(text, user_id="u", infer=False)
    return memory


def ranked(memory: Memory, query: str, config: SearchConfig) -> list[str]:
    vector = memory.embedder.embed([query])[0]
    return [h.record.text for h in search(memory.store, vector, query, Criteria(Scope(user_id="u")), 8, config=config)]


def test_a_reply_is_found_through_the_question_it_answers(chat: Memory) -> None:
    query = "how did the dentist visit go?"
    assert ranked(chat, query, SearchConfig())[:2] == ["Did you finally see the dentist on Tuesday?",
                                                       "Yes, and no cavities at all!"]
    assert ranked(chat, query, SearchConfig(context=())).index("Yes, and no cavities at all!") > 2


def test_neighbours_stay_inside_one_add_call_and_skip_deleted(chat: Memory) -> None:
    criteria = Criteria(Scope(user_id="u"))
    rows = {r.text: r for r in chat.store.select(criteria)}
    question, reply = rows["Did you finally see the dentist on Tuesday?"], rows["Yes, and no cavities at all!"]
    lone = rows["The clinic opens at nine"]
    q, r, n = question.version, reply.version, lone.version
    assert q is not None and r is not None and n is not None  # stored rows have their version
    found = chat.store.neighbours([q, r, n], criteria, 2)
    assert [(b and b.text, a and a.text) for b, a in found[q]] == [(None, reply.text), (None, None)]
    assert [(b and b.text, a and a.text) for b, a in found[r]] == [(question.text, None), (None, None)]
    assert found[n] == [(None, None), (None, None)]
    chat.delete(reply.id)
    assert chat.store.neighbours([q], criteria, 1)[q] == [(None, None)]


def test_named_times_prefer_memories_from_then(memory: Memory) -> None:
    memory.add("We went hiking in the mountains", user_id="u", infer=False, timestamp="2023-03-12T10:00:00Z")
    memory.add("We went hiking by the lake", user_id="u", infer=False, timestamp="2023-08-02T10:00:00Z")
    query = "Where did we go hiking in August?"
    assert ranked(memory, query, SearchConfig(time_weight=0))[0] == "We went hiking in the mountains"
    assert ranked(memory, query, SearchConfig())[0] == "We went hiking by the lake"


def test_default_search_returns_scores_in_unit_range_and_respects_threshold(chat: Memory) -> None:
    results = chat.search("dentist", user_id="u", limit=8)["results"]
    assert all(0.0 <= r["score"] <= 1.0 for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    strict = chat.search("dentist", user_id="u", limit=8, threshold=0.5)["results"]
    assert strict and all(r["similarity"] >= 0.5 for r in strict)


def test_the_named_time_words_and_window_are_settings() -> None:
    assert time_refs("what happened in may?") == [TimeRef(None, 5)]
    assert time_refs("what happened in may?", words=()) == []  # switched off: "may" is only a verb then
    assert time_refs("what happened during may?", words=("during",)) == [TimeRef(None, 5)]
    [(start, end)] = TimeRef(2023, 5, 23).windows(range(2000, 2030), (0.0, 0.0))
    assert end - start == 86_400
    with pytest.raises(ConfigError):
        SearchConfig(time_slack_days=(1.0,))  # type: ignore[arg-type]  # the wrong length is the point


def test_explain_takes_each_score_apart_and_is_off_by_default(memory: Memory) -> None:
    memory.add(["I am allergic to peanuts", "My sister lives in Oslo", "Peanut butter is in the cupboard"],
               user_id="u", infer=False)
    assert all("explain" not in hit for hit in memory.search("peanuts", user_id="u")["results"])
    hits = memory.search("peanuts", user_id="u", explain=True)["results"]
    for hit in hits:
        parts = hit["explain"]
        assert set(parts) == {"cosine", "keyword", "fused", "time", "context"}
        summed = parts["fused"] + parts["time"] + parts["context"]
        assert hit["score"] == pytest.approx(min(max(summed, 0), 1), abs=1e-5)
        assert parts["cosine"] == pytest.approx(hit["similarity"], abs=1e-5)
    assert hits[0]["explain"]["keyword"] == 1.0 and hits[-1]["memory"] == "My sister lives in Oslo"
    assert hits[-1]["explain"]["keyword"] == 0.0


def test_the_graph_reorders_the_candidates_and_brings_in_none(memory: Memory) -> None:
    ana = ["Ana painted a lighthouse", "Ana adopted a grey cat", "Ana ran a marathon in the rain",
           "Ana sings in a choir", "Ana moved to a bigger flat", "Ana bakes sourdough bread", "Ana learns Japanese",
           "Ana fixed her bicycle"]
    others = ["Tom painted the garden fence", "Tom painted a portrait of his dog", "The museum shows old paintings",
              "Painting classes start in spring"]
    memory.add([{"role": "user", "content": text} for text in ana + others], user_id="u", infer=False)
    query, criteria = "What has Ana painted?", Criteria(Scope(user_id="u"))
    vector = memory.embedder.embed([query])[0]
    config = SearchConfig(pool=3, context=(), time_weight=0, graph_weight=1.0)
    candidates = {r.text for r, _ in memory.store.dense(vector, criteria, 3)} | {
        r.text for r, _ in memory.store.keyword(query, criteria, 3)}
    assert set(ana) - candidates  # two lists of 3 cannot hold 8: the graph could bring the others in
    plain = [h.record.text for h in search(memory.store, vector, query, criteria, 3, config=config)]
    graphed = [h.record.text for h in search(memory.store, vector, query, criteria, 3, config=config, graph=True)]
    assert set(graphed) <= candidates and set(plain) <= candidates
    assert sum(t in ana for t in graphed) > sum(t in ana for t in plain)
    assert graphed[0] == "Ana painted a lighthouse"
