"""The Memory facade: Mem0-compatible shapes, versions and history, errors that write nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

import pytest

from engram import (
    AsyncMemory,
    CorruptStore,
    EmbedderMismatch,
    InvalidFilter,
    InvalidInput,
    Memory,
    NotFound,
    ScopeRequired,
)

FACTS = [
    "I am allergic to peanuts",
    "My favourite drink is green tea",
    "I work as a nurse in Lyon",
    "My sister Anna lives in Berlin",
    "I play football every Sunday",
]


def rows(memory: Memory) -> int:
    return sqlite3.connect(memory.settings.database).execute("SELECT count(*) FROM memories").fetchone()[0]


def test_add_returns_mem0_shape_and_stores_each_message(memory: Memory) -> None:
    result = memory.add([{"role": "user", "content": f} for f in FACTS], user_id="alice", infer=False)
    assert [r["event"] for r in result["results"]] == ["ADD"] * 5
    assert {r["memory"] for r in result["results"]} == set(FACTS)
    assert all(set(r) >= {"id", "memory", "event"} for r in result["results"])
    listed = memory.get_all(user_id="alice")["results"]
    assert {m["memory"] for m in listed} == set(FACTS)
    assert all(m["user_id"] == "alice" and m["role"] == "user" for m in listed)


def test_add_accepts_string_dict_and_skips_system_messages(memory: Memory) -> None:
    memory.add("I like tea", user_id="u", infer=False)
    memory.add({"role": "user", "content": "I like jazz"}, user_id="u", infer=False)
    out = memory.add([{"role": "system", "content": "be nice"}, {"role": "assistant", "content": "Noted."}],
                     user_id="u", infer=False)
    assert [r["memory"] for r in out["results"]] == ["Noted."]
    assert {m["memory"] for m in memory.get_all(user_id="u")["results"]} == {"I like tea", "I like jazz", "Noted."}


def test_exact_duplicate_in_same_scope_is_noop_but_other_scope_adds(memory: Memory) -> None:
    first = memory.add("I like tea", user_id="u", infer=False)["results"][0]
    again = memory.add("  i like   TEA ", user_id="u", infer=False)["results"][0]
    assert again == {"id": first["id"], "memory": "I like tea", "event": "NOOP"}
    other = memory.add("I like tea", user_id="v", infer=False)["results"][0]
    assert other["event"] == "ADD" and other["id"] != first["id"]
    in_batch = memory.add([{"content": "I like jazz"}, {"content": "I like jazz"}, {"content": "x y"},
                           {"content": "x  Y"}], user_id="u", infer=False)  # repeats within one call: stored once
    assert [(r["event"], r["memory"]) for r in in_batch["results"]] == [("ADD", "I like jazz"), ("ADD", "x y")]


def test_infer_true_without_an_llm_uses_the_offline_pipeline(memory: Memory) -> None:
    out = memory.add([{"role": "user", "content": "Hi! I like tea. Do you like tea?"},
                      {"role": "assistant", "content": "I am an assistant and I like helping."}], user_id="u")
    assert [(r["event"], r["memory"]) for r in out["results"]] == [("ADD", "User likes tea")]
    assert out["usage"]["pipeline"] == "offline" and out["usage"]["llm_calls"] == 0


def test_search_ranks_relevant_first_with_scores_in_unit_range(memory: Memory) -> None:
    memory.add([{"content": f} for f in FACTS], user_id="alice", infer=False)
    results = memory.search("What should I avoid eating?", user_id="alice", limit=3)["results"]
    assert results[0]["memory"] == "I am allergic to peanuts"
    assert len(results) == 3
    for r in results:
        assert 0.0 <= r["score"] <= 1.0 and 0.0 <= r["similarity"] <= 1.0
        assert set(r) >= {"id", "memory", "score", "created_at", "updated_at", "user_id", "metadata"}
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    keyword = memory.search("Berlin", user_id="alice", limit=1)["results"]
    assert keyword[0]["memory"] == "My sister Anna lives in Berlin"


def test_threshold_drops_dissimilar_memories(memory: Memory) -> None:
    memory.add([{"content": f} for f in FACTS], user_id="alice", infer=False)
    everything = memory.search("peanut allergy", user_id="alice", limit=10)["results"]
    strict = memory.search("peanut allergy", user_id="alice", limit=10, threshold=0.5)["results"]
    assert len(everything) == 5
    assert [r["memory"] for r in strict] == ["I am allergic to peanuts"]
    with pytest.raises(InvalidInput):
        memory.search("x", user_id="alice", threshold=1.5)


def test_scope_is_required_everywhere_and_may_come_from_filters(memory: Memory) -> None:
    for call in (lambda: memory.add("x", infer=False), lambda: memory.search("x"), memory.get_all, memory.delete_all):
        with pytest.raises(ScopeRequired):
            call()
    memory.add("I like tea", filters={"user_id": "u"}, infer=False)
    assert memory.search("tea", filters={"user_id": "u"})["results"][0]["memory"] == "I like tea"
    with pytest.raises(InvalidInput, match="twice"):
        memory.search("tea", user_id="u", filters={"user_id": "v"})


def test_agent_and_run_scopes_narrow_a_user(memory: Memory) -> None:
    memory.add("fact for bot A", user_id="u", agent_id="a", infer=False)
    memory.add("fact for bot B", user_id="u", agent_id="b", infer=False)
    memory.add("fact in a run", user_id="u", agent_id="a", run_id="r1", infer=False)
    assert len(memory.get_all(user_id="u")["results"]) == 3
    of_bot = memory.get_all(user_id="u", agent_id="a")["results"]
    assert {m["memory"] for m in of_bot} == {"fact for bot A", "fact in a run"}
    assert [m["memory"] for m in memory.get_all(run_id="r1")["results"]] == ["fact in a run"]
    assert [m["memory"] for m in memory.search("fact", agent_id="b")["results"]] == ["fact for bot B"]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"city": "Paris"}, {"p1", "p3"}),
    ({"city": {"ne": "Paris"}}, {"p2", "p4"}),
    ({"rank": {"gte": 2, "lt": 4}}, {"p2", "p3"}),
    ({"rank": {"in": [1, 4]}}, {"p1", "p4"}),
    ({"rank": {"nin": [1, 4]}}, {"p2", "p3"}),
    ({"note": {"contains": "blue"}}, {"p1"}),
    ({"note": {"icontains": "BLUE"}}, {"p1", "p2"}),
    ({"OR": [{"city": "Rome"}, {"rank": 1}]}, {"p1", "p2"}),
    ({"AND": [{"city": "Paris"}, {"NOT": [{"rank": 1}]}]}, {"p3"}),
    ({"tags": {"contains": "x"}}, {"p3"}),
    ({"note": "*"}, {"p1", "p2"}),
    ({"categories": {"in": ["work"]}}, {"p4"}),
    ({"memory": {"icontains": "P3"}}, {"p3"}),
])
def test_metadata_filters(memory: Memory, filters: dict, expected: set) -> None:
    memory.add("p1", user_id="u", infer=False, metadata={"city": "Paris", "rank": 1, "note": "a blue door"})
    memory.add("p2", user_id="u", infer=False, metadata={"city": "Rome", "rank": 2, "note": "Blue sky"})
    memory.add("p3", user_id="u", infer=False, metadata={"city": "Paris", "rank": 3, "tags": ["x", "y"]})
    memory.add("p4", user_id="u", infer=False, metadata={"rank": 4}, categories=["work"])
    got = {m["memory"] for m in memory.get_all(user_id="u", filters=filters)["results"]}
    assert got == expected
    searched = {m["memory"] for m in memory.search("p", user_id="u", filters=filters, limit=10)["results"]}
    assert searched == expected


@pytest.mark.parametrize("bad", [
    {"rank": {"between": [1, 2]}}, {"rank": {"in": 3}}, {"AND": {"x": 1}}, {"OR": []}, {"note": {"contains": 3}},
    {"created_at": {"gte": "yesterday"}}, "city=Paris",
])
def test_bad_filters_are_clear_errors(memory: Memory, bad: object) -> None:
    with pytest.raises(InvalidFilter):
        memory.get_all(user_id="u", filters=bad)  # type: ignore[arg-type]


def test_categories_and_time_filters(memory: Memory) -> None:
    memory.add("went to the dentist", user_id="u", infer=False, categories=["Health"], timestamp="2023-05-01T10:00:00Z")
    memory.add("got promoted", user_id="u", infer=False, categories=["work"], timestamp="2024-02-01T10:00:00Z")
    health = memory.get_all(user_id="u", categories=["health"])["results"]
    assert [m["memory"] for m in health] == ["went to the dentist"]
    since = memory.get_all(user_id="u", filters={"valid_from": {"gte": "2024-01-01"}})["results"]
    assert [m["memory"] for m in since] == ["got promoted"]
    assert since[0]["valid_from"].startswith("2024-02-01T10:00:00")
    recent = memory.get_all(user_id="u", filters={"created_at": {"gte": datetime.now(UTC).replace(year=2000)}})
    assert len(recent["results"]) == 2


def test_update_keeps_id_closes_old_version_and_records_history(memory: Memory) -> None:
    mid = memory.add("I like coffee", user_id="u", infer=False, timestamp="2024-01-01T00:00:00Z")["results"][0]["id"]
    updated = memory.update(mid, "I like tea", timestamp="2024-06-01T00:00:00Z")
    assert updated["message"] == "Memory updated successfully!"
    assert memory.get(mid, strict=True)["memory"] == "I like tea"
    assert [m["memory"] for m in memory.search("drink", user_id="u")["results"]] == ["I like tea"]
    before = memory.get_all(user_id="u", as_of="2024-03-01T00:00:00Z")["results"]
    assert [(m["id"], m["memory"]) for m in before] == [(mid, "I like coffee")]
    then = memory.search("coffee", user_id="u", as_of="2024-03-01")["results"]
    assert [m["memory"] for m in then] == ["I like coffee"]
    events = memory.history(mid)
    assert [(e["event"], e["old_memory"], e["new_memory"]) for e in events] == [
        ("ADD", None, "I like coffee"), ("UPDATE", "I like coffee", "I like tea")]


def test_update_to_existing_text_in_scope_is_refused(memory: Memory) -> None:
    added = memory.add([{"content": "a cat"}, {"content": "a dog"}], user_id="u", infer=False)
    ids = [r["id"] for r in added["results"]]
    with pytest.raises(InvalidInput, match="already says"):
        memory.update(ids[0], "A dog")
    assert memory.get(ids[0], strict=True)["memory"] == "a cat"


def test_delete_hides_but_keeps_history(memory: Memory) -> None:
    mid = memory.add("I like coffee", user_id="u", infer=False)["results"][0]["id"]
    memory.delete(mid)
    assert memory.search("coffee", user_id="u")["results"] == []
    assert memory.get_all(user_id="u")["results"] == []
    assert memory.get(mid) is None
    with pytest.raises(NotFound, match="deleted"):
        memory.get(mid, strict=True)
    with pytest.raises(NotFound):
        memory.delete(mid)
    assert [e["event"] for e in memory.history(mid)] == ["ADD", "DELETE"]
    assert memory.add("I like coffee", user_id="u", infer=False)["results"][0]["event"] == "ADD"


def test_delete_all_is_scoped(memory: Memory) -> None:
    memory.add([{"content": f} for f in FACTS], user_id="a", infer=False)
    memory.add([{"content": f} for f in FACTS], user_id="b", infer=False)
    memory.add("tagged", user_id="a", infer=False, metadata={"keep": True})
    assert memory.delete_all(user_id="a", filters={"keep": True})["count"] == 1
    assert memory.delete_all(user_id="a")["count"] == 5
    assert memory.get_all(user_id="a")["results"] == []
    assert len(memory.get_all(user_id="b")["results"]) == 5


def test_unknown_ids_are_not_found(memory: Memory) -> None:
    for call in (lambda i: memory.get(i, strict=True), memory.delete, lambda i: memory.history(i, strict=True),
                 lambda i: memory.update(i, "x")):
        with pytest.raises(NotFound):
            call("no-such-id")
    with pytest.raises(InvalidInput):
        memory.get(42)  # type: ignore[call-overload]  # an id that is not a string is the point


@pytest.mark.parametrize("bad", ["", "   ", None, 42, ["ok", 3], [{"role": "user"}],
                                 [{"role": "robot", "content": "x"}], "x" * 5000, [], {"content": ["a"]},
                                 "nul\x00byte"])
def test_bad_content_is_refused_and_nothing_is_written(memory: Memory, bad: object) -> None:
    memory.add("existing", user_id="u", infer=False)
    with pytest.raises(InvalidInput):
        memory.add([{"content": "good one"}, bad] if isinstance(bad, dict) else bad, user_id="u", infer=False)
    assert rows(memory) == 1


@pytest.mark.parametrize("kwargs", [{"metadata": "x"}, {"metadata": {"a": object()}}, {"metadata": {1: "a"}},
                                    {"categories": [""]}, {"timestamp": "last week"}, {"user_id": ""},
                                    {"user_id": True}, {"metadata": {"x": float("nan")}}])
def test_bad_arguments_are_refused(memory: Memory, kwargs: dict) -> None:
    args = {"user_id": "u", **kwargs}
    with pytest.raises(InvalidInput):
        memory.add("a fact", infer=False, **args)
    assert rows(memory) == 0


def test_reset_erases_everything(memory: Memory) -> None:
    memory.add("x marks", user_id="u", infer=False)
    memory.reset()
    assert memory.get_all(user_id="u")["results"] == []
    assert memory.add("x marks", user_id="u", infer=False)["results"][0]["event"] == "ADD"


def test_corrupt_and_foreign_databases_are_refused(tmp_path, embedder) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CorruptStore):
        Memory(db_path=junk, home=tmp_path, embedder=embedder)
    foreign = tmp_path / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(CorruptStore, match="not an engram"):
        Memory(db_path=foreign, home=tmp_path, embedder=embedder)
    assert junk.read_bytes().startswith(b"this is not")


def test_vectors_of_another_embedder_are_refused(memory: Memory, fake_openai) -> None:
    memory.add("I like tea", user_id="u", infer=False)
    from engram.embed.openai import OpenAIEmbedder

    with OpenAIEmbedder("fake", base_url=fake_openai.base_url, dimensions=64) as other, \
            Memory(home=memory.settings.home, embedder=other) as m2, \
            pytest.raises(EmbedderMismatch, match="all-MiniLM-L6-v2"):
        m2.search("tea", user_id="u")


def test_two_instances_on_one_file_stay_coherent(memory: Memory, embedder) -> None:
    memory.add("first fact about apples", user_id="u", infer=False)
    with Memory(home=memory.settings.home, embedder=embedder) as other:
        assert len(other.search("apples", user_id="u")["results"]) == 1  # other caches u's matrix
        memory.add("second fact about apples", user_id="u", infer=False)
        assert len(other.search("apples", user_id="u")["results"]) == 2
        mid = other.search("second", user_id="u", limit=1)["results"][0]["id"]
        memory.delete(mid)
        assert [m["memory"] for m in other.search("apples", user_id="u")["results"]] == ["first fact about apples"]


def test_async_memory_runs_the_same_methods(home, embedder) -> None:
    async def scenario() -> list:
        async with AsyncMemory(home=home, embedder=embedder) as m:
            added = await m.add("I like tea", user_id="u", infer=False)
            found = await m.search("tea", user_id="u")
            await m.delete(added["results"][0]["id"])
            return [added["results"][0]["event"], found["results"][0]["memory"], await m.get_all(user_id="u")]

    assert asyncio.run(scenario()) == ["ADD", "I like tea", {"results": []}]
