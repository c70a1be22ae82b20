"""The store contract: every backend must pass these, with the same results and the same errors.

Add a backend by adding a factory to STORES.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engram.errors import Conflict, EmbedderMismatch, NotFound, StoreError
from engram.filters import parse_filters
from engram.graph import Entity, Graph, Relation
from engram.stores.base import ChangeSet, Close, Criteria, Store, user_stats, written_order
from engram.stores.sqlite import SQLiteStore
from engram.types import Event, MemoryRecord, Op, Scope, content_hash

DIM = 8
_QDRANT_MEMORY: dict[Path, object] = {}  # one in-memory Qdrant per test directory, shared like a server


def _qdrant_memory(path: Path) -> Store:
    """Qdrant `:memory:` behind a client every store of this test shares, as processes share a server (this
    also runs the several-writers path of the write protocol)."""
    from qdrant_client import QdrantClient

    from engram.stores.qdrant import QdrantStore

    client = _QDRANT_MEMORY.setdefault(path, QdrantClient(location=":memory:"))
    return QdrantStore(client=client)  # type: ignore[arg-type]


def _qdrant_path(path: Path) -> Store:
    from engram.stores.qdrant import QdrantStore

    return QdrantStore(path=path / "qdrant")


def _files(path: Path) -> Store:
    from engram.stores.files import FilesStore

    return FilesStore(path / "memory")


STORES: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda path: SQLiteStore(path / "engram.db"),
    "files": _files,
    "qdrant-memory": _qdrant_memory,
    "qdrant-path": _qdrant_path,
}


@pytest.fixture(params=sorted(STORES))
def make_store(request) -> Callable[[Path], Store]:
    return STORES[request.param]


@pytest.fixture
def store(make_store: Callable[[Path], Store], tmp_path: Path) -> Iterator[Store]:
    backend = make_store(tmp_path)
    backend.bind_embedder("test-embedder", DIM)
    yield backend
    backend.close()


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def record(text: str, user: str | None = "u", *, agent: str | None = None, t: float = 100.0, meta: dict | None = None,
           cats: tuple[str, ...] = (), mid: str | None = None) -> MemoryRecord:
    return MemoryRecord(id=mid or str(uuid.uuid4()), text=text, hash=content_hash(text), user_id=user, agent_id=agent,
                        categories=cats, metadata=meta or {}, created_at=t, updated_at=t, valid_from=t)


def add(store: Store, *records: MemoryRecord) -> list[MemoryRecord]:
    """One write, as one add() call makes it: one batch, the records at their positions."""
    batch = uuid.uuid4().hex
    records = tuple(r if r.batch_id else replace(r, batch_id=batch, position=i) for i, r in enumerate(records))
    return store.apply(ChangeSet(
        inserts=[(r, vec(i + len(r.text))) for i, r in enumerate(records)],
        events=[Event(r.id, Op.ADD, "b1", r.created_at, new_text=r.text) for r in records],
    ))


def test_insert_get_and_versions(store: Store) -> None:
    [stored] = add(store, record("likes tea"))
    assert stored.version is not None
    got = store.get(stored.id)
    assert got is not None and got.text == "likes tea" and got.is_current and got.version == stored.version
    assert store.get("missing") is None


def test_update_is_close_plus_new_version(store: Store) -> None:
    [old] = add(store, record("likes coffee", t=100.0))
    new = record("likes tea", t=200.0, mid=old.id)
    store.apply(ChangeSet(inserts=[(new, vec(9))], closes=[Close(old.id, 200.0)],
                          events=[Event(old.id, Op.UPDATE, "b2", 200.0, old_text="likes coffee",
                                        new_text="likes tea")]))
    assert store.get(old.id).text == "likes tea"  # type: ignore[union-attr]
    scope = Scope(user_id="u")
    assert [r.text for r in store.select(Criteria(scope))] == ["likes tea"]
    assert [r.text for r in store.select(Criteria(scope, as_of=150.0))] == ["likes coffee"]
    assert [r.text for r in store.select(Criteria(scope, as_of=50.0))] == []
    events = store.history(old.id)
    assert [e.op for e in events] == [Op.ADD, Op.UPDATE]
    assert events[1].old_version == old.version and events[1].new_version not in (None, old.version)


def test_browsing_reads_follow_the_reference_over_every_version(store: Store) -> None:
    # versions, owned and user_stats read through indexes where a backend has them; each must equal what the
    # reference computes over a dump
    [tea, jazz] = add(store, record("likes tea", t=100.0), record("plays jazz", t=110.0, agent="coach"))
    add(store, record("runs daily", user="bob", t=120.0), record("speaks French", user=None, agent="tutor"))
    new = record("likes green tea", t=300.0, mid=tea.id)
    store.apply(ChangeSet(inserts=[(new, vec(9))], closes=[Close(tea.id, 300.0)],
                          events=[Event(tea.id, Op.UPDATE, "b2", 300.0, old_text="likes tea", new_text=new.text)]))
    store.apply(ChangeSet(closes=[Close(jazz.id, 400.0)], events=[Event(jazz.id, Op.DELETE, "b3", 400.0)]))
    every = [r for r, _ in store.dump()]
    assert [r.text for r in store.versions(tea.id)] == ["likes tea", "likes green tea"]
    assert store.versions(tea.id) == sorted((r for r in every if r.id == tea.id), key=written_order)
    assert store.versions("missing") == []
    owned = sorted(store.owned("u"), key=written_order)
    assert owned == sorted((r for r in every if r.user_id == "u"), key=written_order)
    assert {r.text for r in owned} == {"likes tea", "likes green tea", "plays jazz"}
    assert store.owned("nobody") == []
    stats = store.user_stats()
    assert stats == user_stats(every)
    assert [(u.user_id, u.current, u.memories, u.last_change) for u in stats] == [("bob", 1, 1, 120.0),
                                                                                  ("u", 1, 2, 400.0)]


def test_a_failed_changeset_writes_nothing(store: Store) -> None:
    [kept] = add(store, record("kept"))
    bad = ChangeSet(inserts=[(record("half"), vec(1))], closes=[Close(kept.id, 300.0), Close("nope", 300.0)],
                    events=[Event(kept.id, Op.DELETE, "b3", 300.0)])
    with pytest.raises(NotFound):
        store.apply(bad)
    assert [r.text for r in store.select(Criteria(Scope(user_id="u")))] == ["kept"]
    assert len(store.history(kept.id)) == 1


def test_find_hashes_is_exact_scope_and_current_only(store: Store) -> None:
    a, b, _ = add(store, record("same", "u"), record("same", "u", agent="bot"), record("same", "v"))
    found = store.find_hashes(Scope(user_id="u"), [content_hash("same"), content_hash("other")])
    assert {r.id for r in found.values()} == {a.id}
    same = content_hash("same")
    assert store.find_hashes(Scope(user_id="u", agent_id="bot"), [same])[same].id == b.id
    store.apply(ChangeSet(closes=[Close(a.id, 500.0)]))
    assert store.find_hashes(Scope(user_id="u"), [content_hash("same")]) == {}


def test_reads_follow_the_reference_semantics(store: Store) -> None:
    rng = np.random.default_rng(7)
    records = [record(f"note {i} about {'tea' if i % 3 else 'jazz'}", user=["u", "v"][i % 2],
                      agent=[None, "a", "b"][i % 3], t=float(i), meta={"n": i, "even": i % 2 == 0},
                      cats=(("work",) if i % 4 == 0 else ())) for i in range(40)]
    stored = add(store, *records)
    store.apply(ChangeSet(closes=[Close(r.id, 30.0) for r in stored[:10]]))
    current = {r.id: r for r in stored}
    for r in stored[:10]:
        current[r.id] = store.get(r.id)  # type: ignore[assignment]
    criteria_list = [
        Criteria(Scope(user_id="u")), Criteria(Scope(user_id="v", agent_id="a")), Criteria(Scope(agent_id="b")),
        Criteria(Scope(user_id="u"), parse_filters({"n": {"gte": 20}})),
        Criteria(Scope(user_id="u"), categories=("work",)), Criteria(Scope(user_id="v"), as_of=5.5),
        Criteria(Scope(user_id="u"), parse_filters({"OR": [{"n": 3}, {"n": 4}]})),
    ]
    query = rng.normal(size=DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    for criteria in criteria_list:
        expected = {r.id for r in current.values() if criteria.admits(r)}
        assert {r.id for r in store.select(criteria)} == expected, criteria
        dense = store.dense(query, criteria, 100)
        assert {r.id for r, _ in dense} == expected
        scores = [s for _, s in dense]
        assert scores == sorted(scores, reverse=True)
        assert {r.id for r, _ in store.keyword("jazz", criteria, 100)} == {
            i for i in expected if "jazz" in current[i].text}
        assert len(store.dense(query, criteria, 3)) == min(3, len(expected))


def test_keyword_ignores_fts_syntax_in_queries(store: Store) -> None:
    add(store, record("the AND gate OR \"quoted\" NEAR stuff*"))
    for query in ['AND OR NOT', '"unbalanced', "stuff*", "col:umn", "(", "NEAR(a b)", "- ^"]:
        store.keyword(query, Criteria(Scope(user_id="u")), 5)  # must not raise
    assert len(store.keyword("quoted gate", Criteria(Scope(user_id="u")), 5)) == 1


def test_vectors_dump_and_reset(store: Store) -> None:
    stored = add(store, record("one"), record("two"))
    vectors = store.vectors([r.version for r in stored])  # type: ignore[misc]
    assert vectors.shape == (2, DIM)
    with pytest.raises(NotFound):
        store.vectors([10_000])
    dumped = list(store.dump())
    assert {r.text for r, _ in dumped} == {"one", "two"} and all(v.shape == (DIM,) for _, v in dumped)
    store.reset()
    assert store.select(Criteria(Scope(user_id="u"))) == [] and list(store.dump()) == []
    store.bind_embedder("another", 4)  # an empty store may be bound anew


def test_embedder_binding_is_enforced(store: Store) -> None:
    store.bind_embedder("test-embedder", DIM)
    with pytest.raises(EmbedderMismatch):
        store.bind_embedder("other", DIM)
    with pytest.raises(EmbedderMismatch):
        store.bind_embedder("test-embedder", DIM * 2)


def test_reads_after_local_writes_match_a_fresh_reader(store: Store, make_store, tmp_path: Path) -> None:
    """Caches patched by this process's writes must equal what a reader loading from scratch sees."""
    rng = np.random.default_rng(3)
    scopes = [Scope(user_id="u"), Scope(user_id="u", agent_id="a"), Scope(agent_id="a"), Scope(user_id="v")]
    live: list[str] = []
    for step in range(60):
        for scope in scopes:  # reading keeps every scope cached between writes
            store.select(Criteria(scope))
        action = rng.integers(3) if live else 0
        if action == 0:
            [r] = add(store, record(f"fact {step}", user=["u", "v"][step % 2], agent=[None, "a"][step % 3 % 2], t=step))
            live.append(r.id)
        elif action == 1:
            old = store.get(live[rng.integers(len(live))])
            assert old is not None
            store.apply(ChangeSet(inserts=[(record(f"fact {step} v2", user=old.user_id, agent=old.agent_id, t=step,
                                                   mid=old.id), vec(step))], closes=[Close(old.id, float(step))]))
        else:
            store.apply(ChangeSet(closes=[Close(live.pop(rng.integers(len(live))), float(step))]))
    reader = make_store(tmp_path)
    try:
        for scope in scopes:
            for as_of in (None, 10.5, 40.5):
                mine = [(r.id, r.text, r.valid_to) for r in store.select(Criteria(scope, as_of=as_of))]
                theirs = [(r.id, r.text, r.valid_to) for r in reader.select(Criteria(scope, as_of=as_of))]
                assert sorted(mine, key=str) == sorted(theirs, key=str)
    finally:
        reader.close()


def test_reopen_and_versioned_close_undo_an_update(store: Store) -> None:
    [old] = add(store, record("likes coffee", t=100.0))
    [new] = store.apply(ChangeSet(inserts=[(record("likes tea", t=200.0, mid=old.id), vec(5))],
                                  closes=[Close(old.id, 200.0)],
                                  events=[Event(old.id, Op.UPDATE, "b9", 200.0, old_text="likes coffee",
                                                new_text="likes tea")]))
    scope = Criteria(Scope(user_id="u"))
    store.select(scope)  # cached before the revert: the revert must patch or invalidate it
    with pytest.raises(Conflict):  # the guard: version `old` is not the current one
        store.apply(ChangeSet(closes=[Close(old.id, 300.0, version=old.version)]))
    with pytest.raises(StoreError):  # two current versions of one memory are never allowed
        store.apply(ChangeSet(reopens=[old.version]))  # type: ignore[list-item]
    with pytest.raises(NotFound):
        store.apply(ChangeSet(reopens=[123_456]))
    store.apply(ChangeSet(closes=[Close(old.id, new.valid_from, version=new.version)], reopens=[old.version],  # type: ignore[list-item]
                          events=[Event(old.id, Op.REVERT, "r1", 300.0, old_text="likes tea",
                                        new_text="likes coffee")]))
    assert [r.text for r in store.select(scope)] == ["likes coffee"]
    assert [r.text for r, _ in store.keyword("coffee", scope, 5)] == ["likes coffee"]
    assert store.keyword("tea", scope, 5) == []
    assert [r.text for r in store.select(Criteria(Scope(user_id="u"), as_of=250.0))] == ["likes coffee"]
    assert [e.op for e in store.batch("b9")] == [Op.UPDATE] and [e.op for e in store.history(old.id)] == [
        Op.ADD, Op.UPDATE, Op.REVERT]
    assert store.batch("nope") == []


def test_sessions_keep_turns_in_order_and_belong_to_one_scope(store: Store) -> None:
    from engram.types import Turn

    alice, bob = Scope(user_id="alice"), Scope(user_id="bob")
    sessions = store.sessions
    assert sessions.turns("s1", alice) == []
    stored = sessions.append_turns("s1", alice, [Turn("user", "hi", 1.0), Turn("assistant", "hello", 2.0)])
    assert [t.seq for t in stored] == sorted(t.seq for t in stored)  # type: ignore[type-var]
    sessions.append_turns("s1", alice, [Turn("user", "my dog is Rex", 3.0)])
    assert [t.content for t in sessions.turns("s1", alice)] == ["hi", "hello", "my dog is Rex"]
    assert [t.content for t in sessions.turns("s1", alice, last=2)] == ["hello", "my dog is Rex"]
    sessions.mark_saved("s1", alice, stored[-1].seq)  # type: ignore[arg-type]
    assert [t.saved for t in sessions.turns("s1", alice)] == [True, True, False]
    assert sessions.turns("s1", bob) == []  # Alice's session is not Bob's to read
    with pytest.raises(NotFound):  # nor to mark: Bob has no session s1
        sessions.mark_saved("s1", bob, 99)
    assert [s["id"] for s in sessions.of(alice)] == ["s1"] and sessions.of(bob) == []
    assert sessions.of(alice)[0]["turns"] == 3 and sessions.of(alice)[0]["user_id"] == "alice"


def test_two_scopes_each_have_their_own_session_of_the_same_id(store: Store) -> None:
    """A session is (owner, id): Alice's "s1" and Bob's "s1" coexist; neither sees nor writes the other's."""
    from engram.types import Turn

    alice, bob, coach = Scope(user_id="alice"), Scope(user_id="bob"), Scope(user_id="alice", agent_id="coach")
    sessions = store.sessions
    mine = sessions.append_turns("s1", alice, [Turn("user", "I am Alice", 1.0)])
    theirs = sessions.append_turns("s1", bob, [Turn("user", "I am Bob", 2.0), Turn("assistant", "hi Bob", 3.0)])
    sessions.append_turns("s1", coach, [Turn("user", "coach me", 4.0)])
    sessions.append_turns("s1", alice, [Turn("assistant", "hi Alice", 5.0)])
    assert [t.content for t in sessions.turns("s1", alice)] == ["I am Alice", "hi Alice"]
    assert [t.content for t in sessions.turns("s1", bob)] == ["I am Bob", "hi Bob"]
    assert [t.content for t in sessions.turns("s1", coach)] == ["coach me"]
    assert [t.content for t in sessions.turns("s1", bob, last=1)] == ["hi Bob"]
    sessions.mark_saved("s1", bob, theirs[-1].seq)  # type: ignore[arg-type]
    assert [t.saved for t in sessions.turns("s1", bob)] == [True, True]
    assert [t.saved for t in sessions.turns("s1", alice)] == [False, False]  # Bob's mark never reaches Alice's turns
    store.apply(ChangeSet(inserts=[(record("I am Alice", user="alice"), vec(1))], saved=("s1", alice, mine[0].seq)))  # type: ignore[arg-type]
    assert [t.saved for t in sessions.turns("s1", alice)] == [True, False]
    assert [t.saved for t in sessions.turns("s1", coach)] == [False]
    assert [(s["id"], s.get("agent_id"), s["turns"]) for s in sessions.of(alice)] == [("s1", None, 2),
                                                                                     ("s1", "coach", 1)]
    assert [(s["id"], s["turns"]) for s in sessions.of(bob)] == [("s1", 2)]
    dumped = {(s.scope, s.id): [t.content for t in turns] for s, turns in sessions.dump()}
    assert dumped == {(alice, "s1"): ["I am Alice", "hi Alice"], (bob, "s1"): ["I am Bob", "hi Bob"],
                      (coach, "s1"): ["coach me"]}


def test_neighbours_are_the_records_one_call_wrote_around_a_record(store: Store) -> None:
    call = [record(f"turn {i}", t=10.0) for i in range(4)]
    stored = add(store, *call)
    [alone] = add(store, record("another call", t=20.0))
    criteria = Criteria(Scope(user_id="u"))
    found = store.neighbours([stored[1].version, alone.version], criteria, 2)  # type: ignore[list-item]
    text = {v: [(b and b.text, a and a.text) for b, a in pairs] for v, pairs in found.items()}
    assert text[stored[1].version] == [("turn 0", "turn 2"), (None, "turn 3")]  # type: ignore[index]
    assert text.get(alone.version, [(None, None), (None, None)]) == [(None, None), (None, None)]  # type: ignore[arg-type]
    store.apply(ChangeSet(closes=[Close(stored[2].id, 30.0)]))  # a closed turn is no longer a current neighbour
    again = store.neighbours([stored[1].version], criteria, 1)  # type: ignore[list-item]
    assert [(b and b.text, a and a.text) for b, a in again[stored[1].version]] == [("turn 0", "turn 3")]  # type: ignore[index]


def test_neighbours_follow_the_recorded_batch_and_position_not_timestamps(store: Store) -> None:
    """An update writes a new version in its own batch, with the old created_at: it is nobody's neighbour (the
    stores once disagreed here, grouping by equal created_at). Order within a batch is its positions."""
    first = add(store, record("turn a", t=10.0), record("turn b", t=10.0))
    other = add(store, record("unrelated", t=10.0))  # same timestamp, another call
    [new_b] = store.apply(ChangeSet(
        inserts=[(replace(first[1], text="turn b, edited", hash=content_hash("turn b, edited"), version=None,
                          batch_id="update-1", position=0), vec(3))],
        closes=[Close(first[1].id, 20.0)]))
    criteria = Criteria(Scope(user_id="u"))
    found = store.neighbours([first[0].version, other[0].version, new_b.version], criteria, 1)  # type: ignore[list-item]
    assert all(pairs == [(None, None)] for pairs in found.values())
    backwards = add(store, *[replace(record(f"step {i}", t=30.0), batch_id="b-rev", position=2 - i) for i in range(3)])
    version = backwards[1].version
    assert version is not None
    middle = store.neighbours([version], criteria, 1)[version]
    assert [(b and b.text, a and a.text) for b, a in middle] == [("step 2", "step 0")]


def test_keyword_search_returns_k_whenever_k_exist(store: Store) -> None:
    """Rows of the same user that a narrower scope, a filter or a time excludes must not crowd out the k asked for."""
    crowd = [record(f"coffee {i}", agent="a1") for i in range(300)]  # short texts: the best BM25 scores
    wanted = [record(f"coffee with a long story around it number {i}", agent="a2", meta={"keep": True})
              for i in range(5)]
    for start in range(0, len(crowd), 100):
        add(store, *crowd[start:start + 100])
    add(store, *wanted)
    for criteria in (Criteria(Scope(user_id="u", agent_id="a2")),
                     Criteria(Scope(user_id="u"), parse_filters({"keep": True})),
                     Criteria(Scope(user_id="u", agent_id="a2"), as_of=150.0)):
        assert len(store.keyword("coffee", criteria, 5)) == 5, criteria


def test_a_change_set_marks_chat_turns_saved_in_the_same_write(store: Store) -> None:
    from engram.types import Turn

    scope = Scope(user_id="u")
    turns = store.sessions.append_turns("s1", scope, [Turn("user", "I like tea", 1.0), Turn("assistant", "noted", 2.0)])
    with pytest.raises(NotFound):  # the write fails: the turns stay unsaved, nothing is stored
        store.apply(ChangeSet(inserts=[(record("likes tea"), vec(1))], closes=[Close("missing", 5.0)],
                              saved=("s1", scope, turns[-1].seq)))  # type: ignore[arg-type]
    assert [t.saved for t in store.sessions.turns("s1", scope)] == [False, False]
    assert store.select(Criteria(scope)) == []
    with pytest.raises(NotFound):  # another scope's session of that id is no session of this one
        store.apply(ChangeSet(inserts=[(record("likes tea"), vec(1))], saved=("s1", Scope(user_id="v"), turns[0].seq)))  # type: ignore[arg-type]
    assert store.select(Criteria(scope)) == []
    add_and_mark = ChangeSet(inserts=[(record("likes tea"), vec(1))], saved=("s1", scope, turns[0].seq))  # type: ignore[arg-type]
    store.apply(add_and_mark)
    assert [t.saved for t in store.sessions.turns("s1", scope)] == [True, False]
    assert [r.text for r in store.select(Criteria(scope))] == ["likes tea"]


def test_a_second_handles_reset_never_lets_vectors_of_two_sizes_mix(make_store: Callable[[Path], Store],
                                                                    tmp_path: Path) -> None:
    first, second = make_store(tmp_path), make_store(tmp_path)
    first.bind_embedder("test-embedder", DIM)
    add(first, record("likes tea"))
    second.bind_embedder("test-embedder", DIM)
    second.reset()
    other = make_store(tmp_path)
    other.bind_embedder("small-embedder", 4)
    other.apply(ChangeSet(inserts=[(record("likes jazz"), np.ones(4, dtype=np.float32) / 2)]))
    with pytest.raises(EmbedderMismatch):
        add(first, record("likes coffee"))
    assert [r.text for r in other.select(Criteria(Scope(user_id="u")))] == ["likes jazz"]
    assert other.dense(np.ones(4, dtype=np.float32) / 2, Criteria(Scope(user_id="u")), 5)[0][0].text == "likes jazz"
    for store in (first, second, other):
        store.close()


def test_a_reset_by_another_handle_is_bound_again_by_the_next_writer(make_store: Callable[[Path], Store],
                                                                     tmp_path: Path) -> None:
    first, second = make_store(tmp_path), make_store(tmp_path)
    first.bind_embedder("test-embedder", DIM)
    second.bind_embedder("test-embedder", DIM)
    second.reset()
    add(first, record("likes tea"))
    assert [r.text for r in second.select(Criteria(Scope(user_id="u")))] == ["likes tea"]
    first.close()
    second.close()


def test_expired_records_leave_every_read_unless_shown(store: Store) -> None:
    """An expired record stays current (not closed) but reads leave it out, judged at `as_of` when given, else
    at the moment of the read; `show_expired` brings it back. Each backend filters natively."""
    texts = ["tea forever", "tea until 500", "tea until 2000"]
    never, soon, later = add(store, *[replace(record(t, t=100.0), expires_at=e)
                                      for t, e in zip(texts, (None, 500.0, 2000.0), strict=True)])
    assert store.get(soon.id).expires_at == 500.0 and store.get(never.id).expires_at is None  # type: ignore[union-attr]
    scope = Scope(user_id="u")
    query = vec(3)
    for criteria, expected in [
        (Criteria(scope, read_at=1000.0), {never.id, later.id}),
        (Criteria(scope, read_at=3000.0), {never.id}),
        (Criteria(scope, read_at=3000.0, show_expired=True), {never.id, soon.id, later.id}),
        (Criteria(scope, as_of=400.0, read_at=3000.0), {never.id, soon.id, later.id}),  # judged at as_of
        (Criteria(scope, as_of=1500.0), {never.id, later.id}),
        (Criteria(scope, parse_filters({"memory": {"contains": "until"}}), read_at=1000.0), {later.id}),
    ]:
        assert {r.id for r in store.select(criteria)} == expected == {
            r.id for r in (never, soon, later) if criteria.admits(store.get(r.id))}, criteria  # type: ignore[arg-type]
        assert {r.id for r, _ in store.dense(query, criteria, 10)} == expected
        assert {r.id for r, _ in store.keyword("tea", criteria, 10)} == expected
    found = store.neighbours([never.version], Criteria(scope, read_at=1000.0), 1)  # type: ignore[list-item]
    assert [(b, a and a.id) for b, a in found[never.version]] == [(None, later.id)]  # type: ignore[index]


def test_an_expired_memory_is_no_duplicate_of_its_text(store: Store) -> None:
    """find_hashes (and the dedup inside a write) leave out what has expired by now: its text may be stored again
    and is then shown, while a live twin still makes a new copy a duplicate."""
    import time

    [old] = add(store, replace(record("at the conference"), expires_at=time.time() - 60))
    [live] = add(store, replace(record("in Lyon"), expires_at=time.time() + 3600))
    scope = Scope(user_id="u")
    assert store.find_hashes(scope, [content_hash("at the conference"), content_hash("in Lyon")]) == {
        content_hash("in Lyon"): store.get(live.id)}
    [again] = add(store, record("at the conference"))
    assert again.id != old.id and {r.id for r in store.select(Criteria(scope))} == {again.id, live.id}
    [twin] = add(store, record("in Lyon"))
    assert twin.id == live.id


def test_ids_with_prefix_finds_memories_and_batches_by_their_start(store: Store) -> None:
    """What the command line's short ids resolve through: every version counts (a deleted memory keeps its
    history), batches are those of history events, and nothing in a prefix is a wildcard."""
    ids = ["0123abcd-0000-0001", "0123abcd-0000-0002", "0123abce-0000-0003", "0123abc%-0000-0004"]
    for i, mid in enumerate(ids):
        r = record(f"fact {i}", mid=mid)
        store.apply(ChangeSet(inserts=[(r, vec(i))], events=[Event(mid, Op.ADD, f"feedbeef{i % 2}{i}", 100.0 + i,
                                                                   new_text=r.text)]))
    store.apply(ChangeSet(closes=[Close(ids[0], 200.0)], events=[Event(ids[0], Op.DELETE, "c0ffee00", 200.0)]))
    assert store.ids_with_prefix("0123abc") == sorted(ids)
    assert store.ids_with_prefix("0123abcd") == ids[:2]
    assert store.ids_with_prefix("0123abcd", limit=1) == ids[:1]
    assert store.ids_with_prefix("0123abce-0000-0003") == [ids[2]]
    assert store.ids_with_prefix("0123abc_") == [] and store.ids_with_prefix("0123abc%") == [ids[3]]
    assert store.ids_with_prefix("zz") == [] and store.ids_with_prefix("feedbeef") == []
    assert store.ids_with_prefix("feedbeef", kind="batch") == ["feedbeef00", "feedbeef02", "feedbeef11", "feedbeef13"]
    assert store.ids_with_prefix("feedbeef1", kind="batch", limit=1) == ["feedbeef11"]
    assert store.ids_with_prefix("c0ffee", kind="batch") == ["c0ffee00"]
    assert store.ids_with_prefix("0123", kind="batch") == []


def test_a_copy_keeps_versions_and_event_places(store: Store) -> None:
    """What a restore writes: the versions and history places of another store, refused when one is taken."""
    old = replace(record("likes coffee", t=100.0, mid="m-kept"), version=7, valid_to=200.0)
    new = replace(record("likes tea", t=200.0, mid="m-kept"), version=3)
    events = [Event("m-kept", Op.ADD, "b1", 100.0, new_text="likes coffee", new_version=7, seq=11),
              Event("m-kept", Op.UPDATE, "b2", 200.0, old_text="likes coffee", new_text="likes tea", old_version=7,
                    new_version=3, seq=12)]
    stored = store.apply(ChangeSet(inserts=[(old, vec(1)), (new, vec(2))], events=events, keep_versions=True,
                                   dedup=False))
    assert [r.version for r in stored] == [7, 3]
    assert store.get("m-kept").version == 3  # type: ignore[union-attr]
    assert [(e.seq, e.old_version, e.new_version) for e in store.history("m-kept")] == [(11, None, 7), (12, 7, 3)]
    assert sorted((r.version, r.is_current) for r, _ in store.dump()) == [(3, True), (7, False)]
    clash = replace(record("likes milk", mid="m-other"), version=7)
    with pytest.raises(StoreError):
        store.apply(ChangeSet(inserts=[(clash, vec(3))], events=[Event("m-other", Op.ADD, "b3", 1.0)],
                              keep_versions=True))
    assert store.get("m-other") is None and store.history("m-other") == []
    [plain] = add(store, record("likes milk"))
    assert plain.version not in (3, 7)


def test_sessions_are_copied_whole_and_copying_again_adds_nothing(store: Store) -> None:
    from engram.stores.sessions import Session
    from engram.types import Turn

    alice = Scope(user_id="alice")
    store.sessions.append_turns("mine", alice, [Turn("user", "hi", 1.0)])
    session = Session("copied", "alice", None, None, 10.0, 30.0)
    turns = [Turn("user", "my dog is Rex", 10.0, 501, True), Turn("assistant", "nice", 11.0, 502, False)]
    assert store.sessions.put(session, turns) == 2
    assert store.sessions.put(session, turns) == 0
    copied = {s.id: (s, t) for s, t in store.sessions.dump()}
    assert set(copied) == {"mine", "copied"}
    assert copied["copied"][0] == session and copied["copied"][1] == turns
    later = [replace(turns[1], saved=True), Turn("user", "and a cat", 30.0, 503, False)]
    assert store.sessions.put(replace(session, updated_at=40.0), later) == 1
    assert [(t.content, t.saved) for t in store.sessions.turns("copied", alice)] == [
        ("my dog is Rex", True), ("nice", True), ("and a cat", False)]
    assert [s["updated_at"] for s in store.sessions.of(alice) if s["id"] == "copied"] == [40.0]
    bobs = Session("copied", "bob", None, None, 1.0, 1.0)  # another owner's session of that id: another session
    assert store.sessions.put(bobs, [Turn("user", "Bob's turn", 1.0, 501)]) == 1
    assert [(t.content, t.seq != 501) for t in store.sessions.turns("copied", Scope(user_id="bob"))] == [
        ("Bob's turn", True)]  # seq 501 is taken: the copy gets a new one
    assert [t.content for t in store.sessions.turns("copied", alice)] == ["my dog is Rex", "nice", "and a cat"]
    assert {(s.user_id, s.id) for s, _ in store.sessions.dump()} == {("alice", "mine"), ("alice", "copied"),
                                                                    ("bob", "copied")}


# -- graph memory ------------------------------------------------------------------------------------------

def _ana() -> Graph:
    return Graph((Entity("User", "person"), Entity("Ana", "person", ("User's sister",)), Entity("Lyon", "place")),
                 (Relation("User", "sister", "Ana"), Relation("Ana", "lives_in", "Lyon")))


def test_every_store_keeps_a_graph(store: Store) -> None:
    assert store.keeps_graph


def test_a_versions_graph_is_written_with_it_and_read_with_its_record(store: Store) -> None:
    lyon, tea = record("User's sister Ana lives in Lyon"), record("User likes tea")
    [stored_lyon, _] = store.apply(ChangeSet(inserts=[(lyon, vec(1)), (tea, vec(2))], graph={0: _ana()},
                                             events=[Event(lyon.id, Op.ADD, "b1", 100.0)]))
    found = store.graph(Criteria(Scope(user_id="u")))
    assert [(r.id, g) for r, g in found] == [(lyon.id, _ana())]
    assert store.graph(Criteria(Scope(user_id="someone else"))) == []
    assert store.graphs([stored_lyon.version]) == {stored_lyon.version: _ana()}  # type: ignore[list-item]


def test_a_graph_holds_while_its_version_does_and_as_of_reads_the_past(store: Store) -> None:
    lyon = record("User's sister Ana lives in Lyon", t=100.0)
    [old] = store.apply(ChangeSet(inserts=[(lyon, vec(1))], graph={0: _ana()}))
    paris = Graph((Entity("Ana", "person"), Entity("Paris", "place")), (Relation("Ana", "lives_in", "Paris"),))
    moved = replace(record("User's sister Ana lives in Paris", t=200.0), id=lyon.id)
    store.apply(ChangeSet(inserts=[(moved, vec(2))], closes=[Close(lyon.id, 200.0, version=old.version)],
                          graph={0: paris}))
    assert [g for _, g in store.graph(Criteria(Scope(user_id="u")))] == [paris]
    assert [g for _, g in store.graph(Criteria(Scope(user_id="u"), as_of=150.0))] == [_ana()]
    store.apply(ChangeSet(closes=[Close(lyon.id, 300.0)]))
    assert store.graph(Criteria(Scope(user_id="u"))) == []


def test_a_failed_change_set_writes_no_graph_and_reset_removes_it(store: Store) -> None:
    lyon = record("User's sister Ana lives in Lyon")
    with pytest.raises(NotFound):
        store.apply(ChangeSet(inserts=[(lyon, vec(1))], closes=[Close("no such memory", 100.0)], graph={0: _ana()}))
    assert store.graph(Criteria(Scope(user_id="u"))) == []
    store.apply(ChangeSet(inserts=[(lyon, vec(1))], graph={0: _ana()}))
    store.reset()
    store.bind_embedder("test-embedder", DIM)
    assert store.graph(Criteria(Scope(user_id="u"))) == []


def test_a_graph_lasts_when_the_store_is_opened_again(make_store: Callable[[Path], Store], tmp_path: Path) -> None:
    first = make_store(tmp_path)
    first.bind_embedder("test-embedder", DIM)
    lyon = record("User's sister Ana lives in Lyon")
    [stored] = first.apply(ChangeSet(inserts=[(lyon, vec(1))], graph={0: _ana()}))
    first.apply(ChangeSet(closes=[Close(lyon.id, 300.0)]))
    first.close()
    again = make_store(tmp_path)
    try:
        assert again.graphs([stored.version]) == {stored.version: _ana()}  # type: ignore[list-item]
        assert [g for _, g in again.graph(Criteria(Scope(user_id="u"), as_of=200.0))] == [_ana()]
        assert again.graph(Criteria(Scope(user_id="u"))) == []
    finally:
        again.close()
