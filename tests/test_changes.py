"""The one check of a change set against a store's state (engram.stores.changes), tested as the pure function it is:
each rule by example, then random states and change sets against the invariants every store relies on."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from engram.errors import Conflict, InvalidInput, NotFound, StoreError
from engram.stores.base import ChangeSet, Close
from engram.stores.changes import (
    State,
    TwoCurrent,
    check,
    wanted_ids,
    wanted_twins,
    with_versions,
)
from engram.types import Event, MemoryRecord, Op, Scope, content_hash

DIM = 3
ALICE, BOB, TRAVEL = Scope(user_id="alice"), Scope(user_id="bob"), Scope(user_id="alice", agent_id="travel")
NOW = 1000.0


def memory(mid: str, text: str, scope: Scope = ALICE, *, version: int | None = None, valid_to: float | None = None,
           expires_at: float | None = None, valid_from: float = 10.0) -> MemoryRecord:
    return MemoryRecord(id=mid, text=text, hash=content_hash(text), user_id=scope.user_id, agent_id=scope.agent_id,
                        run_id=scope.run_id, valid_from=valid_from, valid_to=valid_to, version=version,
                        expires_at=expires_at)


def vec() -> np.ndarray:
    return np.ones(DIM, dtype=np.float32)


def state(*held: MemoryRecord, reopened: tuple[MemoryRecord, ...] = (), **extra) -> State:
    """The State a store would read holding `held` (its current versions) and the closed `reopened` versions."""
    current = {r.id: r for r in held if r.valid_to is None}
    twins = {(r.scope, r.hash): r for r in current.values() if not r.expired_by(NOW)}
    return State(current, {r.version: r for r in reopened if r.version is not None}, twins, NOW, DIM, **extra)


def test_a_close_ends_the_current_version_no_earlier_than_it_began() -> None:
    held = memory("m", "likes tea", version=7, valid_from=50.0)
    checked = check(ChangeSet(closes=[Close("m", 20.0, "n")]), state(held))
    [(_, before, ended)] = checked.closes
    assert before == held and (ended.valid_to, ended.superseded_by) == (50.0, "n") and checked.closed == {"m": held}


@pytest.mark.parametrize("closes", [[Close("missing", 20.0)], [Close("m", 20.0), Close("m", 30.0)]])
def test_a_close_of_no_current_version_is_not_found(closes: list[Close]) -> None:
    with pytest.raises(NotFound):
        check(ChangeSet(closes=closes), state(memory("m", "likes tea", version=7)))


def test_a_close_guarded_by_a_stale_version_is_a_conflict() -> None:
    held = state(memory("m", "likes tea", version=7))
    with pytest.raises(Conflict):
        check(ChangeSet(closes=[Close("m", 20.0, version=6)]), held)
    assert check(ChangeSet(closes=[Close("m", 20.0, version=7)]), held).closes


def test_reopens() -> None:
    old = memory("m", "likes coffee", version=3, valid_to=40.0)
    new = memory("m", "likes tea", version=7)
    with pytest.raises(NotFound):  # a version the store does not hold
        check(ChangeSet(reopens=[99]), state(new))
    with pytest.raises(TwoCurrent):  # m is current already
        check(ChangeSet(reopens=[3]), state(new, reopened=(old,)))
    undo = check(ChangeSet(closes=[Close("m", 50.0)], reopens=[3]), state(new, reopened=(old,)))
    assert [(r.version, r.valid_to) for r in undo.reopens] == [(3, None)]
    with pytest.raises(TwoCurrent):  # the same version twice
        check(ChangeSet(closes=[Close("m", 50.0)], reopens=[3, 3]), state(new, reopened=(old,)))


def test_a_duplicate_of_a_current_memory_of_exactly_that_scope_is_skipped_with_its_events() -> None:
    held = memory("m", "likes tea", version=7)
    same, other_scope = memory("n", "Likes  TEA"), memory("o", "likes tea", BOB)
    changes = ChangeSet(inserts=[(same, vec()), (other_scope, vec())],
                        events=[Event("n", Op.ADD, "b", 1.0), Event("o", Op.ADD, "b", 1.0)])
    checked = check(changes, state(held))
    assert checked.twins == {0: held} and checked.kept == [1] and [e.memory_id for e in checked.events] == ["o"]
    assert check(replace(changes, dedup=False), state(held)).kept == [0, 1]


def test_what_the_change_set_closes_duplicates_nothing_and_what_it_reopens_does() -> None:
    held = memory("m", "likes tea", version=7)
    gone = check(ChangeSet(inserts=[(memory("n", "likes tea"), vec())], closes=[Close("m", 20.0)]), state(held))
    assert gone.twins == {} and gone.kept == [0]
    old = memory("o", "likes coffee", version=3, valid_to=40.0)
    back = check(ChangeSet(inserts=[(memory("n", "likes coffee"), vec())], reopens=[3]), state(held, reopened=(old,)))
    assert back.twins == {0: replace(old, valid_to=None)} and back.kept == []


def test_expired_memories_duplicate_nothing_and_an_expired_insert_is_never_a_duplicate() -> None:
    expired = memory("m", "in Rome this week", version=7, expires_at=NOW - 1)
    assert check(ChangeSet(inserts=[(memory("n", "in Rome this week"), vec())]), state(expired)).kept == [0]
    held = memory("m", "likes tea", version=7)
    late = memory("n", "likes tea", expires_at=NOW)
    assert check(ChangeSet(inserts=[(late, vec())]), state(held)).kept == [0]


def test_a_new_version_that_would_duplicate_another_memory_is_a_conflict() -> None:
    held, target = memory("m", "likes tea", version=7), memory("x", "likes coffee", version=8)
    rewrite = ChangeSet(inserts=[(memory("x", "likes tea"), vec())], closes=[Close("x", 20.0)])
    with pytest.raises(Conflict):
        check(rewrite, state(held, target))
    successor = ChangeSet(inserts=[(memory("s", "likes tea"), vec())], closes=[Close("x", 20.0, superseded_by="s")])
    with pytest.raises(Conflict):
        check(successor, state(held, target))


def test_ownership_is_checked_against_what_was_read() -> None:
    alices = memory("m", "likes tea", TRAVEL, version=7)
    with pytest.raises(InvalidInput):  # an agent-only writer may not close Alice's memory
        check(ChangeSet(closes=[Close("m", 20.0)], owner=Scope(agent_id="travel")), state(alices))
    with pytest.raises(InvalidInput):  # a new version may not move the memory to another owner
        check(ChangeSet(inserts=[(memory("m", "likes green tea", ALICE), vec())], closes=[Close("m", 20.0)]),
              state(alices))
    with pytest.raises(InvalidInput):  # a new memory has exactly the writer's scope
        check(ChangeSet(inserts=[(memory("n", "likes jazz", BOB), vec())], owner=ALICE), state())
    assert check(ChangeSet(closes=[Close("m", 20.0)], owner=ALICE), state(alices)).closes


def test_inserts_are_checked() -> None:
    held = memory("m", "likes tea", version=7)
    with pytest.raises(TwoCurrent):  # a second current version of m
        check(ChangeSet(inserts=[(memory("m", "likes coffee"), vec())]), state(held))
    with pytest.raises(StoreError, match="dimension 2"):
        check(ChangeSet(inserts=[(memory("n", "likes jazz"), np.ones(2))]), state())
    kept = replace(memory("n", "likes jazz"), version=7)
    with pytest.raises(StoreError, match="already taken"):
        check(ChangeSet(inserts=[(kept, vec())], keep_versions=True), state(taken=frozenset({7})))
    closed_copy = memory("m", "likes coffee", valid_to=5.0)  # a closed version (a copy) is no second current one
    assert check(ChangeSet(inserts=[(closed_copy, vec())], dedup=False), state(held)).kept == [0]


def test_the_saved_session_must_exist_in_its_scope() -> None:
    changes = ChangeSet(saved=("s1", ALICE, 3))
    with pytest.raises(NotFound):
        check(changes, state(session=False))
    assert check(changes, state()).kept == []


def test_what_a_store_must_read() -> None:
    changes = ChangeSet(inserts=[(memory("n", "likes jazz"), vec()), (memory("o", "old", valid_to=5.0), vec()),
                                 (memory("p", "gone", expires_at=NOW), vec()), (memory("q", "likes jazz", BOB), vec())],
                        closes=[Close("m", 20.0)])
    assert wanted_ids(changes, {3: memory("r", "back", version=3)}) == ["m", "n", "o", "p", "q", "r"]
    assert wanted_twins(changes, NOW) == {ALICE: [content_hash("likes jazz")], BOB: [content_hash("likes jazz")]}
    assert wanted_twins(replace(changes, dedup=False), NOW) == {}


def test_events_take_the_versions_the_change_set_closed_and_inserted() -> None:
    closed = {"m": memory("m", "likes tea", version=7)}
    assert (with_versions(Event("m", Op.UPDATE, "b", 1.0), closed, {"m": 9}).old_version,
            with_versions(Event("m", Op.UPDATE, "b", 1.0), closed, {"m": 9}).new_version) == (7, 9)
    given_ = Event("m", Op.UPDATE, "b", 1.0, old_version=1, new_version=2)
    assert with_versions(given_, closed, {"m": 9}) == given_


# -- random states and change sets ---------------------------------------------------------------------------

IDS, TEXTS, SCOPES = ["m0", "m1", "m2", "m3"], ["tea", "coffee", "jazz"], [ALICE, BOB, TRAVEL]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[State, ChangeSet, dict[int, MemoryRecord]]:
    """A store's versions (at most one current per memory id) and a change set that may or may not fit them."""
    versions: dict[int, MemoryRecord] = {}
    for version, mid in enumerate(draw(st.lists(st.sampled_from(IDS), max_size=8)), 1):
        current = draw(st.booleans()) and all(r.valid_to is not None for r in versions.values() if r.id == mid)
        scope = next((r.scope for r in versions.values() if r.id == mid), None) or draw(st.sampled_from(SCOPES))
        versions[version] = memory(mid, draw(st.sampled_from(TEXTS)), scope, version=version,
                                   valid_to=None if current else 5.0,
                                   expires_at=draw(st.sampled_from([None, None, NOW - 1, NOW + 1])))
    held = [r for r in versions.values() if r.valid_to is None]
    # bool(held): as the left operand of `and`, a list would make mypy expect a list from draw()
    mostly_held = (st.sampled_from([r.id for r in held]) if bool(held) and draw(st.integers(0, 4))
                   else st.sampled_from(IDS))
    closes = [Close(mid, 20.0, version=draw(st.sampled_from([None, None, *versions])) if versions else None)
              for mid in draw(st.lists(mostly_held, max_size=2))]
    inserts = []
    for _ in range(draw(st.integers(0, 3))):
        like = draw(st.sampled_from(held)) if bool(held) and draw(st.booleans()) else None  # the text of a held memory
        inserts.append((memory(draw(st.sampled_from(["new1", "new2", "new2", *IDS])),
                               like.text if like else draw(st.sampled_from(TEXTS)),
                               like.scope if like else draw(st.sampled_from(SCOPES))), vec()))
    reopens = draw(st.lists(st.sampled_from([*versions, 99]), max_size=2))
    changes = ChangeSet(inserts=inserts, closes=closes, reopens=reopens,
                        owner=draw(st.sampled_from([None, None, None, *SCOPES])), dedup=draw(st.booleans()))
    assume(len({(r.scope, r.hash) for r in held}) == len(held))  # as a store holds them (an add folds duplicates)
    return state(*held, reopened=tuple(versions[v] for v in reopens if v in versions)), changes, versions


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_whatever_is_accepted_keeps_the_invariants_of_a_store(world: tuple[State, ChangeSet, dict]) -> None:
    held, changes, _ = world
    try:
        checked = check(changes, held)
    except (NotFound, Conflict, InvalidInput, StoreError):
        return
    closed = {before.id for _, before, _ in checked.closes}
    assert closed <= set(held.current) and len(closed) == len(changes.closes)
    live = [r for r in held.current.values() if r.id not in closed] + checked.reopens
    live += [changes.inserts[i][0] for i in checked.kept if changes.inserts[i][0].valid_to is None]
    assert len({r.id for r in live}) == len(live), "a memory with two current versions"
    if changes.owner is not None:
        from engram.ownership import may_change

        assert all(may_change(changes.owner, before) for _, before, _ in checked.closes)
    for i, twin in checked.twins.items():
        record = changes.inserts[i][0]
        assert (twin.scope, twin.hash) == (record.scope, record.hash) and twin.id != record.id
        live_again = any(r.version == twin.version for r in checked.reopens)  # closed and reopened: a revert
        assert (twin.id not in closed or live_again) and not twin.expired_by(NOW)
    if changes.dedup:  # nothing kept says what another current memory of its scope says (as the store held it)
        before = [r for r in held.current.values() if r.id not in closed] + checked.reopens
        for i in checked.kept:
            record = changes.inserts[i][0]
            if record.valid_to is None and not record.expired_by(NOW):
                assert not [r for r in before if (r.scope, r.hash) == (record.scope, record.hash) and r.id != record.id
                            and not r.expired_by(NOW)]
    assert sorted([*checked.twins, *checked.kept]) == list(range(len(changes.inserts)))


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_the_check_is_a_function_of_its_inputs(world: tuple[State, ChangeSet, dict]) -> None:
    held, changes, _ = world

    def outcome() -> object:
        try:
            return check(changes, held)
        except (NotFound, Conflict, InvalidInput, StoreError) as exc:
            return type(exc), str(exc)

    assert outcome() == outcome()
