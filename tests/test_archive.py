"""engram's full export (engram.archive): `engram export` then `engram import` into an empty data directory gives
back the same store, table for table; a cut, edited or foreign file is refused before anything is written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _cli import cli

from engram import Memory
from engram.embed import Embedder
from engram.types import Scope, Turn

# Every table of an engram database, each with its columns in a fixed order. scope_versions (per-scope write
# counters for cache invalidation) and engram_migrations (when each migration ran) are bookkeeping of the store
# itself, not of its contents; engram_meta's write_seq is that counter too.
TABLES = {
    "memories": "SELECT rowid, * FROM memories ORDER BY rowid",
    "history": "SELECT * FROM history ORDER BY seq",
    "sessions": "SELECT * FROM sessions ORDER BY owner, id",
    "turns": "SELECT * FROM turns ORDER BY seq",
    "engram_meta": "SELECT * FROM engram_meta WHERE key != 'write_seq' ORDER BY key",
    "graph_entities": "SELECT * FROM graph_entities ORDER BY version, rowid",
    "graph_relations": "SELECT * FROM graph_relations ORDER BY version, rowid",
}


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"memories", "history", "sessions", "turns", "engram_meta"} <= names
        return {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}




def new_home(tmp_path: Path, models_dir: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir()
    (home / "models").symlink_to(models_dir)
    return home


def busy_store(home: Path, embedder: Embedder) -> None:
    """A store with every kind of row: scopes, metadata, times, updates, deletes, a delete_all and its revert,
    inferred adds that supersede, and chat sessions with saved and unsaved turns."""
    with Memory(home=home, embedder=embedder) as m:
        m.add("I'm allergic to peanuts", user_id="alice", metadata={"src": "chat", "n": 1}, categories=["health"],
              timestamp="2024-05-01T09:00:00Z", infer=False)
        m.add([{"role": "user", "content": "I moved to Lyon", "id": "m1"},
               {"role": "assistant", "content": "How do you like it?", "id": "m2"}], user_id="alice", infer=False)
        coach = m.add("I play chess on Sundays", user_id="alice", agent_id="coach", run_id="r1", infer=False)
        m.add("Speaks French", agent_id="tutor", infer=False)
        m.add("I like coffee", user_id="bob")  # the offline rules pipeline
        m.add("actually, no I like tea more", user_id="bob")  # supersedes, with a reason
        m.update(coach["results"][0]["id"], "I play chess on Saturdays")
        gone = m.add("old news", user_id="bob", infer=False)["results"][0]["id"]
        m.delete(gone)
        undone = m.delete_all(user_id="alice", agent_id="coach")
        m.revert(undone["batch_id"])
        alice = Scope(user_id="alice")
        turns = m.store.sessions.append_turns("s1", alice, [Turn("user", "hi", 10.0), Turn("assistant", "hello", 11.0)])
        m.store.sessions.mark_saved("s1", alice, turns[0].seq)  # type: ignore[arg-type]
        m.store.sessions.append_turns("s2", Scope(user_id="bob", agent_id="coach"), [Turn("user", "ready?", 12.0)])


def richer_store(home: Path, embedder: Embedder) -> None:
    """busy_store, plus a memory that expired, one that will expire, and Bob's own chat session "s1"."""
    busy_store(home, embedder)
    with Memory(home=home, embedder=embedder) as m:
        m.add("I'm in Rome this week", user_id="alice", infer=False, expiration_date="2024-04-07")  # expired
        m.add("My badge works until 2999", user_id="bob", infer=False, expiration_date="2999-01-01T12:30:00Z")
        m.store.sessions.append_turns("s1", Scope(user_id="bob"), [Turn("user", "bob's own s1", 13.0)])


def test_export_then_import_gives_back_the_same_store(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    richer_store(source, embedder)
    out = tmp_path / "backup.jsonl"
    said = cli(source, "export", "--out", str(out)).stderr
    assert "exported 10 memories (11 versions, 15 events, 3 chat sessions)" in said
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    target = new_home(tmp_path, models_dir, "target")
    result = cli(target, "import", str(out))
    assert "imported 10 memories" in result.stdout and "verified" in result.stdout
    before, after = tables(source / "engram.db"), tables(target / "engram.db")
    for name in TABLES:
        assert after[name] == before[name], name
    assert "copied now: 0 versions, 0 events, 0 chat turns" in cli(target, "import", str(out)).stdout
    assert tables(target / "engram.db") == before
    hits = json.loads(cli(target, "search", "what can't she eat?", "-u", "alice", "--json").stdout)["results"]
    assert hits[0]["memory"] == "I'm allergic to peanuts"


def test_expiry_survives_a_full_export_and_import(tmp_path: Path, models_dir: Path, embedder: Embedder,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    source = new_home(tmp_path, models_dir, "source")
    richer_store(source, embedder)
    out = tmp_path / "backup.jsonl"
    cli(source, "export", "--out", str(out))
    written = {row["version"]["text"]: row["version"]["expires_at"]
               for row in map(json.loads, out.read_text().splitlines()) if "version" in row}
    assert written["I'm in Rome this week"] == 1712534400.0 and written["I'm allergic to peanuts"] is None
    for store in ("sqlite", "qdrant"):
        target = new_home(tmp_path, models_dir, f"to-{store}")
        monkeypatch.setenv("ENGRAM_STORE", store)
        cli(target, "import", str(out))
        with Memory(home=target, embedder=embedder) as m:
            shown = [r["memory"] for r in m.get_all(user_id="alice")["results"]]
            every = {r["memory"]: r for r in m.get_all(user_id="alice", show_expired=True)["results"]}
            assert "I'm in Rome this week" not in shown and "I'm allergic to peanuts" in shown
            assert every["I'm in Rome this week"]["expires_at"] == "2024-04-08T00:00:00+00:00"
            assert every["I'm in Rome this week"]["expiration_date"] == "2024-04-07"
            badge = m.get_all(user_id="bob")["results"]
            assert [r["expires_at"] for r in badge if r["memory"] == "My badge works until 2999"] == [
                "2999-01-01T12:30:00+00:00"]


def test_a_scoped_export_holds_that_scope_only(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    richer_store(source, embedder)
    out = tmp_path / "alice.jsonl"
    cli(source, "export", "--user", "alice", "--out", str(out))
    target = new_home(tmp_path, models_dir, "target")
    cli(target, "import", str(out))
    before, after = tables(source / "engram.db"), tables(target / "engram.db")
    assert after["memories"] == [row for row in before["memories"] if row[5] == "alice"]  # rowid twice, id, text, hash
    alices = {row[2] for row in after["memories"]}
    assert after["history"] == [row for row in before["history"] if row[1] in alices]
    assert [(row[1], row[2]) for row in after["sessions"]] == [("s1", "alice")] and len(after["turns"]) == 2


def test_through_qdrant_and_back_identity_is_kept(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    richer_store(source, embedder)
    first, second = tmp_path / "from-sqlite.jsonl", tmp_path / "from-qdrant.jsonl"
    cli(source, "export", "--out", str(first))
    middle = new_home(tmp_path, models_dir, "middle")
    qdrant = {"ENGRAM_STORE": "qdrant"}
    cli(middle, "import", str(first), env=qdrant)
    cli(middle, "export", "--out", str(second), env=qdrant)
    target = new_home(tmp_path, models_dir, "target")
    cli(target, "import", str(second))
    assert tables(target / "engram.db") == tables(source / "engram.db")


def test_refused_before_anything_is_written(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    richer_store(source, embedder)
    out = tmp_path / "all.jsonl"
    cli(source, "export", "--out", str(out))
    lines = out.read_text().splitlines(keepends=True)
    target = new_home(tmp_path, models_dir, "target")

    def refused(name: str, text: str, *args: str) -> str:
        bad = tmp_path / name
        bad.write_text(text)
        message = cli(target, "import", str(bad), *args, code=2).stderr
        assert not (target / "engram.db").exists() or tables(target / "engram.db")["memories"] == []
        return message

    assert "cut short" in refused("cut.jsonl", "".join(lines[:-1]))
    assert "is not one whole export" in refused("short.jsonl", "".join(lines[:2] + lines[-1:]))
    row = json.loads(lines[1])
    row["version"]["metadata"] = {"": 1}
    assert "line 2" in refused("edited.jsonl", "".join([lines[0], json.dumps(row) + "\n", *lines[2:]]))
    row = json.loads(lines[1])
    row["version"]["expires_at"] = "next week"
    changed = "".join([lines[0], json.dumps(row) + "\n", *lines[2:]])
    assert "expires_at must be epoch seconds" in refused("expiry.jsonl", changed)
    row = json.loads(lines[1])
    row["version"]["colour"] = "red"
    newer = "".join([lines[0], json.dumps(row) + "\n", *lines[2:]])
    assert "unknown MemoryRecord field" in refused("newer.jsonl", newer)
    header = json.loads(lines[0]) | {"embedder": "openai:text-embedding-3-small"}
    assert "engram reembed" in refused("other.jsonl", "".join([json.dumps(header) + "\n", *lines[1:]]))
    assert "without --user" in refused("user.jsonl", "".join(lines), "--user", "carol")
    assert "--format full" in refused("forced.jsonl", "".join(lines), "--format", "jsonl")


def test_the_current_memories_export_is_still_there(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    richer_store(source, embedder)
    rows = [json.loads(line) for line in cli(source, "export", "-f", "jsonl", "--out", "-").stdout.splitlines()]
    assert len(rows) == 8 and all("memory" in row and ("user_id" in row or "agent_id" in row) for row in rows)
    expiring = {row["memory"]: (row["expiration_date"], row["expires_at"]) for row in rows if row["expires_at"]}
    assert expiring == {"I'm in Rome this week": ("2024-04-07", "2024-04-08T00:00:00+00:00"),  # expired, still exported
                        "My badge works until 2999": ("2999-01-01", "2999-01-01T12:30:00+00:00")}


def test_the_current_memories_export_keeps_expiry_through_an_import(tmp_path: Path, models_dir: Path,
                                                                     embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    richer_store(source, embedder)
    out = tmp_path / "current.jsonl"
    cli(source, "export", "-f", "jsonl", "--out", str(out))
    target = new_home(tmp_path, models_dir, "target")
    assert "8 added" in cli(target, "import", str(out)).stdout
    with Memory(home=target, embedder=embedder) as m:
        assert "I'm in Rome this week" not in [r["memory"] for r in m.get_all(user_id="alice")["results"]]
        every = {r["memory"]: r for r in m.get_all(user_id="alice", show_expired=True)["results"]}
        assert every["I'm in Rome this week"]["expires_at"] == "2024-04-08T00:00:00+00:00"
        [badge] = [r for r in m.get_all(user_id="bob")["results"] if r["memory"] == "My badge works until 2999"]
        assert badge["expires_at"] == "2999-01-01T12:30:00+00:00"
    again = cli(target, "import", str(out)).stdout
    assert "0 added, 8 already known" in again  # the expired memory too: it is not added twice
    mem0_line = tmp_path / "mem0.jsonl"  # Mem0's expiration_date alone: shown through that day
    mem0_line.write_text(json.dumps({"memory": "Visiting Oslo", "user_id": "carol",
                                     "expiration_date": "2030-05-01"}) + "\n")
    cli(target, "import", str(mem0_line))
    with Memory(home=target, embedder=embedder) as m:
        [oslo] = m.get_all(user_id="carol")["results"]
        assert (oslo["expiration_date"], oslo["expires_at"]) == ("2030-05-01", "2030-05-02T00:00:00+00:00")


@pytest.mark.parametrize("store", ["sqlite", "qdrant"])
def test_an_empty_store_exports_and_imports(tmp_path: Path, models_dir: Path, store: str) -> None:
    empty, target = new_home(tmp_path, models_dir, "empty"), new_home(tmp_path, models_dir, "target")
    out = tmp_path / "nothing.jsonl"
    assert "exported 0 memories" in cli(empty, "export", "--out", str(out), env={"ENGRAM_STORE": store}).stderr
    assert "imported 0 memories" in cli(target, "import", str(out)).stdout
