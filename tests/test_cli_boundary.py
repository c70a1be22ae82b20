"""The command line's boundary: a user's mistake is `error: …` and an exit code, never a traceback; ids as
printed are accepted back; help and messages read right."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from engram.cli import app


def cli(home: Path, *args: str, code: int = 0, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    result = CliRunner(env={"ENGRAM_HOME": str(home), **(env or {})}).invoke(app, list(args), input=input)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
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
