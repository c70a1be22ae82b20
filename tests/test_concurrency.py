"""Writes are serialisable: no duplicates, no lost updates, true history, across threads and processes."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engram import AsyncMemory, Conflict, Memory
from engram.embed import Embedder
from engram.stores.base import Store
from engram.stores.sqlite import SQLiteStore


def qdrant(home: Path) -> Store:
    from engram.stores.qdrant import QdrantStore

    return QdrantStore(path=home / "qdrant")


T = TypeVar("T")

STORES: dict[str, Callable[[Path], Store]] = {"sqlite": lambda home: SQLiteStore(home / "engram.db"), "qdrant": qdrant}


@pytest.fixture(params=sorted(STORES))
def shared(request, home: Path, embedder: Embedder) -> Iterator[Memory]:
    with Memory(home=home, embedder=embedder, store=STORES[request.param](home)) as m:
        yield m


def together(count: int, call: Callable[[int], T]) -> list[T]:
    """`call(i)` in `count` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_the_same_text_from_8_threads_is_stored_once(shared: Memory) -> None:
    for round_ in range(5):
        text = f"the spare key is under pot number {round_}"

        def add(i: int, text: str = text) -> dict[str, Any]:
            return shared.add(text, user_id="u", infer=False)["results"][0]

        results = together(8, add)
        assert sorted(r["event"] for r in results) == ["ADD"] + ["NOOP"] * 7
        assert len({r["id"] for r in results}) == 1
    assert len(shared.get_all(user_id="u")["results"]) == 5


ADDER = textwrap.dedent("""
    import sys, time
    from engram import Memory
    home, start = sys.argv[1], float(sys.argv[2])
    with Memory(home=home) as m:
        m.search("warm up", user_id="warm")
        time.sleep(max(0.0, start - time.time()))
        for i in range(10):
            print(m.add(f"fact number {i} said at once", user_id="u", infer=False)["results"][0]["event"])
""")


def test_the_same_texts_from_6_processes_are_stored_once(home: Path) -> None:
    start = time.time() + 8
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, str(home), str(start)], stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    events = [line for p in procs for line in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(events).count("ADD") == 10 and len(events) == 60
    with Memory(home=home) as m:
        assert len(m.get_all(user_id="u")["results"]) == 10


def true_history(m: Memory, mid: str) -> list[str]:
    """The chain of texts history tells; asserts every event names the text its version really replaced."""
    events = [e for e in m.history(mid) if e["event"] in ("ADD", "UPDATE")]
    for before, after in itertools.pairwise(events):
        assert after["old_memory"] == before["new_memory"], "an UPDATE names a wrong old text"
    return [e["new_memory"] for e in events]


def test_concurrent_updates_lose_nothing_and_history_tells_the_truth(shared: Memory) -> None:
    mid = shared.add("version zero", user_id="u", infer=False)["results"][0]["id"]
    texts = [f"version {t}-{k}" for t in range(8) for k in range(4)]
    together(8, lambda t: [shared.update(mid, f"version {t}-{k}") for k in range(4)])
    chain = true_history(shared, mid)
    assert sorted(chain[1:]) == sorted(texts)  # every update landed, once
    assert shared.get(mid, strict=True)["memory"] == chain[-1]


UPDATER = textwrap.dedent("""
    import sys, threading, time
    from engram import Memory
    home, mid, start, me = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    with Memory(home=home) as m:
        m.search("warm up", user_id="warm")
        time.sleep(max(0.0, start - time.time()))
        def work(t):
            for k in range(3):
                m.update(mid, f"text {me}-{t}-{k}")
        threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
""")


def test_updates_from_4_processes_of_2_threads_lose_nothing(home: Path) -> None:
    with Memory(home=home) as m:
        mid = m.add("the first text", user_id="u", infer=False)["results"][0]["id"]
    start = time.time() + 8
    procs = [subprocess.Popen([sys.executable, "-c", UPDATER, str(home), mid, str(start), str(p)]) for p in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    with Memory(home=home) as m:
        chain = true_history(m, mid)
    assert sorted(chain[1:]) == sorted(f"text {p}-{t}-{k}" for p in range(4) for t in range(2) for k in range(3))


def test_expected_version_is_compare_and_set(shared: Memory) -> None:
    mid = shared.add("I live in Paris", user_id="u", infer=False)["results"][0]["id"]
    seen = shared.get(mid, strict=True)["version"]
    after = shared.update(mid, "I live in Lyon", expected_version=seen)
    with pytest.raises(Conflict):
        shared.update(mid, "I live in Rome", expected_version=seen)
    with pytest.raises(Conflict):
        shared.delete(mid, expected_version=seen)
    now = shared.get(mid, strict=True)
    assert now["memory"] == "I live in Lyon" and now["version"] == after["version"]
    shared.delete(mid, expected_version=after["version"])
    assert [e["event"] for e in shared.history(mid)] == ["ADD", "UPDATE", "DELETE"]


def test_one_memory_shared_by_threads_and_200_async_tasks(shared: Memory) -> None:
    words = ["tea", "coffee", "paris", "lyon", "chess", "jazz"]
    together(6, lambda i: [shared.add(f"note {i} {k} about {words[k % 6]}", user_id="u", infer=False)
                           for k in range(10)] + [shared.search(words[i], user_id="u") for _ in range(10)])

    tasks = 200 if isinstance(shared.store, SQLiteStore) else 60  # Qdrant's local mode is slow to write

    async def crowd() -> None:
        async_memory = AsyncMemory(memory=shared)
        calls = [async_memory.add(f"async note {i} about {words[i % 6]}", user_id="u", infer=False) if i % 2 else
                 async_memory.search(f"{words[i % 6]} please", user_id="u") for i in range(tasks)]
        await asyncio.gather(*calls)

    asyncio.run(crowd())
    assert len(shared.get_all(user_id="u", limit=1000)["results"]) == 60 + tasks // 2
