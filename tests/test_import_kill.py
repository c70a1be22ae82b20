"""A killed `engram import` leaves whole memories only, and running it again finishes the job without duplicates."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engram import Memory

ITEMS = 3000
CHUNK = 64


def count_memories(db_path: Path) -> int:
    """Rows committed so far, read without creating the file or taking a write lock."""
    if not db_path.exists():
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM memories").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        db.close()


def import_command(home: Path, path: Path) -> dict:
    script = Path(sys.executable).with_name("engram")
    return {"args": [str(script), "import", str(path), "--chunk", str(CHUNK)],
            "env": {**os.environ, "ENGRAM_HOME": str(home)}}


def check_consistent(home: Path) -> int:
    """Open the store as a user would, and check every memory row is whole; return how many there are."""
    with Memory(home=home) as memory:
        assert len(memory.get_all(user_id="kill", limit=10)["results"]) == min(10, count_memories(home / "engram.db"))
    db = sqlite3.connect(home / "engram.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total = db.execute("SELECT count(*) FROM memories").fetchone()[0]
        assert db.execute("SELECT count(*) FROM memories WHERE terms IS NULL").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM memories m WHERE NOT EXISTS (SELECT 1 FROM history h "
                          "WHERE h.memory_id = m.id AND h.op = 'ADD')").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM history").fetchone()[0] == total
        assert db.execute("SELECT count(*) FROM memories WHERE length(vector) != 384 * 2").fetchone()[0] == 0
        assert db.execute("SELECT count(DISTINCT hash) FROM memories").fetchone()[0] == total
        return total
    finally:
        db.close()


def test_killed_import_leaves_whole_chunks_and_resumes(tmp_path: Path, models_dir: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(models_dir)
    big = tmp_path / "big.jsonl"
    with open(big, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"memory": f"fact {i}: item {i} of the big import, about topic {i % 97}",
                                  "user_id": "kill", "metadata": {"n": 1}}) + "\n" for i in range(ITEMS))

    proc = subprocess.Popen(**import_command(home, big), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while count_memories(home / "engram.db") == 0:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "no memory was written within 60 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    survived = check_consistent(home)
    assert 0 < survived < ITEMS
    assert survived % CHUNK == 0  # every chunk is one transaction: all of it or none of it

    again = subprocess.run(**import_command(home, big), capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    assert f"{ITEMS - survived} added, {survived} already known" in again.stdout
    assert check_consistent(home) == ITEMS
    with Memory(home=home) as memory:
        texts = [r["memory"] for r in memory.get_all(user_id="kill", limit=ITEMS + 10)["results"]]
    assert len(texts) == len(set(texts)) == ITEMS
