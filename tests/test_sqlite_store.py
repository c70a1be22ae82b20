"""SQLite-specific promises: concurrent creation of one file, and per-write costs that ignore other users."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from engram.stores.base import ChangeSet, Criteria
from engram.stores.matrix import MatrixCache, ScopeMatrix
from engram.stores.schema import MIGRATIONS
from engram.stores.sqlite import SQLiteStore
from engram.types import MemoryRecord, Scope

OPENER = textwrap.dedent("""
    import sys, time
    from engram.stores.sqlite import SQLiteStore
    path, start = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    store = SQLiteStore(path)
    store.bind_embedder("e", 4)
    store.close()
""")


def test_eight_processes_creating_one_new_database_all_succeed(tmp_path: Path) -> None:
    for round_ in range(3):
        path, start = tmp_path / f"new{round_}.db", time.time() + 3
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(path), str(start)], stderr=subprocess.PIPE,
                                  text=True)
                 for _ in range(8)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, errors
        store = SQLiteStore(path)
        assert store.count() == 0
        store.close()


class NoWalking(OrderedDict):
    def __iter__(self):
        raise AssertionError("a write walked every cached scope")


def test_a_write_never_walks_every_cached_scope(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.db")
    store.bind_embedder("e", 4)
    cache: MatrixCache = store._cache
    for user in range(1000):
        cache.get((f"user{user}", None, None), 0, lambda: ScopeMatrix([], np.zeros((0, 4), np.float32), 0))
    cache._entries = NoWalking(cache._entries)
    record = MemoryRecord(id="m", text="likes tea", hash="h", user_id="user7", created_at=1.0, updated_at=1.0,
                          valid_from=1.0)
    store.apply(ChangeSet(inserts=[(record, np.ones(4, np.float32) / 2)], owner=Scope("user7")))
    assert cache.keys_touching([record]) == {("user7", None, None)}
    store.close()


def test_a_cached_scope_written_many_times_holds_what_a_fresh_read_holds(tmp_path: Path) -> None:
    """Writes append to a cached scope's matrix in place (with room to grow): after many writes, closes among
    them, it is what reading the scope afresh gives."""
    from engram.stores.base import Close, Criteria

    store = SQLiteStore(tmp_path / "grow.db", vector_storage="float32")
    store.bind_embedder("e", 4)
    rng = np.random.default_rng(5)
    scope = Scope("u")
    store.select(Criteria(scope))  # cached (empty) from now on
    for write in range(40):
        rows = [(MemoryRecord(id=f"m{write}-{i}", text=f"note {write} {i}", hash=f"h{write}-{i}", user_id="u",
                              created_at=1.0, updated_at=1.0, valid_from=float(write), batch_id=f"b{write}",
                              position=i, expires_at=None if i else 1e12), rng.standard_normal(4).astype(np.float32))
                for i in range(7)]
        closes = [Close(f"m{write - 1}-3", float(write))] if write else []
        store.apply(ChangeSet(inserts=rows, closes=closes, owner=scope))
    cached = store._matrix(scope)
    fresh = SQLiteStore(tmp_path / "grow.db")._matrix(scope)
    assert [r.id for r in cached.records] == [r.id for r in fresh.records] and len(cached) == 280
    for column in ("vectors", "valid_from", "valid_to", "expires_at"):
        assert np.array_equal(getattr(cached, column), getattr(fresh, column)), column
    assert len(store.select(Criteria(scope))) == 280 - 39
    store.close()


def test_each_version_of_one_memory_in_one_write_keeps_its_own_graph(tmp_path: Path) -> None:
    """A copy (migrate, a full import) writes several versions of one memory in one change set; their graphs,
    written together, each go to their own version."""
    from engram.graph import Entity, Graph

    store = SQLiteStore(tmp_path / "g.db")
    store.bind_embedder("e", 4)
    old = MemoryRecord(id="m", text="lives in Lisbon", hash="h1", user_id="u", created_at=1.0, updated_at=1.0,
                       valid_from=1.0, valid_to=2.0, version=4)
    new = MemoryRecord(id="m", text="lives in Porto", hash="h2", user_id="u", created_at=2.0, updated_at=2.0,
                       valid_from=2.0, version=8)
    vector = np.ones(4, np.float32) / 2
    store.apply(ChangeSet(inserts=[(old, vector), (new, vector)], keep_versions=True,
                          graph={0: Graph((Entity("Lisbon", "place"),)), 1: Graph((Entity("Porto", "place"),))}))
    assert {v: [e.name for e in g.entities] for v, g in store.graphs([4, 8]).items()} == {4: ["Lisbon"],
                                                                                          8: ["Porto"]}
    store.close()


def test_a_write_from_another_thread_never_lands_between_a_searchs_mask_and_its_rows(tmp_path: Path) -> None:
    """The IndexError once seen with 200 async tasks, made deterministic: a write starts while keyword search
    holds a mask of the cached matrix."""
    import threading

    from engram.stores.matrix import ScopeMatrix as Matrix

    store = SQLiteStore(tmp_path / "r.db")
    store.bind_embedder("e", 4)

    def rec(i: int) -> MemoryRecord:
        return MemoryRecord(id=f"m{i}", text=f"coffee note {i}", hash=f"h{i}", user_id="u", created_at=1.0,
                            updated_at=1.0, valid_from=1.0, batch_id=f"b{i}", position=0)

    store.apply(ChangeSet(inserts=[(rec(0), np.ones(4, np.float32) / 2)]))
    criteria = Criteria(Scope("u"))
    mask = Matrix.mask
    writes: list[threading.Thread] = []

    def mask_then_write(self, c):
        keep = mask(self, c)
        if not writes:
            second = ChangeSet(inserts=[(rec(1), np.ones(4, np.float32) / 2)])
            writer = threading.Thread(target=lambda: store.apply(second))
            writes.append(writer)
            writer.start()
            writer.join(timeout=1.0)  # lands now, unless reads and writes of one handle exclude each other
        return keep

    Matrix.mask = mask_then_write  # type: ignore[method-assign]
    try:
        found = store.keyword("coffee", criteria, 10)
    finally:
        Matrix.mask = mask  # type: ignore[method-assign]
        writes[0].join()
    assert [r.text for r, _ in found] == ["coffee note 0"]
    assert sorted(r.text for r, _ in store.keyword("coffee", criteria, 10)) == ["coffee note 0", "coffee note 1"]
    store.close()


def database_at(path: Path, migrations: int) -> sqlite3.Connection:
    """A database file as engram left it after its first `migrations` schema migrations, open for filling."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE engram_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for name, fn in MIGRATIONS[:migrations]:
        fn(db)
        db.execute("INSERT INTO engram_migrations VALUES (?, 0)", (name,))
    return db


def test_a_database_from_before_expiry_opens_with_nothing_expiring(tmp_path: Path) -> None:
    """Migration m004 adds memories.expires_at to an existing file: old rows never expire and stay readable."""
    path = tmp_path / "old.db"
    db = database_at(path, 3)
    db.executemany("INSERT INTO engram_meta VALUES (?, ?)", [("embedder", "e"), ("dimension", "4")])
    db.execute("INSERT INTO memories (id, text, hash, user_id, created_at, updated_at, valid_from, vector, batch_id, "
               "position) VALUES ('m1', 'likes tea', 'h', 'u', 1, 1, 1, ?, 'b', 0)",
               (np.ones(4, np.float32).tobytes(),))
    db.close()
    store = SQLiteStore(path)
    try:
        [row] = store.select(Criteria(Scope(user_id="u")))
        assert row.text == "likes tea" and row.expires_at is None
    finally:
        store.close()


def test_a_database_from_before_scoped_sessions_keeps_each_sessions_owner(tmp_path: Path) -> None:
    """Migration m005 keys sessions by (owner, id): existing sessions and turns keep their owner, and another
    scope may then have a session of the same id."""
    from engram.types import Turn

    path = tmp_path / "old.db"
    db = database_at(path, 4)
    db.execute("INSERT INTO sessions VALUES ('s1', 'alice', NULL, NULL, 1, 2), ('s2', 'bob', 'coach', NULL, 3, 3)")
    db.execute("INSERT INTO turns (seq, session_id, role, content, created_at, saved) VALUES "
               "(5, 's1', 'user', 'hi', 1, 1), (6, 's1', 'assistant', 'hello', 2, 0), "
               "(7, 's2', 'user', 'ready?', 3, 0)")
    db.close()
    store = SQLiteStore(path)
    try:
        alice, bob = Scope(user_id="alice"), Scope(user_id="bob")
        sessions = store.sessions
        assert [(t.content, t.seq, t.saved) for t in sessions.turns("s1", alice)] == [("hi", 5, True),
                                                                                     ("hello", 6, False)]
        assert [t.content for t in sessions.turns("s2", Scope(user_id="bob", agent_id="coach"))] == ["ready?"]
        sessions.append_turns("s1", bob, [Turn("user", "bob's own", 4.0)])
        assert [t.content for t in sessions.turns("s1", bob)] == ["bob's own"]
        assert [t.content for t in sessions.turns("s1", alice)] == ["hi", "hello"]
        assert store._read("PRAGMA foreign_key_check") == []
        assert "REFERENCES \"sessions\"" in store._read("SELECT sql FROM sqlite_master WHERE name='turns'")[0][0]
    finally:
        store.close()


def test_a_database_from_before_m009_keeps_its_graphs_and_only_the_version_indexes(tmp_path: Path) -> None:
    """Migration m009 drops the graph indexes by name, subject and object (reads go by version); the rows stay."""
    path = tmp_path / "old.db"
    db = database_at(path, 8)
    db.execute("INSERT INTO graph_entities VALUES (1, 'Ana', 'person', '[]'), (1, 'Lyon', 'place', '[]')")
    db.execute("INSERT INTO graph_relations VALUES (1, 'Ana', 'lives_in', 'Lyon')")
    db.close()
    store = SQLiteStore(path)
    try:
        indexes = {row[0] for row in store._read("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name "
                                                 "IN ('graph_entities', 'graph_relations')")}
        assert indexes == {"graph_entities_version", "graph_relations_version"}
        assert store._read("SELECT count(*) FROM graph_entities")[0][0] == 2
        assert store._read("SELECT subject, object FROM graph_relations") == [("Ana", "Lyon")]
    finally:
        store.close()
