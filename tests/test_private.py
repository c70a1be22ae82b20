"""Private files (RELIABILITY.md): under the usual umask 022, what engram creates is 0700 (directories) and 0600
(files). The exported model is checked by tests/test_offline.py, whose session exports it from scratch."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engram import Memory
from engram.cli import app
from engram.config import Settings
from engram.embed import Embedder


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(*paths: Path) -> dict[str, str]:
    return {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in paths}


def test_the_data_directory_and_the_database_are_private(tmp_path: Path, embedder: Embedder) -> None:
    home = tmp_path / "new" / "home"
    with Memory(home=home, embedder=embedder) as memory:
        memory.add("my cat is called Miso", user_id="u", infer=False)
        db = memory.settings.database
        assert modes(tmp_path / "new", home) == {"new": "0o700", "home": "0o700"}
        wal, shm = db.with_name("engram.db-wal"), db.with_name("engram.db-shm")
        assert modes(db, wal, shm) == {"engram.db": "0o600", "engram.db-wal": "0o600", "engram.db-shm": "0o600"}


def test_an_existing_directory_keeps_its_mode(tmp_path: Path, embedder: Embedder) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)  # shared with a group on purpose
    with Memory(home=shared, embedder=embedder) as memory:
        memory.add("my cat is called Miso", user_id="u", infer=False)
    assert modes(shared, shared / "engram.db") == {"shared": "0o750", "engram.db": "0o600"}


def test_the_local_qdrant_directory_is_private(tmp_path: Path, embedder: Embedder) -> None:
    home = tmp_path / "home"
    with Memory(Settings.load(env={}, home=home, store="qdrant"), embedder=embedder) as memory:
        memory.add("my cat is called Miso", user_id="u", infer=False)
    assert modes(home, home / "qdrant") == {"home": "0o700", "qdrant": "0o700"}


def test_exports_are_private(tmp_path: Path, home: Path, embedder: Embedder) -> None:
    with Memory(home=home, embedder=embedder) as memory:
        memory.add("my cat is called Miso", user_id="u", infer=False)
    runner = CliRunner()
    jsonl, markdown = tmp_path / "memories.jsonl", tmp_path / "export" / "markdown"
    for args in (["--out", str(jsonl)], ["--format", "markdown", "--out", str(markdown)]):
        assert runner.invoke(app, ["--home", str(home), "export", *args]).exit_code == 0
    assert modes(jsonl, markdown.parent, markdown, markdown / "u.md") == {
        "memories.jsonl": "0o600", "export": "0o700", "markdown": "0o700", "u.md": "0o600"}
