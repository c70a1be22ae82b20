"""A data directory engram may not write (a read-only mount, another user's files) can still be read.

Root ignores file modes, so as root the reads run as `nobody` (setpriv) on files given to nobody; as any other
user, chmod alone makes the directory read-only.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engram import Memory, Settings, StoreError
from engram.stores.base import Criteria
from engram.stores.sqlite import SQLiteStore
from engram.testing import FakeOpenAI
from engram.types import Scope

NOBODY = 65534
AS_ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(AS_ROOT and shutil.which("setpriv") is None,
                                reason="as root, a read-only directory needs setpriv to read it as another user")


def settings(home: Path, fake: FakeOpenAI) -> Settings:
    # A keyless fake embedder: `nobody` cannot read the session's exported model under root's temporary files.
    return Settings.load(home=home, embedder="openai", embedder_base_url=fake.base_url)


def make_read_only(home: Path) -> None:
    for path in [home.parent, home, *home.rglob("*")]:
        if AS_ROOT:
            os.chown(path, NOBODY, NOBODY)
        path.chmod(0o500 if path.is_dir() else 0o400)


AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if AS_ROOT else []
CHECKOUT = Path(__file__).resolve().parent.parent


@functools.cache
def nobody_cannot_run_engram() -> str | None:
    """Why `nobody` cannot import engram from this checkout and its venv (a directory above them that others may
    not enter, as under `mktemp -d`), or None when it can."""
    if not AS_ROOT:
        return None
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import engram"], check=False, capture_output=True,
                           text=True, timeout=60, env={"PYTHONPATH": str(CHECKOUT), "PATH": "/usr/bin:/bin"})
    if probe.returncode == 0:
        return None
    return (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]


def engram_cli(home: Path, fake: FakeOpenAI, *args: str) -> subprocess.CompletedProcess[str]:
    """`engram ARGS` in a new process that may not write `home` (as nobody when this process is root)."""
    why = nobody_cannot_run_engram()
    if why is not None:
        pytest.skip(f"as root these run engram as nobody, who cannot run this checkout ({why}): clone it where "
                    "others may read it")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "ENGRAM_HOME": str(home),
           "ENGRAM_EMBEDDER": "openai", "ENGRAM_EMBEDDER_BASE_URL": fake.base_url, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(CHECKOUT), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [*AS_NOBODY, sys.executable, "-c", "from engram.cli import main; main()", *args]
    return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def stored() -> Iterator[tuple[Path, FakeOpenAI]]:
    # Directly under /tmp: nobody cannot reach into pytest's tmp_path, whose parents are root's 0700 directories.
    home = Path(tempfile.mkdtemp(prefix="engram-read-only-")) / "data"
    try:
        with FakeOpenAI() as fake:
            with Memory(settings(home, fake)) as memory:
                memory.add([{"content": "I drink green tea every morning"}, {"content": "I live in Lyon"}],
                           user_id="alice", infer=False)
            yield home, fake
    finally:
        for path in [home.parent, home, *home.rglob("*")]:
            path.chmod(0o700)
        shutil.rmtree(home.parent)


def test_list_search_and_export_read_a_read_only_directory(stored: tuple[Path, FakeOpenAI]) -> None:
    home, fake = stored
    assert not (home / "engram.db-wal").exists()  # closed cleanly: nothing left to read from a WAL file
    make_read_only(home)
    listed = engram_cli(home, fake, "list", "-u", "alice", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(m["memory"] for m in json.loads(listed.stdout)["results"]) == ["I drink green tea every morning",
                                                                                 "I live in Lyon"]
    found = engram_cli(home, fake, "search", "green tea", "-u", "alice", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["results"][0]["memory"] == "I drink green tea every morning"
    exported = engram_cli(home, fake, "export", "--format", "jsonl", "--out", "-")
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 2
    assert sorted(p.name for p in home.iterdir()) == ["engram.db"]  # nothing was created


def test_a_write_to_a_read_only_directory_says_so(stored: tuple[Path, FakeOpenAI]) -> None:
    home, fake = stored
    make_read_only(home)
    added = engram_cli(home, fake, "add", "I like jazz", "-u", "alice")
    assert added.returncode == 1 and "Traceback" not in added.stderr
    assert "read-only; engram can read it, not change it" in added.stderr and str(home) in added.stderr, added.stderr


def test_a_read_only_database_with_a_live_wal_shows_its_latest_writes(stored: tuple[Path, FakeOpenAI]) -> None:
    home, fake = stored
    writer = sqlite3.connect(home / "engram.db", isolation_level=None)  # holds the WAL open, never checkpoints
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("SELECT count(*) FROM memories").fetchone()
        with Memory(settings(home, fake)) as memory:
            memory.add("I have a cat named Tom", user_id="alice", infer=False)
        assert (home / "engram.db-wal").exists()
        make_read_only(home)
        listed = engram_cli(home, fake, "list", "-u", "alice", "--json")
        assert listed.returncode == 0, listed.stderr
        assert "I have a cat named Tom" in [m["memory"] for m in json.loads(listed.stdout)["results"]]
    finally:
        writer.close()


def test_the_store_opens_read_only_in_process_when_it_may_not_write(tmp_path: Path) -> None:
    if AS_ROOT:
        pytest.skip("root may write whatever the mode; the subprocess tests above cover root")
    SQLiteStore(tmp_path / "engram.db").close()
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=r"holds no database yet, and its directory .* is read-only"):
            SQLiteStore(tmp_path / "other.db")
        store = SQLiteStore(tmp_path / "engram.db")
        assert store.read_only == f"its directory {tmp_path} is read-only"
        store.bind_embedder("e", 3)  # nothing to check against, nothing written
        assert store.select(Criteria(Scope(user_id="u"))) == []
        with pytest.raises(StoreError, match="read-only; engram can read it, not change it"):
            store.reset()
        store.close()
    finally:
        tmp_path.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engram.db"]
