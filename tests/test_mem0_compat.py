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
    # The ids are typed `str`; Mem0 callers pass ints and UUIDs anyway, hence the ignores.
    import uuid

    memory.add("I like tea", user_id=42, infer=False)  # type: ignore[arg-type]
    assert [m["user_id"] for m in memory.get_all(user_id="42")["results"]] == ["42"]
    assert [m["memory"] for m in memory.search("tea", filters={"user_id": 42})["results"]] == ["I like tea"]
    run = uuid.uuid4()
    memory.add("I like jazz", user_id=42, run_id=run, infer=False)  # type: ignore[arg-type]
    found = memory.get_all(user_id=42, run_id=str(run))["results"]  # type: ignore[arg-type]
    assert [m["run_id"] for m in found] == [str(run)]
    assert memory.delete_all(user_id=42)["count"] == 2  # type: ignore[arg-type]
    for bad in (True, 4.5, b"alice", ["alice"]):
        with pytest.raises(InvalidInput):
            memory.add("x", user_id=bad, infer=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "word"), [({"memory_type": "procedural_memory", "agent_id": "a"}, "procedural"),
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
        with pytest.raises(ValueError, match="no-such-id"):  # Mem0 raises ValueError; engram's NotFound is one
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
    assert row is not None and row["expiration_date"] == "2020-01-31"
    assert row["expires_at"].startswith("2020-02-01T00:00")
    assert memory.get(plain, strict=True)["expiration_date"] is None
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
    shown = memory.get_all(user_id="alice", show_expired=True)["results"]
    assert {m["expiration_date"] for m in shown} == {"2020-01-01"}


def test_an_inferred_update_keeps_the_expiry_and_expired_memories_are_no_candidates(home, embedder,
                                                                                    fake_openai) -> None:
    import json

    from engram.testing import dspy_reply

    def facts(*texts: str) -> str:
        return dspy_reply(facts=[{"text": t, "category": "personal", "about": "user", "happened_at": None}
                                 for t in texts])

    with Memory(home=home, embedder=embedder, llm_model="openai/fake", llm_api_base=fake_openai.base_url,
                llm_api_key="sk-test", llm_retries=0) as m:
        fake_openai.script_chat(facts("User is in Rome"), facts("User is at a hotel in Rome"),
                                dspy_reply(operations=[{"fact": 0, "op": "UPDATE", "memory_id": 0,
                                                        "text": "User is at a hotel in Rome",
                                                        "reason": "more precise"}]))
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


# -- Memory.from_config -------------------------------------------------------------------------------------------

def test_from_config_without_parts_keeps_engrams_offline_defaults(home) -> None:
    with Memory.from_config({"version": "v1.1", "history_db_path": "/nowhere/history.db"}, home=home) as m:
        assert (m.settings.store, m.settings.embedder, m.settings.llm_model) == ("sqlite", "local", None)
        assert m.add("I like tea", user_id="alice", infer=False)["results"][0]["event"] == "ADD"


def test_from_config_reads_qdrant_an_openai_embedder_and_an_openai_llm(home, tmp_path, fake_openai) -> None:
    from engram.stores.qdrant import QdrantStore
    from engram.testing import dspy_reply

    config = {
        "vector_store": {"provider": "qdrant", "config": {"collection_name": "mem0_test", "path": str(tmp_path / "q"),
                                                          "embedding_model_dims": 64, "on_disk": True}},
        "embedder": {"provider": "openai", "config": {"model": "fake-embed", "api_key": "sk-e",
                                                      "openai_base_url": fake_openai.base_url, "embedding_dims": 64}},
        "llm": {"provider": "openai", "config": {"model": "fake-chat", "api_key": "sk-l",
                                                 "openai_base_url": fake_openai.base_url, "temperature": 0.2,
                                                 "max_tokens": 500, "top_p": 0.1}},
    }
    with Memory.from_config(config, home=home, llm_retries=0) as m:
        assert isinstance(m.store, QdrantStore) and m.settings.qdrant_collection == "mem0_test"
        s = m.settings
        assert (s.llm_model, s.llm_api_base, s.llm_temperature, s.llm_max_tokens) == (
            "openai/fake-chat", fake_openai.base_url, 0.2, 500)
        fake_openai.script_chat(dspy_reply(facts=[{"text": "User likes tea", "category": "preferences",
                                                   "about": "user", "happened_at": None}]))
        assert [r["memory"] for r in m.add("I like tea", user_id="alice")["results"]] == ["User likes tea"]
        found = m.search("tea", filters={"user_id": "alice"}, top_k=1)["results"]
        assert [r["memory"] for r in found] == ["User likes tea"]
    chat, embeddings = fake_openai.chat_requests[0], fake_openai.embedding_requests[0]
    assert chat.headers["authorization"] == "Bearer sk-l" and chat.body["model"] == "fake-chat"
    assert embeddings.headers["authorization"] == "Bearer sk-e" and embeddings.body["dimensions"] == 64


def test_from_config_takes_a_qdrant_client_and_a_cohere_reranker(home, fake_openai) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    config = {"vector_store": {"provider": "qdrant", "config": {"client": client, "collection_name": "shared"}},
              "reranker": {"provider": "cohere", "config": {"api_key": "co-key", "model": "rerank-english-v3.0",
                                                            "top_k": 5}}}
    with Memory.from_config(config, home=home, reranker_base_url=fake_openai.base_url) as m:
        assert m.store.client is client  # type: ignore[attr-defined]
        m.add(["I like green tea", "I play chess"], user_id="alice", infer=False)
        top = m.search("chess", user_id="alice", top_k=1, rerank=True)["results"]
        assert top[0]["memory"] == "I play chess" and top[0]["rerank_score"] == 1.0
    [request] = fake_openai.rerank_requests
    assert request.body["model"] == "rerank-english-v3.0" and request.headers["authorization"] == "Bearer co-key"


@pytest.mark.parametrize(("config", "expected"), [
    ({"vector_store": {"provider": "qdrant", "config": {"host": "qdrant", "port": 6334, "api_key": "k"}}},
     {"store": "qdrant", "qdrant_url": "http://qdrant:6334", "qdrant_api_key": "k"}),
    ({"vector_store": {"provider": "qdrant", "config": {"url": "https://q.example:6333", "path": "/ignored"}}},
     {"store": "qdrant", "qdrant_url": "https://q.example:6333"}),
    ({"vector_store": {"provider": "qdrant"}}, {"store": "qdrant", "qdrant_path": None}),
    ({"embedder": {"provider": "ollama", "config": {"model": "mxbai-embed-large", "ollama_base_url": "http://o:11434/",
                                                    "embedding_dims": 1024}}},
     {"embedder": "openai", "embedder_model": "mxbai-embed-large", "embedder_base_url": "http://o:11434/v1"}),
    ({"embedder": {"provider": "huggingface", "config": {"huggingface_base_url": "http://tei:8080/v1"}}},
     {"embedder": "openai", "embedder_base_url": "http://tei:8080/v1", "embedder_model": "tei",
      "embedder_api_key": "hf"}),
    ({"embedder": {"provider": "huggingface", "config": {"model": "sentence-transformers/all-MiniLM-L6-v2"}}},
     {"embedder": "local"}),
    ({"embedder": {"provider": "huggingface"}}, {"embedder": "local"}),
    ({"llm": {"provider": "ollama", "config": {"model": "llama3.1:8b", "temperature": 0}}},
     {"llm_model": "ollama_chat/llama3.1:8b", "llm_api_base": "http://localhost:11434", "llm_temperature": 0}),
    ({"llm": {"provider": "litellm", "config": {"model": "anthropic/claude-3-5-haiku", "api_key": "a"}}},
     {"llm_model": "anthropic/claude-3-5-haiku", "llm_api_key": "a"}),
    ({"llm": {"provider": "openai", "config": None}}, {"llm_model": "openai/gpt-4o-mini"}),
    ({"reranker": {"provider": "llm", "config": {"llm": {"provider": "ollama", "config": {"model": "qwen2.5"}}}}},
     {"reranker": "llm", "reranker_model": "ollama_chat/qwen2.5", "reranker_base_url": "http://localhost:11434"}),
    ({"reranker": {"provider": "llm", "config": {"model": "gpt-4.1-mini", "api_key": "x"}}},
     {"reranker": "llm", "reranker_model": "openai/gpt-4.1-mini", "reranker_api_key": "x"}),
])
def test_mem0_config_sections_become_engram_settings(config: dict, expected: dict) -> None:
    from engram.mem0_config import translate

    found = {k: v for k, v in translate(config).settings.items() if v is not None or k in expected}
    assert found == expected


@pytest.mark.parametrize(("config", "problem"), [
    ({"vector_store": {"provider": "chroma", "config": {}}}, "vector_store provider 'chroma' is not available"),
    ({"embedder": {"provider": "gemini"}}, "embedder provider 'gemini'"),
    ({"llm": {"provider": "anthropic", "config": {"model": "claude"}}}, "llm provider 'anthropic'.*litellm"),
    ({"reranker": {"provider": "sentence_transformer"}}, "reranker provider 'sentence_transformer'.*rerank endpoint"),
    ({"graph_store": {"provider": "neo4j"}}, "'graph_store': engram has no such part"),
    ({"custom_instructions": "only food"}, "custom_instructions"),
    ({"vector_store": {"provider": "qdrant", "config": {"path": "/q", "distance": "cosine"}}}, "'distance'"),
    ({"llm": {"provider": "openai", "config": {"http_client_proxies": "http://proxy"}}}, "http_client_proxies"),
    ({"llm": {"provider": "openai", "config": {"enable_vision": True}}}, "enable_vision"),
    ({"embedder": {"provider": "huggingface", "config": {"model": "BAAI/bge-small-en"}}}, "Text Embeddings Inference"),
    ({"embedder": {"provider": "huggingface", "config": {"embedding_dims": 768}}}, "384"),
    ({"embedder": {"provider": "openai", "config": "x"}}, "must be a dict"),
    ({"embedder": "openai"}, "'provider' string"),
    ({"embedder": {"provider": "openai", "settings": {}}}, "unknown key"),
    ({"reranker": {"provider": "llm", "config": {"scoring_prompt": "rate {query}"}}}, "scoring_prompt"),
    ("not a dict", "takes a dict"),
])
def test_what_engram_does_not_have_is_a_config_error_naming_it(config, problem: str) -> None:
    from engram import ConfigError

    with pytest.raises(ConfigError, match=problem):
        Memory.from_config(config)


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
    parameters = inspect.signature(Memory.from_config).parameters.keys()
    assert inspect.signature(AsyncMemory.from_config).parameters.keys() == parameters


def test_async_memory_runs_mem0_style_calls(home, embedder) -> None:
    import asyncio

    from engram import AsyncMemory

    async def scenario() -> list:
        async with AsyncMemory(home=home, embedder=embedder) as m:
            added = await m.add(["I like tea"], user_id=7, infer=False)  # type: ignore[arg-type]  # as Mem0 callers do
            [mid] = [r["id"] for r in added["results"]]
            await m.update(mid, text="I like green tea", metadata={"k": 1})
            found = await m.search("tea", filters={"user_id": "7"}, top_k=1, rerank=True)
            await m.update(mid, None, None, "2020-01-01")
            gone = await m.get_all(filters={"user_id": 7})
            return [found["results"][0]["memory"], gone["results"], await m.get("nope"), len(await m.history(mid))]

    assert asyncio.run(scenario()) == ["I like green tea", [], None, 3]
