"""`engram backup` and `engram restore`: a consistent copy of the SQLite store made while it is in use, and put
back only where nothing would be lost (or with --force); processes that had the store open see the restored one."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from test_archive import busy_store, cli, new_home, tables

from engram import Memory
from engram.embed import Embedder


def test_backup_then_restore_into_a_new_data_directory(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    busy_store(source, embedder)
    copy = tmp_path / "engram-backup.db"
    out = cli(source, "backup", str(copy)).stdout
    assert "backed up 8 memories (9 versions, 13 events, 2 chat sessions)" in out
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(copy.name)) == [copy.name]  # no -wal
    target = tmp_path / "target"  # does not exist yet: made, 0700
    assert "restored 8 memories" in cli(target, "restore", str(copy)).stdout
    assert oct(target.stat().st_mode & 0o777) == "0o700"
    assert oct((target / "engram.db").stat().st_mode & 0o777) == "0o600"
    assert tables(target / "engram.db") == tables(source / "engram.db")
    (target / "models").symlink_to(models_dir)
    assert "peanuts" in cli(target, "search", "what can't she eat?", "-u", "alice").stdout


def test_a_backup_made_during_writes_is_a_consistent_snapshot(tmp_path: Path, models_dir: Path,
                                                               embedder: Embedder) -> None:
    home = new_home(tmp_path, models_dir, "home")
    stop, started = threading.Event(), threading.Event()

    def write() -> None:
        with Memory(home=home, embedder=embedder) as memory:
            i = 0
            while not stop.is_set():  # each add: one memory, its vectors and its event, in one write
                memory.add([{"role": "user", "content": f"fact {i}{x}"} for x in "ab"], user_id="u", infer=False)
                started.set()
                i += 1

    with Memory(home=home, embedder=embedder) as memory:
        memory.add("first", user_id="u", infer=False)
    writer = threading.Thread(target=write)
    writer.start()
    assert started.wait(60)
    try:
        copies = [tmp_path / f"copy{n}.db" for n in range(3)]
        for copy in copies:
            cli(home, "backup", str(copy))
    finally:
        stop.set()
        writer.join()
    for copy in copies:
        with sqlite3.connect(copy) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            versions = db.execute("SELECT count(*) FROM memories").fetchone()[0]
            assert versions % 2 == 1 and versions > 1  # "first", then whole adds of two
            assert db.execute("SELECT count(*) FROM history").fetchone()[0] == versions
            assert db.execute("SELECT count(*) FROM memories WHERE terms IS NULL").fetchone()[0] == 0


def test_restore_replaces_a_store_only_when_told(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    busy_store(source, embedder)
    copy = tmp_path / "b.db"
    cli(source, "backup", str(copy))
    target = new_home(tmp_path, models_dir, "target")
    with Memory(home=target, embedder=embedder) as running:  # a process using the store all along
        running.add("I live in Oslo", user_id="alice", infer=False)
        assert running.search("where do I live?", user_id="alice")["results"][0]["memory"] == "I live in Oslo"
        refused = cli(target, "restore", str(copy), code=2).stderr
        assert "is not empty (memories: 1, chat sessions: 0)" in refused and "--force" in refused
        assert [r["memory"] for r in running.get_all(user_id="alice")["results"]] == ["I live in Oslo"]
        cli(target, "restore", str(copy), "--force")
        found = [r["memory"] for r in running.search("where do I live?", user_id="alice")["results"]]
        assert "I live in Oslo" not in found and "I moved to Lyon" in found  # its cached vectors were dropped
        assert {r["memory"] for r in running.get_all(user_id="alice")["results"]} == {
            r["memory"] for r in Memory(home=source, embedder=embedder).get_all(user_id="alice")["results"]}
    assert tables(target / "engram.db")["memories"] == tables(source / "engram.db")["memories"]


def test_what_is_refused(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    home = new_home(tmp_path, models_dir, "home")
    assert "no database" in cli(home, "backup", str(tmp_path / "x.db"), code=2).stderr
    busy_store(home, embedder)
    taken = tmp_path / "taken.db"
    taken.write_text("mine")
    assert "exists" in cli(home, "backup", str(taken), code=2).stderr and taken.read_text() == "mine"
    cli(home, "backup", str(taken), "--force")
    assert "is a directory" in cli(home, "backup", str(tmp_path), code=2).stderr
    assert "does not exist" in cli(home, "backup", str(tmp_path / "no" / "x.db"), code=2).stderr
    other, text = tmp_path / "other", tmp_path / "notes.txt"
    text.write_text("some text")
    assert "not a SQLite database" in cli(other, "restore", str(text), code=1).stderr
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.close()
    assert "not an engram database" in cli(other, "restore", str(plain), code=1).stderr
    assert not (other / "engram.db").exists() or os.path.getsize(other / "engram.db") == 0
    assert "export" in cli(home, "backup", str(tmp_path / "q.db"), code=2, env={"ENGRAM_STORE": "qdrant"}).stderr
