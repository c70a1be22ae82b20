"""The offline pipeline: rules-based extraction and reconciliation, no LLM anywhere."""

from __future__ import annotations

import pytest

from engram import InvalidInput, Memory, NotFound
from engram.extract import pieces
from engram.inputs import Message
from engram.offline import third_person


@pytest.mark.parametrize(("said", "fact"), [
    ("I like tea", "User likes tea"),
    ("I'm allergic to peanuts", "User is allergic to peanuts"),
    ("I also really enjoy jazz", "User also really enjoys jazz"),
    ("My sister lives in Berlin", "User's sister lives in Berlin"),
    ("I've been to Japan twice", "User has been to Japan twice"),
    ("I don't eat meat", "User does not eat meat"),
    ("I studied physics", "User studied physics"),
    ("I watch movies with my son", "User watches movies with User's son"),
    ("I study every day", "User studies every day"),
])
def test_first_person_becomes_third_person(said: str, fact: str) -> None:
    assert third_person(said) == fact


def test_questions_small_talk_and_assistant_turns_are_dropped(memory: Memory) -> None:
    out = memory.add([{"role": "user", "content": "Hello! What's the weather like? Thanks."},
                      {"role": "assistant", "content": "I think it will rain. I like rain."},
                      {"role": "user", "content": "Ok. The sky is blue"}], user_id="u")
    assert out["results"] == []


def test_design_example_offline(memory: Memory) -> None:
    first = memory.add("I like coffee", user_id="u", timestamp="2024-01-01T00:00:00Z")
    coffee = first["results"][0]["id"]
    second = memory.add("actually, no I like tea more. I also like football", user_id="u",
                        timestamp="2024-02-01T00:00:00Z")
    assert sorted(r["memory"] for r in memory.get_all(user_id="u")["results"]) == [
        "User also likes football", "User likes tea more"]
    assert [r["memory"] for r in memory.get_all(user_id="u", as_of="2024-01-20")["results"]] == ["User likes coffee"]
    assert [e["event"] for e in memory.history(coffee)] == ["ADD", "DELETE"]
    memory.revert(second["batch_id"])
    assert [r["memory"] for r in memory.get_all(user_id="u")["results"]] == ["User likes coffee"]
    assert memory.search("what does the user drink?", user_id="u")["results"][0]["id"] == coffee
    with pytest.raises(InvalidInput, match="already reverted"):
        memory.revert(second["batch_id"])


def test_near_duplicates_are_noop_and_negations_supersede(memory: Memory) -> None:
    memory.add("I like coffee", user_id="u")
    assert memory.add("I like coffee!", user_id="u")["results"][0]["event"] == "NOOP"
    out = memory.add("I don't like coffee anymore", user_id="u")
    assert [r["event"] for r in out["results"]] == ["DELETE", "ADD"]
    assert [r["memory"] for r in memory.get_all(user_id="u")["results"]] == ["User does not like coffee anymore"]


def test_revert_refuses_when_a_later_change_would_be_lost(memory: Memory) -> None:
    batch = memory.add("I live in Rome", user_id="u")
    mid = batch["results"][0]["id"]
    memory.update(mid, "User lives in Rome, near the Colosseum")
    with pytest.raises(InvalidInput, match="changed after"):
        memory.revert(batch["batch_id"])
    assert memory.get(mid, strict=True)["memory"] == "User lives in Rome, near the Colosseum"
    with pytest.raises(NotFound):
        memory.revert("no-such-batch")


def test_revert_of_delete_all_restores_everything(memory: Memory) -> None:
    memory.add([{"content": f"fact {i}"} for i in range(5)], user_id="u", infer=False)
    gone = memory.delete_all(user_id="u")
    assert memory.get_all(user_id="u")["results"] == []
    memory.revert(gone["batch_id"])
    assert len(memory.get_all(user_id="u")["results"]) == 5


def test_clauses_with_their_own_subject_become_separate_facts(memory: Memory) -> None:
    out = memory.add("I'm a nurse and I work nights, but my husband works days", user_id="u")
    assert [r["memory"] for r in out["results"]] == ["User is a nurse", "User works nights",
                                                    "User's husband works days"]


@pytest.mark.parametrize(("stored", "said", "superseded"), [
    (["I like tea", "I like coffee"], "actually, no I like tea more", "User likes coffee"),
    (["I like coffee", "I like tea"], "actually, no I like tea more", "User likes coffee"),  # order does not matter
    (["I like coffee", "I like tea"], "no, I prefer coffee", "User likes tea"),
    (["My favourite colour is blue", "My favourite colour is green"], "actually, my favourite colour is green now",
     "User's favourite colour is blue"),
    (["I live in Paris", "I like tea", "I like coffee"], "I don't like coffee anymore", "User likes coffee"),
])
def test_a_correction_supersedes_the_memory_it_contradicts_not_the_one_it_restates(
        memory: Memory, stored: list[str], said: str, superseded: str) -> None:
    for text in stored:
        memory.add(text, user_id="u")
    before = {r["memory"] for r in memory.get_all(user_id="u")["results"]}
    out = memory.add(said, user_id="u")
    assert [r["memory"] for r in out["results"] if r["event"] == "DELETE"] == [superseded]
    after = {r["memory"] for r in memory.get_all(user_id="u")["results"]}
    assert before - after == {superseded}  # the memory the correction agrees with stays current


def test_a_correction_that_only_restates_supersedes_nothing(memory: Memory) -> None:
    memory.add("I like tea", user_id="u")
    out = memory.add("actually, I really like tea", user_id="u")
    assert "DELETE" not in [r["event"] for r in out["results"]]
    assert "User likes tea" in {r["memory"] for r in memory.get_all(user_id="u")["results"]}


def test_pieces_cut_long_messages_between_sentences_and_keep_their_ids() -> None:
    said = Message("user", "First one. Second one here. " + "y" * 30 + "\nLast line", id="c")
    out = pieces([Message("user", "Hi there.", id="a"), Message("assistant", "Sure.", id="b"), said], 15)
    assert out[0] == [Message("user", "Hi there.", id="a"), Message("assistant", "Sure.", id="b")]
    assert all(sum(len(m.content) for m in piece) <= 15 for piece in out)
    parts = [m for piece in out[1:] for m in piece]
    assert {(m.role, m.id) for m in parts} == {("user", "c")}
    assert [m.content for m in parts] == ["First one.", "Second one", "here.", "y" * 15, "y" * 15, "Last line"]
    assert pieces([said], 1000) == [[said]]


def test_a_long_message_is_read_whole_without_an_llm(memory: Memory) -> None:
    filler = "The weather was mild and we talked about nothing in particular. " * 100  # 6,400 characters
    out = memory.add([{"id": "t1", "content": "I like tea. " + filler + "I have a dog named Rex."}], user_id="u")
    assert [(r["event"], r["memory"]) for r in out["results"]] == [("ADD", "User likes tea"),
                                                                  ("ADD", "User has a dog named Rex")]
    assert {r["memory"]: r["source"] for r in memory.get_all(user_id="u")["results"]} == {
        "User likes tea": ["t1"], "User has a dog named Rex": ["t1"]}
