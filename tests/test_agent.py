"""The chat agent: real DSPy ReAct over HTTP to the scripted fake server; saving in the background."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from engram import LLMError, Memory
from engram.agent import Agent
from engram.testing import FakeOpenAI, Reply, dspy_reply


def turn(*tools: tuple[str, dict], response: str, save: bool) -> list[str]:
    """The LLM answers of one agent turn: a ReAct step per tool call, `finish`, then the final answer."""
    steps = [dspy_reply(next_thought=f"use {name}", next_tool_name=name, next_tool_args=args) for name, args in tools]
    steps.append(dspy_reply(next_thought="done", next_tool_name="finish", next_tool_args={}))
    return [*steps, dspy_reply(reasoning="answering", response=response, save_memory=save)]


def facts(*texts: str) -> str:
    return dspy_reply(facts=[{"text": t, "category": "personal"} for t in texts])


def settings(fake: FakeOpenAI) -> dict:
    return {"llm_model": "openai/fake-model", "llm_api_base": fake.base_url, "llm_api_key": "k", "llm_retries": 0}


@pytest.fixture
def agent(home, embedder, fake_openai: FakeOpenAI) -> Iterator[Agent]:
    with Memory(home=home, embedder=embedder, **settings(fake_openai)) as memory, Agent(memory) as a:
        yield a


SESSION_TWO = textwrap.dedent("""
    import json, sys
    from engram import Memory
    from engram.agent import Agent
    home, base_url = sys.argv[1], sys.argv[2]
    with Memory(home=home, llm_model="openai/fake-model", llm_api_base=base_url, llm_api_key="k") as memory:
        with Agent(memory) as agent:
            reply = agent.reply("alice", "What is my dog called?", session_id="s2")
            print(json.dumps(reply.to_dict()))
""")


def test_a_fact_from_session_one_answers_session_two_in_a_new_process(agent: Agent, fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(*turn(response="What a nice name!", save=True), facts("User has a dog named Rex"))
    first = agent.reply("alice", "My dog is called Rex", session_id="s1")
    assert first.response == "What a nice name!" and first.save_memory is True
    assert [r["memory"] for r in first.saved.result(timeout=30)["results"]] == ["User has a dog named Rex"]

    fake_openai.script_chat(dspy_reply(profile="- User lives in Lyon"),
                            *turn(("search_memories", {"query": "dog name"}), response="Your dog is called Rex.",
                                  save=False))
    out = subprocess.run([sys.executable, "-c", SESSION_TWO, str(agent.memory.settings.home), fake_openai.base_url],
                         capture_output=True, text=True, timeout=120, check=True)
    second = json.loads(out.stdout.strip().splitlines()[-1])
    assert second["response"] == "Your dog is called Rex."
    assert second["trace"][0]["tool"] == "search_memories"
    assert "User has a dog named Rex" in json.dumps(second["trace"][0]["observation"])
    assert second["memories_used"][0]["memory"] == "User has a dog named Rex"
    body = fake_openai.chat_requests[-1].body
    assert body is not None
    final_prompt = json.dumps(body["messages"])
    assert "User has a dog named Rex" in final_prompt  # the model really saw the search result


def test_the_reply_returns_before_a_slow_save_finishes(agent: Agent, fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(*turn(response="Noted!", save=True), Reply(content=facts("User is vegan"), delay=2.0))
    start = time.monotonic()
    reply = agent.reply("alice", "I am vegan", session_id="s")
    assert time.monotonic() - start < 1.5 and not reply.saved.done()
    assert reply.saved.result(timeout=30)["results"][0]["memory"] == "User is vegan"
    assert [t.saved for t in agent.sessions.turns("s", agent_scope("alice"))] == [True, True]


def test_a_failed_save_is_reported_and_the_turns_stay_unsaved(agent: Agent, fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(*turn(response="Noted!", save=True), Reply(status=500, content="boom"))
    reply = agent.reply("alice", "I am vegan", session_id="s")
    with pytest.raises(LLMError):
        reply.saved.result(timeout=30)
    assert len(agent.failures) == 1
    with pytest.raises(LLMError):
        agent.flush()
    assert not any(t.saved for t in agent.sessions.turns("s", agent_scope("alice")))
    fake_openai.script_chat(facts("User is vegan"))
    assert agent.end_session("alice", "s").result(timeout=30)["results"][0]["memory"] == "User is vegan"


def test_turns_are_saved_without_the_flag_every_n_turns(home, embedder, fake_openai: FakeOpenAI) -> None:
    with Memory(home=home, embedder=embedder, **settings(fake_openai)) as memory, Agent(memory, save_every=2) as agent:
        fake_openai.script_chat(*turn(response="ok", save=False))
        assert agent.reply("alice", "I have two cats", session_id="s").saved.result() is None
        fake_openai.script_chat(*turn(response="ok", save=False), facts("User has two cats", "User lives in Oslo"))
        saved = agent.reply("alice", "I live in Oslo", session_id="s").saved.result(timeout=30)
        assert sorted(r["memory"] for r in saved["results"]) == ["User has two cats", "User lives in Oslo"]


def test_tool_arguments_cannot_reach_another_user(agent: Agent, fake_openai: FakeOpenAI) -> None:
    agent.memory.add("bob's secret code is 1234", user_id="bob", infer=False)
    agent.memory.add("alice likes jazz", user_id="alice", infer=False)
    fake_openai.script_chat(dspy_reply(profile="- likes jazz"), *turn(
        ("search_memories", {"query": "secret code", "user_id": "bob"}),
        ("search_memories", {"query": "secret code", "categories": ["other"]}),
        response="I don't know any code.", save=False))
    reply = agent.reply("alice", "What is bob's secret code?")
    assert "error" in str(reply.trace[0]["observation"]).lower()
    assert all(m["user_id"] == "alice" for m in reply.memories_used)
    assert "1234" not in json.dumps([r.body for r in fake_openai.requests])


def test_transcript_is_bounded_and_sessions_resume(home, embedder, fake_openai: FakeOpenAI) -> None:
    with Memory(home=home, embedder=embedder, **settings(fake_openai)) as memory, \
            Agent(memory, history_turns=2, save_every=100) as agent:
        for i in range(3):
            fake_openai.script_chat(*turn(response=f"answer {i}", save=False))
            agent.reply("alice", f"question {i}", session_id="s")
        body = fake_openai.chat_requests[-1].body
        assert body is not None
        prompt = body["messages"][-1]["content"]
        transcript = prompt.split("[[ ## transcript ## ]]")[1].split("[[ ## message ## ]]")[0]
        assert transcript.split() == "user: question 1 assistant: answer 1".split()  # only the last 2 turns
        turns = memory.store.sessions.turns("s", agent_scope("alice"))
        assert [t.content for t in turns][:2] == ["question 0", "answer 0"]


def test_offline_agent_recalls_and_saves_without_an_llm(memory: Memory) -> None:
    with Agent(memory) as agent:
        first = agent.reply("alice", "I am allergic to peanuts")
        first.saved.result(timeout=30)
        reply = agent.reply("alice", "what am I allergic to?", session_id=first.session_id)
        assert "User is allergic to peanuts" in reply.response
        assert reply.trace[0]["tool"] == "search_memories"


def agent_scope(user: str):
    from engram.types import Scope

    return Scope(user_id=user)


def test_a_store_failure_inside_a_tool_reaches_the_caller(agent: Agent, fake_openai: FakeOpenAI) -> None:
    from engram.errors import StoreError

    def broken(*args, **kwargs):
        raise StoreError("disk on fire")

    agent.memory.search = broken  # type: ignore[method-assign]
    fake_openai.script_chat(*turn(("search_memories", {"query": "anything"}), response="hm", save=False))
    with pytest.raises(StoreError, match="disk on fire"):
        agent.reply("alice", "what do you know?")


def test_the_saved_mark_and_the_memories_land_in_one_write(agent: Agent, fake_openai: FakeOpenAI,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between storing the memories and marking the turns saved would extract the same turns twice."""
    from engram.stores.sqlite_sessions import SQLiteSessions

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed between the two writes")

    monkeypatch.setattr(SQLiteSessions, "mark_saved", crash)  # the mark as a write of its own
    monkeypatch.setattr(SQLiteSessions, "mark_in", crash)  # the mark inside the memories' write
    fake_openai.script_chat(*turn(response="Noted!", save=False))
    agent.reply("alice", "I am vegan", session_id="s")
    fake_openai.script_chat(facts("User is vegan"))
    with pytest.raises(KeyboardInterrupt):
        agent._save(agent_scope("alice"), "s")
    assert agent.memory.get_all(user_id="alice")["results"] == []  # nothing stored without the mark
    monkeypatch.undo()
    fake_openai.script_chat(facts("User is vegan"))
    saved = agent._save(agent_scope("alice"), "s")
    assert saved is not None and [r["memory"] for r in saved["results"]] == ["User is vegan"]
    assert all(t.saved for t in agent.sessions.turns("s", agent_scope("alice")))


def transcript_of_last_turn(fake_openai: FakeOpenAI) -> str:
    body = fake_openai.chat_requests[-1].body
    assert body is not None
    prompt = body["messages"][-1]["content"]
    return prompt.split("[[ ## transcript ## ]]")[1].split("[[ ## message ## ]]")[0]


def test_two_users_with_the_same_session_id_each_have_their_own_conversation(agent: Agent,
                                                                              fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(*turn(response="Hello Alice", save=False))
    agent.reply("alice", "I keep bees", session_id="s1")
    fake_openai.script_chat(*turn(response="Hello Bob", save=False))
    agent.reply("bob", "I play the cello", session_id="s1")
    assert "I keep bees" not in transcript_of_last_turn(fake_openai)  # Bob's s1 starts empty
    assert "this is the first message" in transcript_of_last_turn(fake_openai)
    fake_openai.script_chat(*turn(response="Noted", save=False))
    agent.reply("alice", "and I live in Ghent", session_id="s1")
    seen = transcript_of_last_turn(fake_openai)
    assert "I keep bees" in seen and "Hello Alice" in seen and "cello" not in seen
    fake_openai.script_chat(facts("User keeps bees", "User lives in Ghent"))
    saved = agent.end_session("alice", "s1").result(timeout=30)
    assert sorted(r["memory"] for r in saved["results"]) == ["User keeps bees", "User lives in Ghent"]
    fake_openai.script_chat(facts("User plays the cello"))
    ended = agent.end_session("bob", "s1").result(timeout=30)
    assert [r["memory"] for r in ended["results"]] == ["User plays the cello"]
    assert [m["memory"] for m in agent.memory.get_all(user_id="bob")["results"]] == ["User plays the cello"]
    assert all(t.saved for user in ("alice", "bob") for t in agent.sessions.turns("s1", agent_scope(user)))
    assert [t.content for t in agent.sessions.turns("s1", agent_scope("bob"))] == ["I play the cello", "Hello Bob"]


def test_cli_chat_resumes_each_users_own_session_of_the_same_id(home) -> None:
    from typer.testing import CliRunner

    from engram.cli import app

    def chat(user: str, said: str) -> str:
        result = CliRunner(env={"ENGRAM_HOME": str(home)}).invoke(
            app, ["chat", "--user", user, "--session", "s1"], input=f"{said}\n/quit\n")
        assert result.exit_code == 0 and "Traceback" not in result.output, (result.output, result.exception)
        return result.stdout

    assert "earlier turns" not in chat("alice", "I am allergic to peanuts")
    bob = chat("bob", "I have a red bicycle")
    assert "earlier turns" not in bob and "peanuts" not in bob  # Bob's s1 is his own, new session
    again = chat("bob", "what do I own?")
    assert "2 earlier turns" in again and "red bicycle" in again and "peanuts" not in again
    assert "2 earlier turns" in chat("alice", "what am I allergic to?")
