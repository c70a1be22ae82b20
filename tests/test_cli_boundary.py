"""The command line's boundary: a user's mistake is `error: …` and an exit code, never a traceback; ids as
printed are accepted back; help and messages read right."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from _cli import cli as run_cli
from typer.testing import CliRunner, Result

from engram.cli import app


def cli(home: Path, *args: str, code: int = 0, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    result = run_cli(home, *args, code=code, env=env, input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def cli_json(home: Path, *args: str) -> Any:
    return json.loads(cli(home, *args, "--json").stdout)


def added(home: Path, text: str, *args: str) -> str:
    return cli_json(home, "add", text, *args)["results"][0]["id"]


def error(home: Path, *args: str, code: int = 2, env: dict[str, str] | None = None) -> str:
    result = cli(home, *args, code=code, env=env)
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stdout == ""
    return result.stderr


# -- operating-system errors -----------------------------------------------------------------------------------

def test_export_to_a_directory_or_into_a_missing_one(home: Path, tmp_path: Path) -> None:
    added(home, "I like green tea", "-u", "alice")
    (tmp_path / "out").mkdir()
    assert "is a directory" in error(home, "export", "--out", str(tmp_path / "out"))
    missing = tmp_path / "no" / "such" / "x.jsonl"
    assert f"{missing.parent} does not exist" in error(home, "export", "--out", str(missing))
    assert not list((tmp_path / "out").iterdir())


def test_markdown_export_onto_an_existing_file(home: Path, tmp_path: Path) -> None:
    added(home, "I like green tea", "-u", "alice")
    taken = tmp_path / "notes"
    taken.write_text("mine\n")
    assert "is a file" in error(home, "export", "--format", "markdown", "--out", str(taken))
    assert taken.read_text() == "mine\n"


def test_a_database_path_that_is_a_directory(home: Path, tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    message = error(home, "list", "-u", "alice", env={"ENGRAM_DB_PATH": str(tmp_path / "dir.db")})
    assert "is a directory" in message and str(tmp_path / "dir.db") in message


def test_a_home_that_is_a_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    assert "is not a directory" in error(home, "--home", str(tmp_path / "afile"), "list", "-u", "alice")
    assert "is not a directory" in error(home, "list", "-u", "alice", "--home", str(tmp_path / "afile" / "below"))


def test_any_other_os_error_is_reported_not_raised(home: Path, tmp_path: Path) -> None:
    """A name too long for the file system: an OSError no check foresaw, still `error:` and no traceback."""
    added(home, "I like green tea", "-u", "alice")
    message = error(home, "export", "--out", str(tmp_path / ("x" * 300)), code=1)
    assert "File name too long" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the modes say")
def test_a_read_only_data_directory(home: Path) -> None:
    added(home, "I like green tea", "-u", "alice")
    home.chmod(0o500)
    try:
        result = CliRunner(env={"ENGRAM_HOME": str(home)}).invoke(app, ["add", "more", "-u", "alice"])
        assert result.exit_code in (1, 2) and result.stderr.startswith("error: ")
        assert "Traceback" not in result.output
    finally:
        home.chmod(0o700)


# -- short ids -------------------------------------------------------------------------------------------------

def shown_ids(text: str) -> list[str]:
    """The 8+ character hex ids a table or message shows, in order."""
    import re

    return re.findall(r"(?<![0-9a-f-])[0-9a-f]{8}(?:[0-9a-f-]*[0-9a-f])?(?![0-9a-f-])", text)


def test_the_ids_the_cli_prints_are_accepted_back(home: Path) -> None:
    line = cli(home, "add", "I live in Lisbon", "-u", "alice").stdout
    short, batch = shown_ids(line)
    full = cli_json(home, "list", "-u", "alice")["results"][0]["id"]
    assert full.startswith(short) and len(short) == 8 and short != full
    assert cli_json(home, "get", short)["id"] == full
    table = cli(home, "list", "-u", "alice").stdout
    assert shown_ids(table) == [short]
    assert "Porto" in cli(home, "update", short, "I live in Porto").stdout + cli_json(home, "get", short)["memory"]
    assert [e["event"] for e in cli_json(home, "history", short)] == ["ADD", "UPDATE"]
    assert "REVERT" in cli(home, "revert", cli_json(home, "history", short)[1]["batch_id"][:8]).stdout
    assert cli_json(home, "get", full)["memory"] == "I live in Lisbon"
    assert "REVERT" in cli(home, "revert", batch).stdout  # the add's own batch, as the add printed it
    assert "was deleted" in error(home, "get", short)
    assert [e["event"] for e in cli_json(home, "history", short)][-1] == "REVERT"  # a deleted memory's history


def test_ambiguous_and_too_short_ids(home: Path) -> None:
    from engram import Memory
    from engram.stores.base import ChangeSet
    from engram.types import Event, MemoryRecord, Op, content_hash

    twins = ["abcdef01-0000-4000-8000-00000000000a", "abcdef01-0000-4000-8000-00000000000b"]
    with Memory(home=home) as memory:
        vector = memory.embedder.embed(["x"])[0]
        memory.store.bind_embedder(memory.embedder.name, memory.embedder.dimension)
        for mid in twins:
            r = MemoryRecord(id=mid, text=f"fact {mid[-1]}", hash=content_hash(f"fact {mid[-1]}"), user_id="u",
                             created_at=1.0, updated_at=1.0, valid_from=1.0, batch_id=f"0b{mid[-1]}", position=0)
            memory.store.apply(ChangeSet(inserts=[(r, vector)],
                                         events=[Event(mid, Op.ADD, f"bat{mid}", 1.0, new_text=r.text)]))
    message = error(home, "get", "abcdef01")
    assert "2 memory ids" in message and twins[0] in message and twins[1] in message
    assert cli_json(home, "get", "abcdef01-0000-4000-8000-00000000000b")["memory"] == "fact b"
    assert "2 memory ids" in error(home, "get", "abcdef01-0000-4000-8000-00000000000")
    assert "at least 8 characters" in error(home, "get", "abcdef")
    assert "no memory with id 'abcdef02'" in error(home, "get", "abcdef02")
    assert "2 batch ids" in error(home, "revert", "batabcdef01")
    assert "no batch with id 'nothing-'" in error(home, "revert", "nothing-")
    assert sorted(shown_ids(cli(home, "list", "-u", "u").stdout)) == twins  # shown as long as they must be


def test_ids_do_not_wrap_in_tables_at_80_columns(home: Path) -> None:
    for i in range(3):
        added(home, f"a long memory number {i} " + "that goes on and on " * 6, "-u", "alice", "-c", "personal",
              "-c", "a-long-category-name")
    full = {r["id"] for r in cli_json(home, "list", "-u", "alice")["results"]}
    for args in (["list", "-u", "alice"], ["search", "memory", "-u", "alice"]):
        table = CliRunner(env={"ENGRAM_HOME": str(home), "COLUMNS": "80"}).invoke(app, args).stdout
        assert max(map(len, table.splitlines())) <= 80
        ids = shown_ids(table)
        assert len(ids) == 3 and all(any(f.startswith(i) for f in full) for i in ids), table


def test_chat_commands_take_short_ids_of_the_users_own_memories_only(home: Path) -> None:
    mine = added(home, "I like green tea", "-u", "alice")
    theirs = added(home, "I like black coffee", "-u", "bob")
    commands = f"/history {mine[:8]}\n/forget {theirs[:8]}\n/quit\n"
    out = cli(home, "chat", "-u", "alice", "-s", "s1", input=commands).stdout
    assert "ADD" in out and "I like green tea" in out
    assert f"no memory '{theirs[:8]}' for alice" in out
    out = cli(home, "chat", "-u", "alice", "-s", "s1", input=f"/forget {mine[:8]}\n/quit\n").stdout
    assert "deleted" in out and cli_json(home, "list", "-u", "alice")["results"] == []


# -- messages and help -----------------------------------------------------------------------------------------

def test_delete_all_prints_the_batch_that_revert_takes(home: Path) -> None:
    added(home, "I like green tea", "-u", "alice")
    out = cli(home, "delete", "--all", "-u", "alice", "--yes").stdout
    assert "deleted 1 memory of user=alice" in out
    batch = out.split("revert ")[-1].split()[0]
    assert cli_json(home, "list", "-u", "alice")["results"] == []
    assert "REVERT" in cli(home, "revert", batch).stdout
    assert [r["memory"] for r in cli_json(home, "list", "-u", "alice")["results"]] == ["I like green tea"]


def test_history_shows_the_reason(home: Path) -> None:
    memory_id = added(home, "I like green tea", "-u", "alice")
    batch = cli_json(home, "history", memory_id)[0]["batch_id"]
    cli(home, "revert", batch)
    table = CliRunner(env={"ENGRAM_HOME": str(home), "COLUMNS": "200"}).invoke(app, ["history", memory_id]).stdout
    assert "reason" in table.splitlines()[1] and f"revert of batch {batch}" in table


def test_add_dash_reads_stdin(home: Path) -> None:
    assert "I moved to Porto" in cli(home, "add", "-", "-u", "alice", input="I moved to Porto\n").stdout
    assert [r["memory"] for r in cli_json(home, "list", "-u", "alice")["results"]] == ["I moved to Porto"]
    assert "nothing to add" in error(home, "add", "-", "-u", "alice")


def test_help_shows_no_type_after_plain_flags(home: Path) -> None:
    for args in ([], ["add"], ["delete"], ["eval", "locomo"]):
        text = cli(home, *args, "--help", env={"COLUMNS": "200"}).stdout
        assert "<bool>" not in text, text
    text = cli(home, "add", "--help", env={"COLUMNS": "200"}).stdout
    assert "<str>" in text and "--dry-run" in text and "[[" not in cli(home, "delete", "--help").stdout


def test_counts_are_singular_or_plural(home: Path, tmp_path: Path) -> None:
    added(home, "I like green tea", "-u", "alice")
    assert "exported 1 memory to" in cli(home, "export", "--format", "jsonl", "--out", str(tmp_path / "a.jsonl")).stderr
    markdown = cli(home, "export", "--format", "markdown", "--out", str(tmp_path / "md"))
    assert "wrote 1 Markdown file to" in markdown.stderr
    fresh = tmp_path / "fresh"
    (fresh / "models").parent.mkdir()
    (fresh / "models").symlink_to((home / "models").resolve())
    out = cli(fresh, "import", str(tmp_path / "a.jsonl")).stdout
    assert "imported 1 item (jsonl)" in out and "1 added, 0 already known" in out


def test_list_names_the_time_a_fact_became_true(home: Path) -> None:
    added(home, "I like green tea", "-u", "alice", "--timestamp", "2020-02-03T04:05:00Z")
    table = cli(home, "list", "-u", "alice").stdout
    assert "valid from" in table and "created" not in table and "2020-02-03 04:05" in table


def test_a_new_data_directory_is_announced(tmp_path: Path, home: Path) -> None:
    typo = tmp_path / "hoem"
    result = cli(home, "--home", str(typo), "list", "-u", "alice")
    assert f"{typo} does not exist" in result.stderr and "new" in result.stderr
    assert "no memories" in result.stdout
    assert cli(home, "--home", str(typo), "list", "-u", "alice").stderr == ""
    added(home, "I like green tea", "-u", "alice")
    assert cli(home, "list", "-u", "alice").stderr == ""
