"""Code written for Mem0's OSS API (2.x) runs on engram with only the import changed.

Each test follows a usage shown in Mem0's public documentation (Python SDK: add, search, get, get_all,
update, delete, history; expiration dates; reranking; `Memory.from_config`), written here in engram's words.
"""

from __future__ import annotations

import pytest

from engram import InvalidInput, Memory, NotFound


def add_plain(memory: Memory, *texts: str, user: str = "alice", **kwargs) -> list[str]:
    return [r["id"] for r in memory.add(list(texts), user_id=user, infer=False, **kwargs)["results"]]


# -- add ---------------------------------------------------------------------------------------------------------

def test_add_takes_a_list_of_plain_strings_as_user_messages(memory: Memory) -> None:
    out = memory.add(["I like tea", "I play chess"], user_id="alice", infer=False)
    assert [(r["event"], r["memory"]) for r in out["results"]] == [("ADD", "I like tea"), ("ADD", "I play chess")]
    listed = memory.get_all(filters={"user_id": "alice"})["results"]
    assert {(m["memory"], m["role"]) for m in listed} == {("I like tea", "user"), ("I play chess", "user")}


def test_integer_and_uuid_owner_ids_are_stored_as_strings(memory: Memory) -> None:
    import uuid

    memory.add("I like tea", user_id=42, infer=False)
    assert [m["user_id"] for m in memory.get_all(user_id="42")["results"]] == ["42"]
    assert [m["memory"] for m in memory.search("tea", filters={"user_id": 42})["results"]] == ["I like tea"]
    run = uuid.uuid4()
    memory.add("I like jazz", user_id=42, run_id=run, infer=False)
    assert [m["run_id"] for m in memory.get_all(user_id=42, run_id=str(run))["results"]] == [str(run)]
    assert memory.delete_all(user_id=42)["count"] == 2
    for bad in (True, 4.5, b"alice", ["alice"]):
        with pytest.raises(InvalidInput):
            memory.add("x", user_id=bad, infer=False)


@pytest.mark.parametrize("kwargs, word", [({"memory_type": "procedural_memory", "agent_id": "a"}, "procedural"),
                                          ({"prompt": "Only remember food preferences"}, "prompt")])
def test_add_refuses_what_engram_does_not_implement_clearly(memory: Memory, kwargs: dict, word: str) -> None:
    with pytest.raises(InvalidInput, match=word):
        memory.add("I like tea", user_id="alice", **kwargs)
    assert memory.get_all(user_id="alice")["results"] == []


# -- search and get_all --------------------------------------------------------------------------------------------

def test_search_and_get_all_take_the_scope_in_filters_and_top_k(memory: Memory) -> None:
    add_plain(memory, "I like green tea", "I like black tea", "I like oolong tea", "I play chess")
    add_plain(memory, "I like tea too", user="bob")
    hits = memory.search("tea", filters={"user_id": "alice"}, top_k=2)["results"]
    assert len(hits) == 2 and all(h["user_id"] == "alice" and "tea" in h["memory"] for h in hits)
    assert len(memory.get_all(filters={"user_id": "alice"}, top_k=3)["results"]) == 3
    narrowed = memory.search("tea", filters={"AND": [{"user_id": "alice"}]} | {"user_id": "alice"}, top_k=10)
    assert {h["user_id"] for h in narrowed["results"]} == {"alice"}
    assert memory.search("tea", user_id="alice", limit=2, top_k=2)["results"] == hits
    with pytest.raises(InvalidInput, match="disagree"):
        memory.search("tea", user_id="alice", limit=2, top_k=3)


# -- get, update, delete, history ------------------------------------------------------------------------------------

def test_get_and_history_of_an_unknown_id_are_none_and_empty(memory: Memory) -> None:
    assert memory.get("no-such-id") is None
    assert memory.history("no-such-id") == []
    [mid] = add_plain(memory, "I like tea")
    memory.delete(mid)
    assert memory.get(mid) is None  # deleted: gone from get as in Mem0; history keeps it
    assert [e["event"] for e in memory.history(mid)] == ["ADD", "DELETE"]
    with pytest.raises(NotFound, match="deleted"):
        memory.get(mid, strict=True)
    with pytest.raises(NotFound, match="no memory"):
        memory.history("no-such-id", strict=True)


def test_an_unknown_id_raises_what_mem0_code_catches(memory: Memory) -> None:
    for call in (lambda: memory.delete("no-such-id"), lambda: memory.update("no-such-id", text="x")):
        with pytest.raises(ValueError):  # Mem0 raises ValueError; engram's NotFound is one
            call()


def test_update_takes_text_data_and_metadata_like_mem0(memory: Memory) -> None:
    [mid] = add_plain(memory, "I like tea", metadata={"source": "chat", "n": 1})
    assert memory.update(mid, text="I like green tea")["message"] == "Memory updated successfully!"
    assert memory.update(memory_id=mid, data="I like jasmine tea")["message"] == "Memory updated successfully!"
    row = memory.get(mid)
    assert row is not None and row["memory"] == "I like jasmine tea" and row["metadata"] == {"source": "chat", "n": 1}
    memory.update(mid, metadata={"n": 2, "mood": "calm"})  # metadata only: the given keys are set, the rest kept
    row = memory.get(mid)
    assert row is not None and row["memory"] == "I like jasmine tea"
    assert row["metadata"] == {"source": "chat", "n": 2, "mood": "calm"}
    assert [h["id"] for h in memory.search("jasmine", user_id="alice", filters={"mood": "calm"})["results"]] == [mid]
    assert [e["event"] for e in memory.history(mid)] == ["ADD", "UPDATE", "UPDATE", "UPDATE"]
    assert memory.update(mid, metadata={"n": 2})["message"] == "Memory unchanged"
    with pytest.raises(InvalidInput, match="text"):
        memory.update(mid)
    with pytest.raises(InvalidInput, match="one of them"):
        memory.update(mid, text="a", data="b")


def test_a_metadata_only_update_keeps_the_stored_vector(memory: Memory) -> None:
    [mid] = add_plain(memory, "I like tea")
    before = memory.store.vectors([memory.get(mid)["version"]])  # type: ignore[index]
    memory.update(mid, metadata={"mood": "calm"})
    after = memory.store.vectors([memory.get(mid)["version"]])  # type: ignore[index]
    assert (before == after).all()


def test_history_rows_carry_mem0_keys_and_engram_keys(memory: Memory) -> None:
    [mid] = add_plain(memory, "I like tea")
    memory.update(mid, "I like green tea")
    memory.delete(mid)
    rows = memory.history(mid)
    mem0_keys = {"id", "memory_id", "old_memory", "new_memory", "event", "created_at", "updated_at", "is_deleted",
                 "actor_id", "role"}
    assert all(mem0_keys | {"batch_id", "actor", "reason", "source"} <= set(row) for row in rows)
    assert [(r["event"], r["old_memory"], r["new_memory"], r["is_deleted"]) for r in rows] == [
        ("ADD", None, "I like tea", False), ("UPDATE", "I like tea", "I like green tea", False),
        ("DELETE", "I like green tea", None, True)]
    assert {r["role"] for r in rows} == {"user"} and all(r["updated_at"] == r["created_at"] for r in rows)


# -- expiration_date ----------------------------------------------------------------------------------------------

def test_expired_memories_leave_search_and_listings_but_not_history(memory: Memory) -> None:
    [gone] = add_plain(memory, "I am at the tea festival this week", expiration_date="2020-01-31")
    [kept] = add_plain(memory, "I like tea", expiration_date="2999-12-31")
    [plain] = add_plain(memory, "I drink tea daily")
    assert {m["id"] for m in memory.get_all(user_id="alice")["results"]} == {kept, plain}
    assert {m["id"] for m in memory.search("tea festival", user_id="alice")["results"]} == {kept, plain}
    shown = memory.get_all(user_id="alice", show_expired=True)["results"]
    assert {m["id"] for m in shown} == {gone, kept, plain}
    assert gone in {m["id"] for m in memory.search("tea festival", user_id="alice", show_expired=True)["results"]}
    row = memory.get(gone)  # as in Mem0, get() still returns it, with its date
    assert row is not None and row["expiration_date"] == "2020-01-31" and row["expires_at"].startswith("2020-02-01T00:00")
    assert memory.get(plain)["expiration_date"] is None  # type: ignore[index]
    assert [e["event"] for e in memory.history(gone)] == ["ADD"]



def test_as_of_judges_expiry_at_that_time(memory: Memory) -> None:
    [mid] = add_plain(memory, "I am at the tea festival", timestamp="2020-01-10", expiration_date="2020-01-31")
    assert [m["id"] for m in memory.get_all(user_id="alice", as_of="2020-01-31T23:00:00Z")["results"]] == [mid]
    assert memory.get_all(user_id="alice", as_of="2020-02-01")["results"] == []
    assert memory.get_all(user_id="alice")["results"] == []


def test_expiry_is_judged_when_reading(memory: Memory) -> None:
    import time

    [mid] = add_plain(memory, "I am on a train", expiration_date=time.time() + 1.0)
    assert [m["id"] for m in memory.search("train", user_id="alice")["results"]] == [mid]
    time.sleep(1.1)
    assert memory.search("train", user_id="alice")["results"] == []
    assert memory.get_all(user_id="alice")["results"] == []


def test_update_sets_and_clears_the_expiration_date(memory: Memory) -> None:
    [mid] = add_plain(memory, "I am in Paris this week")
    memory.update(mid, expiration_date="2020-01-01")
    assert memory.get_all(user_id="alice")["results"] == []
    assert memory.update(mid, expiration_date="2020-01-01")["message"] == "Memory unchanged"
    memory.update(mid, text="I am in Paris for a month")  # the expiry is kept when not named
    assert memory.get(mid)["expiration_date"] == "2020-01-01"  # type: ignore[index]
    memory.update(mid, expiration_date=None)  # cleared: shown again
    assert [m["memory"] for m in memory.get_all(user_id="alice")["results"]] == ["I am in Paris for a month"]
    events = memory.history(mid)
    assert [e["event"] for e in events] == ["ADD", "UPDATE", "UPDATE", "UPDATE"]
    with pytest.raises(InvalidInput, match="expiration_date"):
        memory.update(mid, expiration_date="next week")


def test_an_expired_text_can_be_added_again_and_is_shown(memory: Memory) -> None:
    [old] = add_plain(memory, "I am at the conference", expiration_date="2020-01-01")
    [new] = add_plain(memory, "I am at the conference")
    assert new != old and [m["id"] for m in memory.get_all(user_id="alice")["results"]] == [new]
    assert add_plain(memory, "I am at the conference") == [new]  # the live one is a duplicate, as always
    with pytest.raises(InvalidInput, match="already says"):  # reviving the old one would show the text twice
        memory.update(old, expiration_date=None)


def test_delete_all_closes_expired_memories_too(memory: Memory) -> None:
    add_plain(memory, "I am at the conference", expiration_date="2020-01-01")
    add_plain(memory, "I like tea")
    assert memory.delete_all(user_id="alice")["count"] == 2
    assert memory.get_all(user_id="alice", show_expired=True)["results"] == []


def test_an_inferred_add_gives_its_expiry_to_what_it_writes(memory: Memory) -> None:
    out = memory.add("I like tea. I am in Rome this week.", user_id="alice", expiration_date="2020-01-01")
    assert out["results"] and all(r["event"] == "ADD" for r in out["results"])
    assert memory.get_all(user_id="alice")["results"] == []
    assert {m["expiration_date"] for m in memory.get_all(user_id="alice", show_expired=True)["results"]} == {"2020-01-01"}


def test_an_inferred_update_keeps_the_expiry_and_expired_memories_are_no_candidates(home, embedder, fake_openai) -> None:
    import json

    from engram.testing import dspy_reply

    def facts(*texts: str) -> str:
        return dspy_reply(facts=[{"text": t, "category": "personal", "about": "user", "happened_at": None} for t in texts])

    with Memory(home=home, embedder=embedder, llm_model="openai/fake", llm_api_base=fake_openai.base_url,
                llm_api_key="sk-test", llm_retries=0) as m:
        fake_openai.script_chat(facts("User is in Rome"), facts("User is at a hotel in Rome"),
                                dspy_reply(operations=[{"fact": 0, "op": "UPDATE", "memory_id": 0,
                                                        "text": "User is at a hotel in Rome", "reason": "more precise"}]))
        [rome] = [r["id"] for r in m.add("I'm in Rome", user_id="u", expiration_date="2999-01-01")["results"]]
        out = m.add("I'm at a hotel in Rome", user_id="u")
        assert [(r["event"], r["id"]) for r in out["results"]] == [("UPDATE", rome)]
        assert m.get(rome)["expiration_date"] == "2999-01-01"  # type: ignore[index]
        m.update(rome, expiration_date="2020-01-01")
        fake_openai.script_chat(facts("User is in Rome again"))
        again = m.add("I'm in Rome again", user_id="u")
        assert [r["event"] for r in again["results"]] == ["ADD"]  # nothing shown to reconcile with: no second call
        assert "hotel" not in json.dumps(fake_openai.chat_requests[-1].body)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "2025-13-01", "soon", True, [], 10**30, "0000-01-01"])
def test_a_bad_expiration_date_is_refused_before_anything_is_written(memory: Memory, bad: object) -> None:
    with pytest.raises(InvalidInput, match="expiration_date"):
        memory.add("I like tea", user_id="alice", infer=False, expiration_date=bad)
    assert memory.get_all(user_id="alice", show_expired=True)["results"] == []


# -- AsyncMemory --------------------------------------------------------------------------------------------------

def test_async_memory_writes_out_every_public_method_with_memorys_signature() -> None:
    import inspect

    from engram import AsyncMemory

    public = {name for name, _ in inspect.getmembers(Memory, inspect.isfunction) if not name.startswith("_")}
    assert public <= set(vars(AsyncMemory)), public - set(vars(AsyncMemory))  # written out, not attached later
    for name in public:
        mine, theirs = inspect.signature(getattr(AsyncMemory, name)), inspect.signature(getattr(Memory, name))
        assert list(mine.parameters.values()) == list(theirs.parameters.values()), name
        assert inspect.iscoroutinefunction(getattr(AsyncMemory, name)), name


def test_async_memory_runs_mem0_style_calls(home, embedder) -> None:
    import asyncio

    from engram import AsyncMemory

    async def scenario() -> list:
        async with AsyncMemory(home=home, embedder=embedder) as m:
            [mid] = [r["id"] for r in (await m.add(["I like tea"], user_id=7, infer=False))["results"]]
            await m.update(mid, text="I like green tea", metadata={"k": 1})
            found = await m.search("tea", filters={"user_id": "7"}, top_k=1, rerank=True)
            await m.update(mid, None, None, "2020-01-01")
            gone = await m.get_all(filters={"user_id": 7})
            return [found["results"][0]["memory"], gone["results"], await m.get("nope"), len(await m.history(mid))]

    assert asyncio.run(scenario()) == ["I like green tea", [], None, 3]
