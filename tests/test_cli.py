"""The `engram` command line, driven through typer's CliRunner against a real store and embedder."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _cli import cli
from typer.testing import Result

from engram import Memory, Settings
from engram.cli.context import note_first_run


def make_home(path: Path, models_dir: Path) -> Path:
    path.mkdir(parents=True)
    (path / "models").symlink_to(models_dir)
    return path


def run(home: Path, *args: str, input: str | None = None, code: int = 0) -> Result:
    return cli(home, *args, code=code, input=input)


def as_json(home: Path, *args: str) -> Any:
    return json.loads(run(home, *args, "--json").stdout)


def count_rows(home: Path) -> int:
    db = sqlite3.connect(home / "engram.db")
    try:
        return db.execute("SELECT count(*) FROM memories").fetchone()[0]
    finally:
        db.close()


def add(home: Path, text: str, *args: str) -> str:
    return as_json(home, "add", text, *args)["results"][0]["id"]


# -- basics ----------------------------------------------------------------------------------------------------

def test_version_and_help(home: Path) -> None:
    assert run(home, "--version").stdout.strip() == "engram 0.1.0"
    assert "search" in run(home, "--help").stdout


def test_add_prints_events(home: Path) -> None:
    out = run(home, "add", "I like green tea", "--user", "alice").stdout
    assert "ADD" in out and "I like green tea" in out
    out = run(home, "add", "i like GREEN tea", "-u", "alice").stdout
    assert "NOOP" in out


def test_add_options_reach_the_memory(home: Path) -> None:
    memory_id = add(home, "I like green tea", "-u", "alice", "-a", "bot", "-r", "r1", "--metadata", '{"src": "cli"}',
                    "-c", "Drinks", "--category", "food", "--timestamp", "2024-01-02T03:04:05Z")
    row = as_json(home, "get", memory_id)
    assert (row["user_id"], row["agent_id"], row["run_id"]) == ("alice", "bot", "r1")
    assert row["metadata"] == {"src": "cli"} and row["categories"] == ["drinks", "food"]
    assert row["valid_from"] == "2024-01-02T03:04:05+00:00"
    table = run(home, "get", memory_id).stdout
    assert "I like green tea" in table and memory_id in table


def test_search_table_and_json(home: Path) -> None:
    tea = add(home, "I drink green tea every morning", "-u", "alice", "-c", "food", "--metadata", '{"kind": "drink"}')
    add(home, "I am training for a marathon", "-u", "alice")
    add(home, "I drink coffee", "-u", "bob")
    table = run(home, "search", "tea", "--user", "alice").stdout
    assert "score" in table and "green tea" in table and "marathon" in table
    hits = as_json(home, "search", "what do I drink?", "-u", "alice")["results"]
    assert hits[0]["id"] == tea and {h["user_id"] for h in hits} == {"alice"}
    assert len(as_json(home, "search", "tea", "-u", "alice", "--limit", "1")["results"]) == 1
    assert [h["id"] for h in as_json(home, "search", "tea", "-u", "alice", "--category", "food")["results"]] == [tea]
    filtered = as_json(home, "search", "tea", "-u", "alice", "--filters", '{"kind": "drink"}')["results"]
    assert [h["id"] for h in filtered] == [tea]
    assert as_json(home, "search", "tea", "-u", "alice", "--threshold", "0.99")["results"] == []
    assert as_json(home, "search", "tea", "-u", "alice", "--as-of", "2000-01-01T00:00:00")["results"] == []
    assert "no matching memories" in run(home, "search", "tea", "-u", "nobody").stdout


def test_list(home: Path) -> None:
    for text in ("one fact", "two facts", "three facts"):
        add(home, text, "-u", "alice")
    add(home, "not alice's", "-u", "bob")
    rows = as_json(home, "list", "--user", "alice")["results"]
    assert sorted(r["memory"] for r in rows) == ["one fact", "three facts", "two facts"]
    assert len(as_json(home, "list", "-u", "alice", "--limit", "2")["results"]) == 2
    assert "two facts" in run(home, "list", "-u", "alice").stdout
    assert "no memories" in run(home, "list", "-u", "carol").stdout


def test_update_history_delete(home: Path) -> None:
    memory_id = add(home, "I live in Lisbon", "-u", "alice")
    assert "updated" in run(home, "update", memory_id, "I live in Porto").stdout
    assert as_json(home, "get", memory_id)["memory"] == "I live in Porto"
    events = as_json(home, "history", memory_id)
    assert [(e["event"], e["old_memory"], e["new_memory"]) for e in events] == [
        ("ADD", None, "I live in Lisbon"), ("UPDATE", "I live in Lisbon", "I live in Porto")]
    table = run(home, "history", memory_id).stdout
    assert "UPDATE" in table and "Porto" in table
    assert "deleted" in run(home, "delete", memory_id).stdout
    assert "was deleted" in run(home, "get", memory_id, code=2).stderr
    assert [e["event"] for e in as_json(home, "history", memory_id)] == ["ADD", "UPDATE", "DELETE"]


def test_delete_all_asks_first(home: Path) -> None:
    for text in ("a fact", "another fact"):
        add(home, text, "-u", "alice")
    keep = add(home, "bob's fact", "-u", "bob")
    refused = run(home, "delete", "--all", "--user", "alice", input="n\n", code=1)
    assert "Delete every memory of user=alice?" in refused.stdout
    assert len(as_json(home, "list", "-u", "alice")["results"]) == 2
    assert "deleted 2 memories" in run(home, "delete", "--all", "-u", "alice", input="y\n").stdout
    assert as_json(home, "list", "-u", "alice")["results"] == []
    add(home, "a new fact", "-u", "alice")
    assert "deleted 1 memory" in run(home, "delete", "--all", "-u", "alice", "--yes").stdout
    assert as_json(home, "get", keep)["memory"] == "bob's fact"


# -- errors ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["add", "no scope"], "at least one of user_id"),
    (["add", "x", "-u", "a", "--infer", "--metadata", "[1]"], "metadata must be a dict"),
    (["add", "x", "-u", "a", "--metadata", "{bad"], "--metadata is not valid JSON"),
    (["add", "x", "-u", "a", "--timestamp", "tomorrow"], "ISO 8601"),
    (["search", "x", "-u", "a", "--threshold", "2"], "threshold"),
    (["search", "x", "-u", "a", "--filters", '{"k": {"$nope": 1}}'], "unknown operator 'nope' on 'k'"),
    (["get", "no-such-id"], "no memory with id"),
    (["update", "no-such-id", "text"], "no memory with id"),
    (["delete"], "either a memory ID or --all"),
    (["delete", "--all", "--yes"], "--all needs --user"),
    (["delete", "some-id", "--all", "-u", "a"], "either a memory ID or --all"),
    (["history", "no-such-id"], "no memory with id"),
])
def test_engram_errors_exit_2_without_traceback(home: Path, args: list[str], message: str) -> None:
    result = run(home, *args, code=2)
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stdout == ""


def test_other_engram_errors_exit_1(home: Path) -> None:
    (home / "engram.db").write_bytes(b"this is not a database at all, not even close")
    result = run(home, "list", "-u", "alice", code=1)
    assert result.stderr.startswith("error: ") and "not a SQLite database" in result.stderr


def test_error_from_the_installed_script(home: Path) -> None:
    """The console script itself: red message, exit code, no traceback."""
    script = Path(sys.executable).with_name("engram")
    done = subprocess.run([str(script), "--home", str(home), "get", "nope"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2 and done.stderr.startswith("error: no memory with id")
    assert "Traceback" not in done.stderr


# -- home ------------------------------------------------------------------------------------------------------

def test_home_option_before_or_after_the_command(tmp_path: Path, models_dir: Path) -> None:
    first, second = make_home(tmp_path / "first", models_dir), make_home(tmp_path / "second", models_dir)
    env_home = make_home(tmp_path / "env", models_dir)
    run(env_home, "--home", str(first), "add", "in first", "-u", "u")
    run(env_home, "add", "in second", "-u", "u", "--home", str(second))
    before = as_json(env_home, "--home", str(first), "list", "-u", "u")["results"]
    after = as_json(env_home, "list", "-u", "u", "--home", str(second))["results"]
    assert [r["memory"] for r in before] == ["in first"] and [r["memory"] for r in after] == ["in second"]
    assert not (env_home / "engram.db").exists()


def test_first_run_note(tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    note_first_run(Settings.load(env={}, home=tmp_path / "fresh"))
    err = capsys.readouterr().err
    assert "preparing the embedding model in" in err and "(first run only)" in err
    note_first_run(Settings.load(env={}, home=make_home(tmp_path / "ready", models_dir)))
    assert capsys.readouterr().err == ""


# -- import / export -------------------------------------------------------------------------------------------

def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_import_export_jsonl_round_trip(home: Path, tmp_path: Path, models_dir: Path) -> None:
    add(home, "I like green tea", "-u", "alice", "-c", "food", "--metadata", '{"n": 1}', "--timestamp", "2024-01-01")
    add(home, "I play chess", "-u", "alice", "-a", "coach")
    add(home, "I run daily", "-u", "bob")
    add(home, "Speaks French", "-a", "tutor")
    gone = add(home, "old news", "-u", "bob")
    run(home, "delete", gone)
    out = tmp_path / "all.jsonl"
    assert "exported 4 memories" in run(home, "export", "--format", "jsonl", "--out", str(out)).stderr
    fresh = make_home(tmp_path / "fresh", models_dir)
    result = run(fresh, "import", str(out))
    assert "imported 4 items (jsonl)" in result.stdout and "4 added" in result.stdout
    assert "0 added, 4 already known" in run(fresh, "import", str(out), "--format", "jsonl").stdout
    assert same_memories(home, fresh)
    alice_only = json.loads(run(home, "export", "-f", "jsonl", "-u", "alice", "--out", "-").stdout.splitlines()[0])
    assert alice_only["user_id"] == "alice"


def same_memories(a: Path, b: Path) -> bool:
    def rows(home: Path) -> list[dict]:
        with Memory(home=home) as memory:
            records = [r.to_dict() for r, _ in memory.store.dump() if r.is_current]
        drop = {"id", "created_at", "updated_at", "version", "batch_id"}  # identities the import assigns anew
        return sorted(({k: v for k, v in r.items() if k not in drop} for r in records), key=lambda r: r["memory"])

    return rows(a) == rows(b)


def test_import_bad_line_exits_2_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    rows: list[Any] = [{"memory": f"fact {i}", "user_id": "u"} for i in range(100)]
    path = write_jsonl(tmp_path / "bad.jsonl", [*rows[:50], '{"memory": "broken", "user_id": ', *rows[50:]])
    result = run(home, "import", str(path), code=2)
    assert "line 51" in result.stderr and "not valid JSON" in result.stderr
    assert not (home / "engram.db").exists() or count_rows(home) == 0


def test_import_user_option_and_missing_file(home: Path, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "plain.jsonl", [{"text": "no scope here"}, {"content": "nor here"}])
    assert "no user_id" in run(home, "import", str(path), code=2).stderr
    run(home, "import", str(path), "--user", "carol")
    assert len(as_json(home, "list", "-u", "carol")["results"]) == 2
    run(home, "import", str(tmp_path / "missing.jsonl"), code=2)


LOCOMO = [{
    "sample_id": "conv-t",
    "conversation": {
        "speaker_a": "Ann", "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a puppy called Rex."},
            {"speaker": "Ben", "dia_id": "D1:2", "text": "Nice! Here is mine.", "blip_caption": "a photo of a pug"},
        ],
        "session_2_date_time": "9:05 am on 1 June, 2023",
        "session_2": [{"speaker": "Ann", "dia_id": "D2:1", "text": "Rex learned to sit."}],
        "session_3_date_time": "10:00 am on 2 July, 2023",
    },
    "qa": [{"question": "What is the puppy called?", "answer": "Rex", "evidence": ["D1:1"], "category": 4}],
}]


def test_import_locomo(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "tiny_locomo.json"
    path.write_text(json.dumps(LOCOMO))
    assert "imported 3 items (locomo)" in run(home, "import", str(path)).stdout
    rows = {r["memory"]: r for r in as_json(home, "list", "-u", "conv-t")["results"]}
    assert set(rows) == {"Ann: I adopted a puppy called Rex.", "Ann: Rex learned to sit.",
                         "Ben: Nice! Here is mine. [shares a photo: a photo of a pug]"}
    assert rows["Ann: Rex learned to sit."]["valid_from"] == "2023-06-01T09:05:00+00:00"
    assert rows["Ann: I adopted a puppy called Rex."]["source"] == ["D1:1"]
    run(home, "import", str(path), "--format", "locomo", "--user", "me")
    hits = as_json(home, "search", "what is the puppy called?", "-u", "me")["results"]
    assert hits[0]["memory"] == "Ann: I adopted a puppy called Rex."
    # the graph rules found by a worker process ahead of the writes: the same memories and graph
    run(home, "import", str(path), "--user", "ahead", "--workers", "1")
    graphs = [json.loads(run(home, "graph", "-u", user, "--format", "json").stdout) for user in ("me", "ahead")]
    assert graphs[0] == graphs[1] and graphs[0]["entities"]
    assert "--workers" in run(home, "import", str(path), "--workers", "-1", code=2).stderr


def test_export_markdown_safe_names(home: Path, tmp_path: Path) -> None:
    add(home, "an evil fact", "-u", "../evil")
    add(home, "likes tea", "-u", "alice", "-c", "food")
    add(home, "lives in Porto", "-u", "alice")
    out = tmp_path / "md"
    assert "wrote 2 Markdown files" in run(home, "export", "--format", "markdown", "--out", str(out)).stderr
    names = sorted(p.name for p in out.iterdir())
    assert "alice.md" in names and len(names) == 2
    evil = next(n for n in names if n != "alice.md")
    assert evil.startswith("evil-") and "/" not in evil
    assert sorted(p.name for p in tmp_path.rglob("*.md")) == names
    text = (out / "alice.md").read_text()
    order = [text.index(s) for s in ("## Food", "likes tea", "## Uncategorised", "lives in Porto")]
    assert order == sorted(order)
    run(home, "export", "--format", "markdown", "--out", str(out), "--agent", "x", code=2)


# -- demo ------------------------------------------------------------------------------------------------------

def test_demo(home: Path) -> None:
    out = run(home, "demo").stdout
    for expected in ("ADD", "NOOP", "score", "UPDATE", "gone from search", "only their own"):
        assert expected in out
    assert "LEAK" not in out and "STILL IN SEARCH" not in out
    assert (home / "demo" / "engram.db").exists() and not (home / "engram.db").exists()
    assert out.count("NOOP") == run(home, "demo").stdout.count("NOOP") == 1  # reset at start: same story again


def test_add_infer_dry_run_and_revert(home: Path) -> None:
    run(home, "add", "I like coffee", "--user", "u", "--infer")
    dry = as_json(home, "add", "actually, no I like tea more", "--user", "u", "--infer", "--dry-run")
    assert dry["dry_run"] is True and [r["event"] for r in dry["results"]] == ["DELETE", "ADD"]
    assert [m["memory"] for m in as_json(home, "list", "--user", "u")["results"]] == ["User likes coffee"]
    batch = as_json(home, "add", "actually, no I like tea more", "--user", "u", "--infer")["batch_id"]
    assert [m["memory"] for m in as_json(home, "list", "--user", "u")["results"]] == ["User likes tea more"]
    assert "REVERT" in run(home, "revert", batch).stdout
    assert [m["memory"] for m in as_json(home, "list", "--user", "u")["results"]] == ["User likes coffee"]
    assert "already reverted" in run(home, "revert", batch, code=2).stderr


def test_chat_offline_recalls_saves_and_runs_commands(home: Path) -> None:
    told = run(home, "chat", "--user", "alice", "--session", "s1", input="I am allergic to peanuts\n/quit\n").stdout
    assert "saved:" in told and "User is allergic to peanuts" in told  # the session's save is awaited at /quit
    assert "resume with: engram chat --user alice --session s1" in told
    lines = "what am I allergic to?\n/memories\n/profile\n/history nope\n/quit\n"
    out = run(home, "chat", "--user", "alice", "--session", "s1", input=lines).stdout
    assert "2 earlier turns" in out and "Here is what I remember:" in out and "User is allergic to peanuts" in out
    assert "no memory 'nope' for alice" in out
    assert "User is allergic to peanuts" in run(home, "profile", "--user", "alice").stdout
