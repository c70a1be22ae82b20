"""The files store as people use it: Markdown they read, grep and edit by hand between two calls of Memory, killed
writers, two processes at once, git, and migration both ways."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engram import Memory
from engram.config import Settings
from engram.embed import Embedder
from engram.stores.files_format import scope_of_path, scope_path
from engram.types import Scope


@pytest.fixture
def files(home: Path, embedder: Embedder) -> Iterator[Memory]:
    with Memory(Settings.load(home=home, store="files"), embedder=embedder) as m:
        yield m


def md(m: Memory, path: str = "user-alice/memories.md") -> Path:
    return m.settings.home / "memory" / path


def texts(m: Memory, user: str = "alice") -> list[str]:
    return sorted(r["memory"] for r in m.get_all(user_id=user)["results"])


def test_each_memory_is_a_line_of_its_scopes_markdown_file(files: Memory) -> None:
    added = files.add(["likes green tea", "has a dog called Rex"], user_id="alice", infer=False)["results"]
    files.add("plays chess", user_id="alice", agent_id="coach", infer=False)
    content = md(files).read_text()
    assert content.startswith("# Memories of user alice\n")
    for result in added:
        assert re.search(rf"^- {result['memory']} <!-- id={result['id']} v=\d+ -->$", content, re.M)
    assert "plays chess" in md(files, "user-alice/agent-coach/memories.md").read_text()
    assert (files.settings.home / "memory" / ".index.db").exists()


def test_hand_edits_become_history_with_actor_file(files: Memory) -> None:
    results = files.add(["likes green tea", "has a dog called Rex", "lives in Paris"], user_id="alice",
                        infer=False)["results"]
    ids = {r["memory"]: r["id"] for r in results}
    path = md(files)
    content = path.read_text()
    content = content.replace("likes green tea", "likes black coffee")  # changed
    content = "\n".join(line for line in content.split("\n") if "lives in Paris" not in line)  # removed
    content += "- speaks Japanese\n"  # added, without an id
    path.write_text(content)

    assert texts(files) == ["has a dog called Rex", "likes black coffee", "speaks Japanese"]
    changed = files.history(ids["likes green tea"])
    assert [(h["event"], h["actor"]) for h in changed] == [("ADD", "user"), ("UPDATE", "file")]
    assert changed[-1]["old_memory"] == "likes green tea" and changed[-1]["new_memory"] == "likes black coffee"
    assert [(h["event"], h["actor"], h["old_memory"]) for h in files.history(ids["lives in Paris"])][-1] == (
        "DELETE", "file", "lives in Paris")
    hits = files.search("which languages does she speak?", user_id="alice", limit=1)["results"]
    assert hits[0]["memory"] == "speaks Japanese"
    new_id = hits[0]["id"]
    assert [(h["event"], h["actor"]) for h in files.history(new_id)] == [("ADD", "file")]
    assert f"- speaks Japanese <!-- id={new_id} v=" in path.read_text()  # the id is written back
    assert files.search("coffee", user_id="alice", limit=1)["results"][0]["memory"] == "likes black coffee"


def test_a_broken_line_is_reported_kept_and_its_memory_kept(files: Memory) -> None:
    [tea] = files.add("likes green tea", user_id="alice", infer=False)["results"]
    path = md(files)
    broken = path.read_text().replace(" -->", "")  # the comment no longer closes
    path.write_text(broken + "just a note someone typed\n")
    problems = files.store.problems()  # type: ignore[attr-defined]
    assert [(p.path, p.line) for p in problems] == [("user-alice/memories.md", 3), ("user-alice/memories.md", 4)]
    assert "broken" in problems[0].reason and "just a note" in problems[1].raw
    assert texts(files) == ["likes green tea"]  # neither deleted nor duplicated
    files.add("has a dog called Rex", user_id="alice", infer=False)  # a write to the same file keeps both lines
    content = path.read_text()
    assert broken.strip() in content and "just a note someone typed" in content
    assert content.count("likes green tea") == 1 and "has a dog called Rex <!-- id=" in content
    assert [h["event"] for h in files.history(tea["id"])] == ["ADD"]


def test_grep_finds_memories_with_file_and_line(files: Memory) -> None:
    files.add(["has a dog called Rex", "likes green tea", "the dog is 4 years old"], user_id="alice", infer=False)
    files.add("has a dog too", user_id="bob", infer=False)
    found = files.grep(r"\bdog\b", user_id="alice")["results"]
    assert [(f["memory"], f["file"], f["line"]) for f in found] == [
        ("has a dog called Rex", "user-alice/memories.md", 3), ("the dog is 4 years old", "user-alice/memories.md", 5)]
    lines = md(files).read_text().split("\n")
    assert all(f["memory"] in lines[f["line"] - 1] for f in found)
    with pytest.raises(Exception, match="regular expression"):
        files.grep("(", user_id="alice")


def test_deleting_the_index_loses_nothing(files: Memory, home: Path, embedder: Embedder) -> None:
    [tea] = files.add("likes green tea", user_id="alice", infer=False)["results"]
    files.update(tea["id"], "likes black tea")
    files.add("has a dog called Rex", user_id="alice", infer=False)
    before = (texts(files), files.history(tea["id"]), files.search("dog", user_id="alice")["results"][0]["id"])
    files.close()
    for leftover in (home / "memory").glob(".index.db*"):
        leftover.unlink()
    with Memory(Settings.load(home=home, store="files"), embedder=embedder) as again:
        assert (texts(again), again.history(tea["id"]),
                again.search("dog", user_id="alice")["results"][0]["id"]) == before


def test_scope_directories_are_readable_and_reversible() -> None:
    for scope in [Scope("alice"), Scope("alice", "coach", "r1"), Scope(agent_id="bot"), Scope("a/b ../é%"),
                  Scope(".hidden")]:
        path = scope_path(scope)
        assert scope_of_path(path) == scope and ".." not in path.split("/") and not path.startswith(".")
    assert scope_path(Scope("alice", "coach")) == "user-alice/agent-coach"
    assert len(scope_path(Scope("x" * 250 + "/"))) < 200


WRITER = textwrap.dedent("""
    import sys
    from engram.stores.files import FilesStore
    from engram.stores.base import ChangeSet
    from engram.types import Event, MemoryRecord, Op, content_hash
    import numpy as np
    store = FilesStore(sys.argv[1])
    store.bind_embedder("test", 4)
    for n in range(int(sys.argv[3])):
        batch = f"{sys.argv[2]}-{n}"
        records = [MemoryRecord(id=f"{batch}-{i}", text=f"{batch} fact {i}", hash=content_hash(f"{batch} fact {i}"),
                                user_id="u", batch_id=batch, position=i) for i in range(3)]
        store.apply(ChangeSet(inserts=[(r, np.ones(4, dtype=np.float32) / 2) for r in records],
                              events=[Event(r.id, Op.ADD, batch, 1.0, new_text=r.text) for r in records]))
        print(batch, flush=True)
""")


def _open(root: Path) -> Any:
    from engram.stores.files import FilesStore

    store = FilesStore(root)
    store.bind_embedder("test", 4)
    return store


def test_two_processes_writing_at_once_neither_lose_nor_duplicate(tmp_path: Path) -> None:
    root = tmp_path / "memory"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), name, "15"], stdout=subprocess.DEVNULL)
               for name in ("a", "b")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    store = _open(root)
    from engram.stores.base import Criteria

    got = sorted(r.text for r in store.select(Criteria(Scope("u"))))
    assert got == sorted(f"{w}-{n} fact {i}" for w in "ab" for n in range(15) for i in range(3))
    lines = [line for line in (root / "user-u" / "memories.md").read_text().split("\n") if line.startswith("- ")]
    assert len(lines) == 90 and len(set(lines)) == 90
    assert len(store.all_events()) == 90
    store.close()


def test_a_writer_killed_at_any_moment_leaves_whole_batches(tmp_path: Path) -> None:
    from engram.stores.base import Criteria

    root = tmp_path / "memory"
    for trial in range(6):
        with subprocess.Popen([sys.executable, "-c", WRITER, str(root), f"k{trial}", "1000"],
                              stdout=subprocess.PIPE) as writer:
            assert writer.stdout is not None
            writer.stdout.readline()  # at least one batch is done
            time.sleep(0.05 * trial)
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
        store = _open(root)  # opens: finishes or forgets the interrupted batch
        texts = [r.text for r in store.select(Criteria(Scope("u")))]
        batches: dict[str, int] = {}
        for text in texts:
            batches[text.split(" fact ")[0]] = batches.get(text.split(" fact ")[0], 0) + 1
        assert set(batches.values()) == {3}, batches  # only whole batches
        assert len(texts) == len(set(texts))
        assert store.problems() == []
        store.close()
        for leftover in root.glob(".index.db*"):
            leftover.unlink()  # a rebuild from the files alone must agree
        rebuilt = _open(root)
        assert sorted(r.text for r in rebuilt.select(Criteria(Scope("u")))) == sorted(texts)
        rebuilt.close()


def test_files_git_commits_each_batch(home: Path, embedder: Embedder) -> None:
    if shutil.which("git") is None:
        pytest.skip("no git on this machine")
    with Memory(Settings.load(home=home, store="files", files_git=True), embedder=embedder) as m:
        [result] = m.add("likes green tea", user_id="alice", infer=False)["results"]
        m.update(result["id"], "likes black tea")
    log = subprocess.run(["git", "-C", str(home / "memory"), "log", "--format=%s"], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert len([line for line in log if line.startswith("engram batch ")]) == 2
    tracked = subprocess.run(["git", "-C", str(home / "memory"), "ls-files"], capture_output=True, text=True,
                             check=True).stdout.split()
    assert "user-alice/memories.md" in tracked and not any(t.startswith(".index") for t in tracked)


def test_cli_migrate_to_files_and_back(home: Path, tmp_path: Path, embedder: Embedder) -> None:
    from _cli import cli

    def run(*args: str, store: str = "sqlite", code: int = 0) -> str:
        result = cli(home, *args, code=code, env={"ENGRAM_STORE": store})
        return result.stdout + result.stderr

    run("add", "I like green tea", "--user", "alice")
    run("add", "I live in Lisbon", "--user", "alice")
    out = run("migrate", "--to", "files")
    assert "sqlite → files: 2 memories" in out and "copied now: 2 versions, 2 events" in out
    assert "copied now: 0 versions, 0 events" in run("migrate", "--to", "files")  # resumable: nothing left
    assert "I live in Lisbon <!-- id=" in (home / "memory" / "user-alice" / "memories.md").read_text()
    with Memory(Settings.load(env={}, home=home, store="files"), embedder=embedder) as memory:
        assert memory.search("where do I live?", user_id="alice")["results"][0]["memory"] == "I live in Lisbon"
    out = run("migrate", "--to", "sqlite", "--path", str(tmp_path / "back.db"), store="files")
    assert "files → sqlite: 2 memories" in out
    assert "same directory" in run("migrate", "--to", "files", store="files", code=2)


def graph_view(m: Memory, as_of: Any = None) -> tuple[Any, ...]:
    """What graph memory answers for alice: her entities, and what is related to Ana (the memories by text)."""
    related = m.related("Ana", user_id="alice", as_of=as_of)
    return (m.entities(user_id="alice", as_of=as_of)["results"], related["entities"],
            sorted((r["subject"], r["relation"], r["object"], r["memory"]) for r in related["relations"]))


def test_the_graph_is_in_the_files_and_lasts_through_a_rebuild_of_the_index(files: Memory, home: Path,
                                                                             embedder: Embedder) -> None:
    [lyon] = files.add("My sister Ana lives in Lyon.", user_id="alice", infer=False, timestamp="2024-01-01")["results"]
    files.add("I work at Acme Corp.", user_id="alice", infer=False, timestamp="2024-01-02")
    files.update(lyon["id"], "My sister Ana lives in Paris.", timestamp="2024-03-01")
    before = (graph_view(files), graph_view(files, "2024-02-01"))
    assert ("Ana", "lives_in", "Paris", "My sister Ana lives in Paris.") in before[0][2]
    assert ("Ana", "lives_in", "Lyon", "My sister Ana lives in Lyon.") in before[1][2]
    logged = [json.loads(line) for line in (home / "memory" / "versions.jsonl").read_text().splitlines()]
    assert {tuple(r) for row in logged if "graph" in row for r in row["graph"]["relations"]} >= {
        ("Ana", "lives_in", "Lyon"), ("Ana", "lives_in", "Paris"), ("User", "works_at", "Acme Corp")}
    files.close()
    for leftover in (home / "memory").glob(".index.db*"):
        leftover.unlink()
    with Memory(Settings.load(home=home, store="files"), embedder=embedder) as again:
        assert (graph_view(again), graph_view(again, "2024-02-01")) == before


def test_hand_edits_get_a_graph_by_the_rules_of_any_add(files: Memory) -> None:
    files.add("My sister Ana lives in Lyon.", user_id="alice", infer=False, timestamp="2024-01-01")
    path = md(files)
    path.write_text(path.read_text().replace("Lyon", "Paris") + "- My brother Tom works at Globex Corp.\n")
    found = {e["name"]: e for e in files.entities(user_id="alice")["results"]}
    assert "Tom" in found and found["Globex Corp"]["kind"] == "organisation" and "Lyon" not in found
    assert "User's brother" in found["Tom"]["aliases"]
    near = files.related("Ana", user_id="alice", hops=1)["relations"]
    assert {(r["subject"], r["relation"], r["object"]) for r in near} == {("User", "sister", "Ana"),
                                                                          ("Ana", "lives_in", "Paris")}
    then = files.related("Ana", user_id="alice", as_of="2024-02-01")["relations"]
    assert ("Ana", "lives_in", "Lyon") in {(r["subject"], r["relation"], r["object"]) for r in then}
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if "Tom" not in line))
    assert "Tom" not in {e["name"] for e in files.entities(user_id="alice")["results"]}  # a line removed: closed
