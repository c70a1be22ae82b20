"""Figures 3, 4 and 6: writers released at the same moment. Exact duplicates from 6 processes and from 8 threads,
updates and deletes from 6 processes x 2 threads (no lost write, true history), 8 processes opening a new
database. Processes are forked from this one (engram already imported), each with its own store handle."""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from _fakes import HashEmbedder, open_memory

from engram import CorruptStore, EngramError, NotFound
from engram.stores.sqlite import SQLiteStore
from engram.types import Op

__all__ = ["Races", "duplicate_plan", "run_duplicates", "run_lost_updates", "run_opens"]

_FORK = multiprocessing.get_context("fork")


@dataclass
class Races:
    what: str
    store: str
    calls: int = 0
    errors: Counter = field(default_factory=Counter)
    found: Counter = field(default_factory=Counter)  # the figure's counts: extra copies, lost writes, ...
    examples: list[str] = field(default_factory=list)


def _in_processes(count: int, target: Callable[..., None], *args: Any) -> list[Any]:
    """target(i, barrier, queue, *args) in `count` forked processes; what they put on the queue, once all end."""
    barrier, queue = _FORK.Barrier(count), _FORK.Queue()
    procs = [_FORK.Process(target=target, args=(i, barrier, queue, *args)) for i in range(count)]
    for p in procs:
        p.start()
    out: list[Any] = []
    while len(out) < count and (any(p.is_alive() for p in procs) or not queue.empty()):
        try:
            out.append(queue.get(timeout=1))
        except Empty:  # a process that died without reporting is counted by its exit code below
            continue
    for p in procs:
        p.join(timeout=60)
    return out + [("exit", p.exitcode) for p in procs if p.exitcode != 0]


def _in_threads(count: int, target: Callable[..., None], *args: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = []

    class Sink:
        put = results.append

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda i: target(i, barrier, Sink, *args), range(count)))
    return results


# -- exact duplicates ------------------------------------------------------------------------------------------

def duplicate_plan(rng: random.Random, rounds: int, writers: int) -> list[tuple[str, bool, list[list[list[str]]]]]:
    """Per round: the user, whether the adds infer, and each writer's add calls (the round's texts shuffled and
    cut into calls at random)."""
    plan = []
    for r in range(rounds):
        infer = rng.random() < 0.3
        texts = [f"I like {rng.choice(['tea', 'jazz', 'chess'])} number {r}-{i}" if infer else
                 f"the spare key {r}-{i} is under pot {rng.randrange(100)}" for i in range(rng.randint(1, 10))]
        calls = []
        for _ in range(writers):
            mine = rng.sample(texts, len(texts))
            cuts = sorted(rng.sample(range(1, len(mine)), rng.randrange(len(mine)))) if len(mine) > 1 else []
            calls.append([mine[a:b] for a, b in zip([0, *cuts], [*cuts, len(mine)], strict=True)])
        plan.append((f"user{r % 3}", infer, calls))
    return plan


def _adder(i: int, barrier: Any, queue: Any, kind: str, home: Path, plan: list) -> None:
    calls, errors = 0, Counter[str]()
    with open_memory(kind, home) as m:
        m.search("warm up", user_id="warm")
        for user, infer, per_writer in plan:
            barrier.wait(timeout=300)
            for texts in per_writer[i]:
                calls += 1
                try:
                    m.add([{"role": "user", "content": t} for t in texts], user_id=user, infer=infer)
                except EngramError as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
    queue.put(("done", calls, errors))


def _copies(kind: str, home: Path) -> Counter:
    with open_memory(kind, home) as m:
        return Counter((r.scope, r.hash) for r, _ in m.store.dump() if r.is_current)


def run_duplicates(kind: str, home: Path, seed: int, rounds: int, writers: int, processes: bool) -> Races:
    plan = duplicate_plan(random.Random(seed), rounds, writers)
    with open_memory(kind, home) as m:
        m.search("bind", user_id="warm")
    runner = _in_processes if processes else _in_threads
    out = Races("duplicates", kind)
    for item in runner(writers, _adder, kind, home, plan):
        if item[0] == "done":
            out.calls += item[1]
            out.errors.update(item[2])
        else:
            out.errors[f"process exit code {item[1]}"] += 1
    copies = _copies(kind, home)
    out.found["extra copies"] = sum(n - 1 for n in copies.values())
    out.found["memories"] = len(copies)
    out.examples = [f"{n} copies of {key}" for key, n in copies.items() if n > 1][:5]
    return out


# -- lost updates ----------------------------------------------------------------------------------------------

def _updater(p: int, barrier: Any, queue: Any, kind: str, home: Path, ids: list[str], ops: int, seed: int,
             threads: int, memory: Any = None) -> None:
    """One process (or, with `memory`, one thread group) of `threads` threads updating and deleting `ids`."""
    done: list[tuple] = []
    m = memory or open_memory(kind, home)
    inner = threading.Barrier(threads)

    def work(t: int) -> None:
        rng = random.Random(f"{seed}-{p}-{t}")
        inner.wait()
        for k in range(ops):
            mid = rng.choice(ids)
            try:
                if rng.random() < 0.005:
                    m.delete(mid)
                    done.append(("delete", mid, None, None))
                else:
                    text = f"text {p}-{t}-{k} of {mid[:8]}"
                    done.append(("update", mid, text, m.update(mid, text)["version"]))
            except NotFound:
                done.append(("gone", mid, None, None))
            except EngramError as exc:
                done.append(("error", mid, f"{type(exc).__name__}: {exc}"[:200], None))

    barrier.wait(timeout=300)
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if memory is None:
        m.close()
    queue.put(("done", done))


def check_history(m: Any, ids: list[str], done: list[tuple], out: Races) -> None:
    """Every successful update in history exactly once, every event naming the text of the version it closed."""
    texts = {r.version: r.text for r, _ in m.store.dump()}
    wanted = Counter((mid, text, version) for op, mid, text, version in done if op == "update")
    deleted = Counter(mid for op, mid, _, _ in done if op == "delete")
    for mid in ids:
        events = m.store.history(mid)
        told = Counter((e.memory_id, e.new_text, e.new_version) for e in events if e.op is Op.UPDATE)
        for key, n in wanted.items():
            if key[0] == mid and told[key] != n:
                out.found["lost writes"] += abs(n - told[key])
                out.examples.append(f"update {key} succeeded {n}x, history tells it {told[key]}x")
        out.found["phantom events"] += sum(n for key, n in told.items() if key not in wanted)
        out.found["lost writes"] += abs(deleted[mid] - sum(e.op is Op.DELETE for e in events))
        last = None
        for e in events:
            if e.op in (Op.UPDATE, Op.DELETE) and (e.old_version != last or texts.get(e.old_version) != e.old_text):
                out.found["wrong old texts"] += 1
                out.examples.append(f"{mid}: {e.op.value} names {e.old_text!r} (version {e.old_version}), it closed "
                                    f"version {last}: {texts.get(last)!r}")
            last = e.new_version
        out.found["events checked"] += len(events)


def run_lost_updates(kind: str, home: Path, seed: int, processes: int, threads: int, ops: int) -> Races:
    with open_memory(kind, home) as m:
        ids = [r["id"] for r in m.add([{"role": "user", "content": f"memory {i} as first written"} for i in range(16)],
                                      user_id="u", infer=False)["results"]]
    out = Races("lost updates", kind)
    if processes > 1:
        results = _in_processes(processes, _updater, kind, home, ids, ops, seed, threads)
    else:  # threads only (local Qdrant is one process): they share one handle, as in an app
        with open_memory(kind, home) as shared:
            results = _in_threads(1, _updater, kind, home, ids, ops, seed, threads, shared)
    done = [item for r in results if r[0] == "done" for item in r[1]]
    out.errors.update(f"process exit code {r[1]}" for r in results if r[0] == "exit")
    out.errors.update(text for op, _, text, _ in done if op == "error")
    out.calls = len(done)
    out.found["successful updates"] = sum(op == "update" for op, *_ in done)
    out.found["successful deletes"] = sum(op == "delete" for op, *_ in done)
    for name in ("lost writes", "wrong old texts", "phantom events"):
        out.found[name] += 0
    with open_memory(kind, home) as m:
        check_history(m, ids, done, out)
    return out


# -- concurrent open -------------------------------------------------------------------------------------------

def _opener(i: int, barrier: Any, queue: Any, base: Path, rounds: int) -> None:
    embedder = HashEmbedder()
    outcomes = []
    for r in range(rounds):
        barrier.wait(timeout=300)
        try:
            store = SQLiteStore(base / f"round{r}" / "engram.db")
            try:
                store.bind_embedder(embedder.name, embedder.dimension)
                store.count()
            finally:
                store.close()
            outcomes.append("ok")
        except Exception as exc:  # noqa: BLE001 - every failure is the finding, whatever its type
            corrupt = isinstance(exc, CorruptStore) or "malformed" in str(exc) or "corrupt" in str(exc).lower()
            outcomes.append(("corrupt: " if corrupt else "failed: ") + f"{type(exc).__name__}: {exc}"[:200])
    queue.put(("done", outcomes))


def run_opens(base: Path, processes: int, rounds: int) -> Races:
    out = Races("concurrent open", "sqlite")
    for item in _in_processes(processes, _opener, base, rounds):
        if item[0] != "done":
            out.errors[f"process exit code {item[1]}"] += 1
            continue
        out.calls += len(item[1])
        for outcome in item[1]:
            if outcome != "ok":
                out.found["corruption reported" if outcome.startswith("corrupt") else "failures"] += 1
                out.examples.append(outcome)
    out.found["failures"] += sum(out.errors.values())
    out.found["corruption reported"] += 0
    return out
