"""Several workers on one SQLite file behave like one: the same texts added at once through two workers are
stored once each; and SIGKILL of the workers in the middle of writes leaves a store that opens clean and holds
only whole operations."""

from __future__ import annotations

import signal
import sqlite3
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, make_home

from engram import Memory
from engram.embed import Embedder


def _hammer(server: Server, texts: list[str], threads: int, answered: list[str], stop: threading.Event) -> None:
    def work(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:  # a new connection each: both workers serve
            for i, text in enumerate(texts):
                if stop.is_set():
                    return
                try:
                    response = http.post("/memories", json={"messages": text, "user_id": "u", "infer": False},
                                         headers={"Connection": "close"} if (i + n) % 2 else {})
                except httpx.TransportError:
                    return
                if response.status_code != 200:
                    return
                answered.extend(r["memory"] for r in response.json()["results"])

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def test_two_workers_store_each_text_once(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    home = make_home(tmp_path / "two", models_dir)
    server = Server(home, args=("--workers", "2")).start()
    try:
        answered: list[str] = []
        texts = [f"shared fact number {i}" for i in range(40)]
        _hammer(server, texts, 6, answered, threading.Event())
        assert Counter(answered) == dict.fromkeys(texts, 6)  # every request answered, as ADD or NOOP
        pids = {line.split()[3] for line in server.log.splitlines() if "POST /memories 200" in line}
        assert len(pids) == 2  # both workers served writes
    finally:
        assert server.stop_cleanly()
    with Memory(home=home, embedder=embedder) as memory:
        stored = [m["memory"] for m in memory.get_all(user_id="u", limit=1000)["results"]]
    assert sorted(stored) == sorted(texts)  # once each: no duplicate, none lost


def test_sigkill_during_writes_leaves_whole_operations(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    home = make_home(tmp_path / "killed", models_dir)
    server = Server(home, args=("--workers", "2")).start()
    answered: list[str] = []
    stop = threading.Event()
    writer = threading.Thread(target=_hammer, args=(server, [f"fact {i}" for i in range(5000)], 4, answered, stop))
    writer.start()
    while len(answered) < 50:
        if not writer.is_alive():
            pytest.fail(f"the writers stopped early:\n{server.log[-3000:]}")
        threading.Event().wait(0.05)
    server.stop(signal.SIGKILL)
    stop.set()
    writer.join()
    db = sqlite3.connect(home / "engram.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with Memory(home=home, embedder=embedder) as memory:
        stored = memory.get_all(user_id="u", limit=100_000)["results"]
        texts = [m["memory"] for m in stored]
        assert len(texts) == len(set(texts)) and set(answered) <= set(texts)  # acknowledged writes all there
        for record in stored:  # each memory whole: its row, its ADD event, its vector (search finds it)
            assert [h["event"] for h in memory.history(record["id"])] == ["ADD"]
        assert memory.search(texts[-1], user_id="u", limit=1)["results"][0]["memory"] == texts[-1]
        memory.add("after the crash", user_id="u", infer=False)  # and it takes writes again
