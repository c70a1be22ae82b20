"""Scope isolation under random users, agents and memories: nothing crosses from one scope to another."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engram import Memory, NotFound

USERS = ["ann", "bob", "cy", "Ann", "ann ", "d/e"]
WORDS = ["tea", "coffee", "paris", "berlin", "dog", "cat", "nurse", "pilot", "jazz", "chess", "red", "blue"]

facts = st.lists(
    st.tuples(st.sampled_from(USERS), st.sampled_from([None, "bot1", "bot2"]),
              st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)),
    min_size=1, max_size=25,
)
counter = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(facts=facts, probe=st.sampled_from(USERS), query=st.sampled_from(WORDS))
def test_reads_never_cross_users(memory: Memory, facts, probe: str, query: str) -> None:
    run = f"run{next(counter)}"  # each example gets its own run scope inside the shared database
    owner: dict[str, tuple[str, str | None]] = {}
    for user, agent, text in facts:
        for r in memory.add(f"{user}|{text}", user_id=user, agent_id=agent, run_id=run, infer=False)["results"]:
            owner[r["id"]] = (user, agent)
    found = memory.search(query, user_id=probe, run_id=run, limit=50)["results"]
    listed = memory.get_all(user_id=probe, run_id=run, limit=1000)["results"]
    for hit in found + listed:
        assert owner[hit["id"]][0] == probe and hit["user_id"] == probe and hit["memory"].startswith(probe + "|")
    expected = {mid for mid, (user, _) in owner.items() if user == probe}
    assert {m["id"] for m in listed} == expected
    for agent in ("bot1", "bot2"):
        narrowed = memory.get_all(user_id=probe, agent_id=agent, run_id=run, limit=1000)["results"]
        assert {m["id"] for m in narrowed} == {mid for mid, o in owner.items() if o == (probe, agent)}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(facts=facts, victim=st.sampled_from(USERS))
def test_deletes_of_one_user_leave_others_untouched(memory: Memory, facts, victim: str) -> None:
    run = f"del{next(counter)}"
    for user, agent, text in facts:
        memory.add(f"{user}|{text}", user_id=user, agent_id=agent, run_id=run, infer=False)
    before = {u: {m["id"]: m["memory"] for m in memory.get_all(user_id=u, run_id=run, limit=1000)["results"]}
              for u in USERS}
    memory.delete_all(user_id=victim, run_id=run)
    for user in USERS:
        after = {m["id"]: m["memory"] for m in memory.get_all(user_id=user, run_id=run, limit=1000)["results"]}
        assert after == ({} if user == victim else before[user])


def test_ids_from_another_scope_only_reach_their_own_memory(memory: Memory) -> None:
    a = memory.add("ann likes tea", user_id="ann", infer=False)["results"][0]["id"]
    memory.add("bob likes tea", user_id="bob", infer=False)
    memory.update(a, "ann likes green tea")
    assert [m["memory"] for m in memory.get_all(user_id="bob")["results"]] == ["bob likes tea"]
    memory.delete(a)
    assert [m["memory"] for m in memory.search("tea", user_id="bob")["results"]] == ["bob likes tea"]
    with pytest.raises(NotFound):
        memory.update(a, "resurrected")
