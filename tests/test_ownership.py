"""No write crosses an owner: an add changes only memories the ownership rule gives it, and owner fields never
change (engram/ownership.py, README "Scopes")."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pipeline_llm import facts, ops

from engram import InvalidInput, Memory
from engram.embed import Embedder
from engram.extract import Fact
from engram.inputs import Message
from engram.llm import Usage
from engram.ownership import may_change
from engram.pipeline import Pipeline
from engram.reconcile import Candidate, Proposal
from engram.stores.base import ChangeSet, Close
from engram.testing import FakeOpenAI
from engram.types import MemoryRecord, Op, Scope


@pytest.fixture
def llm_memory(home: Path, embedder: Embedder, fake_openai: FakeOpenAI) -> Iterator[Memory]:
    with Memory(home=home, embedder=embedder, llm_model="openai/fake-model", llm_api_base=fake_openai.base_url,
                llm_api_key="k", llm_retries=0) as m:
        yield m


def test_an_agent_scoped_add_cannot_rewrite_or_close_alices_memory(llm_memory: Memory, fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(facts(("User's passport number is X123", "personal")))
    alice = llm_memory.add("my passport number is X123", user_id="alice", agent_id="travel")["results"][0]
    answers: dict[str, str] = {}  # the LLM answers a reconcile call, if one is made, with answers["ops"]
    fake_openai.script_chat(*[lambda body: answers["ops" if "existing_memories" in json.dumps(body) else "facts"]] * 4)
    for op in ({"fact": 0, "op": "UPDATE", "memory_id": 0, "text": "User's passport number is Y999"},
               {"fact": 0, "op": "DELETE", "memory_id": 0}):
        answers.update(facts=facts(("User's passport number is Y999", "personal")), ops=ops(op))
        llm_memory.add("my passport number is Y999", agent_id="travel")
        mine = llm_memory.get_all(user_id="alice")["results"]
        assert [(m["id"], m["memory"], m["agent_id"]) for m in mine] == [
            (alice["id"], "User's passport number is X123", "travel")]
    agent_only = [m for m in llm_memory.get_all(agent_id="travel")["results"] if "user_id" not in m]
    assert [m["memory"] for m in agent_only] == ["User's passport number is Y999"]


def test_the_offline_pipeline_does_not_correct_another_users_memory(memory: Memory) -> None:
    memory.add("I like coffee", user_id="alice", agent_id="barista", infer=False)
    out = memory.add("actually, no, I don't like coffee anymore", agent_id="barista")
    assert all(r["event"] == "ADD" for r in out["results"])
    assert [m["memory"] for m in memory.get_all(user_id="alice")["results"]] == ["I like coffee"]


def test_an_update_through_the_user_scope_keeps_the_memorys_agent(llm_memory: Memory, fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(facts(("User lives in Paris", "personal")))
    mid = llm_memory.add("I live in Paris", user_id="alice", agent_id="travel")["results"][0]["id"]
    fake_openai.script_chat(facts(("User lives in Paris, rue Oberkampf", "personal")),
                            ops({"fact": 0, "op": "UPDATE", "memory_id": 0,
                                 "text": "User lives in Paris, rue Oberkampf"}))
    out = llm_memory.add("I live on rue Oberkampf", user_id="alice")
    assert [(r["event"], r["id"]) for r in out["results"]] == [("UPDATE", mid)]
    got = llm_memory.get(mid, strict=True)
    assert (got["memory"], got["user_id"], got["agent_id"]) == ("User lives in Paris, rue Oberkampf", "alice", "travel")
    assert [m["id"] for m in llm_memory.get_all(user_id="alice", agent_id="travel")["results"]] == [mid]


def test_the_rule() -> None:
    def rec(user: str | None, agent: str | None = None, run: str | None = None) -> MemoryRecord:
        return MemoryRecord(id="m", text="t", hash="h", user_id=user, agent_id=agent, run_id=run)

    assert may_change(Scope("alice"), rec("alice", "travel", "r1"))
    assert may_change(Scope("alice", "travel"), rec("alice", "travel"))
    assert not may_change(Scope("alice", "travel"), rec("alice"))  # an agent does not change the user's own
    assert not may_change(Scope(agent_id="travel"), rec("alice", "travel"))  # nor a user's, without the user
    assert may_change(Scope(agent_id="travel"), rec(None, "travel", "r2"))
    assert not may_change(Scope("bob"), rec("alice"))
    assert not may_change(Scope(run_id="r1"), rec("alice", None, "r1"))


class EveryCandidate:
    """A reconciler that tries to change every candidate it is shown, and all else: the worst LLM."""

    def reconcile(self, facts: list[Fact], candidates: list[Candidate], similarity: list[list[float]],
                  usage: Usage) -> list[Proposal]:
        proposals = [Proposal(random.choice([Op.UPDATE, Op.DELETE]), i % len(facts), j, text=f"rewritten {j} {i}")
                     for i, j in itertools.product(range(len(facts)), range(len(candidates)))]
        return [*proposals, Proposal(Op.UPDATE, 0, 10_000, text="out of range")]


class Verbatim:
    def extract(self, messages: list[Message], when: float, categories: tuple[str, ...], usage: Usage) -> list[Fact]:
        return [Fact(m.content) for m in messages if m.role == "user"]


USERS, AGENTS, RUNS = ["ann", "bob", "Ann", None], ["a1", "a2", None], ["r1", "r2", None]
SHAPES = [s for s in itertools.product(USERS, AGENTS, RUNS) if any(s)]


def test_adds_through_every_scope_shape_change_only_what_they_own(home: Path, embedder: Embedder) -> None:
    seed = random.randrange(2**32)
    random.seed(seed)
    pipeline = Pipeline(Verbatim(), EveryCandidate(), candidates_per_fact=20)
    with Memory(home=home, embedder=embedder, pipeline=pipeline) as m:
        for n, (user, agent, run) in enumerate(SHAPES):
            m.add(f"stored fact number {n} about tea", user_id=user, agent_id=agent, run_id=run, infer=False)
        for n, shape in enumerate(random.choices(SHAPES, k=40)):
            writer = Scope(*shape)
            before = {r.id: r for r, _ in m.store.dump() if r.is_current}
            m.add(f"new fact {n} about tea", user_id=writer.user_id, agent_id=writer.agent_id, run_id=writer.run_id)
            after = {r.id: r for r, _ in m.store.dump() if r.is_current}
            for mid, old in before.items():
                new = after.get(mid)
                if new is None or new.version != old.version:
                    assert may_change(writer, old), f"seed {seed}: {writer} changed {old}"
                    assert new is None or new.scope == old.scope, f"seed {seed}: owner fields moved"


def test_stores_refuse_a_change_set_that_breaks_the_rule(memory: Memory) -> None:
    alice = memory.add("I like tea", user_id="alice", agent_id="travel", infer=False)["results"][0]["id"]
    record = memory.store.get(alice)
    assert record is not None
    with pytest.raises(InvalidInput):
        memory.store.apply(ChangeSet(closes=[Close(alice, 10.0)], owner=Scope(agent_id="travel")))
    moved = MemoryRecord(id=alice, text="I like green tea", hash="x", user_id="alice", valid_from=1.0)
    with pytest.raises(InvalidInput):
        memory.store.apply(ChangeSet(inserts=[(moved, embedder_vector(memory))], closes=[Close(alice, 10.0)]))
    assert memory.get(alice, strict=True)["memory"] == "I like tea"


def embedder_vector(memory: Memory):
    return memory.embedder.embed(["I like green tea"])[0]
