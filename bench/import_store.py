"""The store side of a bulk import alone: `engram import` of N LoCoMo-style turns with an embedder that costs
nothing, so what is measured is everything a fast (GPU) embedder would leave (SQLite store).

    python bench/import_store.py [N ...] [--pool 2000] [--workers W] [--profile]

For each N (default 10,000, 100,000 and 1,000,000), in a fresh process: synthetic LoCoMo-style conversations
(two speakers, dated sessions of 20 turns, dia_ids, 600 turns a conversation; bench/_turns.py) are written as
one LoCoMo JSON file, read with the CLI's reader (engram.transfer.read_locomo), imported into a fresh store through
the CLI's path (engram.transfer.import_items -> Memory._add_raw), then imported again (a resumed import: all
known). The embedder hands each text one of `pool` real MiniLM vectors, picked by a hash of the text
(bench/_fakes.PoolEmbedder). --workers: the processes finding graph rules ahead of the writes (default: as
`engram import` chooses for N). Printed: texts/s of the import and of the rerun, in wall time, per second of the
writer process's CPU time (what bounds the import when the rules are found elsewhere) and per second of all CPU
time (the workers' included), the read time, peak RSS and the database's bytes per memory. --one-user puts
every turn in one scope (`engram import --user`); --profile prints the import's top functions (cProfile, by own
time or with `--profile cumulative`).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sentences
from _fakes import PoolEmbedder
from _turns import write_locomo_like

from engram import Memory
from engram.ahead import auto_workers
from engram.transfer import import_items, read_locomo


def real_pool(home: Path, size: int) -> Path:
    """`size` MiniLM vectors of synthetic sentences, saved where the runs below read them."""
    with Memory(home=home, db_path=home / "pool.db") as memory:
        pool = memory.embedder.embed(sentences(size, seed=3))
    path = home / "pool.npy"
    np.save(path, pool)
    return path


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent's)."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return float("nan")


def all_cpu() -> float:
    """CPU time of this process and of its ended children (an import's rule workers end with it)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def one(n: int, pool: Path, home: Path, profile: str | None, one_user: bool, workers: int | None) -> None:
    source = home / f"turns{n}.json"
    write_locomo_like(source, n)
    started = time.perf_counter()
    items = read_locomo(source, user_id="alice" if one_user else None)
    read_s = time.perf_counter() - started
    db = home / f"import{n}.db"
    used = auto_workers(n) if workers is None else workers
    with Memory(home=home, db_path=db, embedder=PoolEmbedder(np.load(pool))) as memory:
        profiler = cProfile.Profile() if profile else None
        started, cpu, every = time.perf_counter(), time.process_time(), all_cpu()
        if profiler:
            profiler.enable()
        counts = import_items(memory, items, workers=used)
        if profiler:
            profiler.disable()
        full, full_cpu = n / (time.perf_counter() - started), n / (time.process_time() - cpu)
        full_all = n / (all_cpu() - every)
        assert counts == {"ADD": n, "NOOP": 0}, counts
        started, cpu = time.perf_counter(), time.process_time()
        assert import_items(memory, items, workers=used) == {"ADD": 0, "NOOP": n}
        again, again_cpu = n / (time.perf_counter() - started), n / (time.process_time() - cpu)
    size = sum(p.stat().st_size for p in home.glob(f"import{n}.db*"))
    rss = peak_rss_mb()
    print(f"{n:>10,} turns{' (one user)' if one_user else ''}, {used} rule workers   import {full:>7,.0f} texts/s "
          f"({full_cpu:,.0f} per writer CPU s, {full_all:,.0f} per CPU s)   rerun, all known {again:>7,.0f} "
          f"texts/s ({again_cpu:,.0f} per CPU s)   read {read_s:5.1f} s   peak RSS {rss:,.0f} MB   "
          f"{size / n:,.0f} B/memory", flush=True)
    if profiler:
        pstats.Stats(profiler).sort_stats(profile or "cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--pool", type=int, default=2000, help="real MiniLM vectors the texts share")
    parser.add_argument("--profile", nargs="?", const="tottime", choices=["tottime", "cumulative"])
    parser.add_argument("--one-user", action="store_true", help="every turn in one scope (import --user)")
    parser.add_argument("--workers", type=int, help="rule worker processes (default: as engram import chooses)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one size
    parser.add_argument("--pool-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.pool_file, args.home, args.profile, args.one_user, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        pool = real_pool(home, args.pool)
        print(f"== store side of engram import (SQLite, free embedder over {args.pool:,} real MiniLM vectors) ==")
        for n in args.sizes:
            child = [sys.executable, __file__, "--one", str(n), "--pool-file", str(pool), "--home", str(home)]
            flags = [f"--profile={args.profile}"] * bool(args.profile) + ["--one-user"] * args.one_user
            flags += [f"--workers={args.workers}"] * (args.workers is not None)
            subprocess.run(child + flags, check=True)


if __name__ == "__main__":
    main()
