"""The figures of RELIABILITY.md for the embedded stores (SQLite; Qdrant local mode where it applies), measured.

    python bench/reliability.py [--quick] [--seed N] [--only reads writes duplicates updates crashes opens cost]

Every trial is randomized from one seed, printed first (rerun a failure with --seed). Embeddings come from a
hash-seeded fake embedder (their quality is irrelevant here). Ends with a summary table; exits 1 when a figure
is missed. --quick (1-2 minutes) runs fewer trials: trial-count minimums are then reported, not judged.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from _cost import run_cost
from _crash import KINDS, run_crashes
from _isolation import run_reads
from _ownership import run_writes
from _races import Races, run_duplicates, run_lost_updates, run_opens
from _report import Figure, at_least, stage, table, zero

FULL = {"reads": {"sqlite": 30_000, "qdrant": 10_000}, "writes": {"sqlite": 600, "qdrant": 150},
        "dup_rounds": 100, "qdrant_dup_rounds": 30, "update_ops": 100, "qdrant_update_ops": 30, "kills": 50,
        "open_rounds": 27, "others": 100_000, "samples": 300}
QUICK = {"reads": {"sqlite": 10_000, "qdrant": 1_000}, "writes": {"sqlite": 150, "qdrant": 40},
         "dup_rounds": 30, "qdrant_dup_rounds": 8, "update_ops": 30, "qdrant_update_ops": 8, "kills": 10,
         "open_rounds": 9, "others": 100_000, "samples": 100}
READ_POPULATION = 10_000  # read trials per population of owners (a fresh store and id family each time)


def reads(base: Path, seed: int, size: dict, full: bool) -> list[Figure]:
    figures = []
    for kind, count in size["reads"].items():
        ran = [run_reads(kind, base / f"{kind}{n}", seed + n, min(READ_POPULATION, count - n))
               for n in range(0, count, READ_POPULATION)]
        trials = sum(r.count for r in ran)
        leaks = [leak for r in ran for leak in r.leaks]
        untyped = [u for r in ran for u in r.untyped]
        drift = sum(r.drift for r in ran)
        ops = sum((r.ops for r in ran), start=Counter())
        errors = sum((r.errors for r in ran), start=Counter())
        print(f"   {kind}: {trials} trials ({dict(ops)}), {sum(r.with_results for r in ran)} with results; typed "
              f"errors {dict(errors)}; {len(ran)} population(s) of ~{ran[0].owners} owner scopes")
        for line in (leaks + untyped)[:8]:
            print("   !", line)
        figures.append(at_least("no read crosses a scope", kind, "trials", trials, 10_000, full))
        figures.append(zero("no read crosses a scope", kind, "leaks", len(leaks) + drift, f"{trials}",
                            f"{drift} of them changes outside the scope by delete_all/revert" if drift else ""))
        figures.append(zero("no read crosses a scope", kind, "untyped/store errors", len(untyped), f"{trials}"))
    return figures


def writes(base: Path, seed: int, size: dict, full: bool) -> list[Figure]:
    figures = []
    for kind, adds in size["writes"].items():
        out = run_writes(kind, base / kind, seed, adds)
        attempted = sum(n for k, n in out.by_id.items() if k.endswith("attempted"))
        reached = sum(n for k, n in out.by_id.items() if k.endswith("another owner's memory"))
        print(f"   {kind}: {out.adds} adds through every scope shape changed {out.changed} memories, "
              f"{out.rejected} proposals rejected; {out.direct} forged change sets; by id: {dict(out.by_id)}")
        for line in (out.violations + out.direct_accepted)[:8]:
            print("   !", line)
        figures.append(zero("no write crosses an owner", kind, "changes outside the rule", len(out.violations),
                            f"{out.adds} adds", f"{out.rule_disagreements} cases where engram.ownership.may_change "
                            "disagrees with the rule as README states it" if out.rule_disagreements else ""))
        figures.append(zero("no write crosses an owner", kind, "forged change sets accepted", len(out.direct_accepted),
                            f"{out.direct} sets"))
        figures.append(zero("no write crosses an owner", kind, "owner fields moved", out.by_id["owner fields moved"],
                            f"{attempted} by id"))
        figures.append(Figure("no write crosses an owner", kind, f"{reached}/{attempted} by-id calls changed "
                              "another owner's memory", "(not scope-checked)", None, f"{attempted} by id",
                              "update/delete/revert take no owner: any caller holding an id reaches its memory"))
    return figures


def _race_figure(prop: str, out: Races, what: str, trials: str) -> Figure:
    failed = sum(out.errors.values())
    for line in out.examples[:5] + [f"{n}x {e}" for e, n in out.errors.most_common(3)]:
        print("   !", line)
    figure = zero(prop, out.store, what, out.found[what], trials, f"{failed} calls failed" if failed else "")
    figure.ok = figure.ok and not failed
    return figure


def duplicates(base: Path, seed: int, size: dict, full: bool) -> list[Figure]:
    figures = []
    for kind, writers, processes, rounds in (("sqlite", 6, True, size["dup_rounds"]),
                                            ("sqlite", 8, False, size["dup_rounds"]),
                                            ("qdrant", 8, False, size["qdrant_dup_rounds"])):
        how = f"{writers} {'processes' if processes else 'threads'}"
        out = run_duplicates(kind, base / f"{kind}-{how}", seed, rounds, writers, processes)
        print(f"   {kind}, {how}: {rounds} rounds, {out.calls} add calls, {out.found['memories']} distinct memories")
        figures.append(_race_figure(f"exact duplicates stored once ({how})", out, "extra copies", f"{out.calls} adds"))
    return figures


def updates(base: Path, seed: int, size: dict, full: bool) -> list[Figure]:
    figures = []
    runs = (("sqlite", 6, 2, size["update_ops"]), ("qdrant", 1, 8, size["qdrant_update_ops"]))
    for kind, processes, threads, ops in runs:
        how = f"{processes} processes x {threads} threads" if processes > 1 else f"{threads} threads"
        out = run_lost_updates(kind, base / kind, seed, processes, threads, ops)
        print(f"   {kind}, {how}: {out.calls} calls, {dict(out.found)}")
        trials = f"{out.found['successful updates']} updates"
        figures.append(_race_figure(f"no lost update ({how})", out, "lost writes", trials))
        phantom = out.found["phantom events"]
        figures.append(zero(f"true history ({how})", kind, "wrong old texts", out.found["wrong old texts"],
                            f"{out.found['events checked']} events",
                            f"{phantom} UPDATE events of no successful call" if phantom else ""))
    return figures


def crashes(base: Path, seed: int, size: dict, full: bool) -> list[Figure]:
    figures = []
    for n, kind in enumerate(KINDS):
        out = run_crashes(kind, base / kind, seed + n, size["kills"])
        print(f"   {kind}: {out.kills} kills, {out.mid_add} with an add in flight ({out.whole} of those found whole), "
              f"{out.acked} acknowledged adds checked, {sum(out.superseded.values())} versions superseded")
        for line in out.examples[:6]:
            print("   !", line)
        figures.append(at_least(f"crash safety ({kind} adds)", "sqlite", "kills", out.kills, 50, full))
        figures.append(zero(f"crash safety ({kind} adds)", "sqlite", "failures", sum(out.failures.values()),
                            f"{out.kills} kills", ", ".join(f"{k}: {v}" for k, v in out.failures.items())))
    return figures


def opens(base: Path, seed: int, size: dict, full: bool) -> list[Figure]:
    out = run_opens(base, 8, size["open_rounds"])
    print(f"   {out.calls} opens of {size['open_rounds']} new databases by 8 processes each: {dict(out.found)}")
    for line in out.examples[:5]:
        print("   !", line)
    return [at_least("concurrent open (8 processes)", "sqlite", "opens", out.calls, 216, full),
            zero("concurrent open (8 processes)", "sqlite", "failures", out.found["failures"], f"{out.calls} opens"),
            zero("concurrent open (8 processes)", "sqlite", "locks reported as corruption",
                 out.found["corruption reported"], f"{out.calls} opens")]


def cost(base: Path, seed: int, size: dict, full: bool) -> list[Figure]:
    out = run_cost(base, seed, size["others"], size["samples"])
    print(f"   {out.others} other users written and cached in {out.populate_s:.0f} s; matrices cached: {out.cached}")
    figures = []
    for name in ("add", "search"):
        alone, crowded = getattr(out, name)
        print(f"   {name}: median {alone:.3f} ms alone, {crowded:.3f} ms among {out.others} users: "
              f"x{out.ratio(name):.2f}")
        figures.append(Figure(f"cost with other users ({name})", "sqlite", f"x{out.ratio(name):.2f} "
                              f"({alone:.2f} -> {crowded:.2f} ms)", "<= x1.20", out.ratio(name) <= 1.2,
                              f"{out.samples} each"))
    for name, (alone, crowded) in out.parts.items():
        print(f"   of which store.{name}(): {alone:.3f} ms alone, {crowded:.3f} ms among others: "
              f"x{crowded / alone:.2f}")
    return figures


STAGES: dict[str, Callable[[Path, int, dict, bool], list[Figure]]] = {
    "reads": reads, "writes": writes, "duplicates": duplicates, "updates": updates, "crashes": crashes,
    "opens": opens, "cost": cost,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer trials (1-2 minutes)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every random choice (default: a new one)")
    parser.add_argument("--only", nargs="+", choices=sorted(STAGES), help="run only these stages")
    args = parser.parse_args()
    for name in list(os.environ):  # hermetic: the developer's engram / OpenAI settings must not leak in
        if name.startswith(("ENGRAM_", "OPENAI_")):
            del os.environ[name]
    logging.getLogger("engram").setLevel(logging.ERROR)  # rejected proposals are expected here, by the thousand
    seed = random.randrange(2**31) if args.seed is None else args.seed
    size = QUICK if args.quick else FULL
    print(f"seed {seed} (rerun: bench/reliability.py{' --quick' if args.quick else ''} --seed {seed}); "
          f"{'quick' if args.quick else 'full'} run; Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    figures: list[Figure] = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="engram-reliability-") as tmp:
        for name, run in STAGES.items():
            if args.only and name not in args.only:
                continue
            with stage(name):
                figures += run(Path(tmp) / name, seed, size, not args.quick)
    print(f"\n== summary (seed {seed}, {time.monotonic() - start:.0f} s)\n")
    print(table(figures))
    missed = [f for f in figures if f.ok is False]
    print(f"\n{len(missed)} figure(s) missed" + (f"; rerun with --seed {seed}" if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
