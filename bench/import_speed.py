"""Bulk import against the raw embedder: `engram import` of N LoCoMo-style turns, and the same texts embedded
alone, side by side in one run (SQLite store, MiniLM embedder).

    python bench/import_speed.py [N] [--repeat 3] [--device cpu|cuda|cuda:N|auto] [--precision auto|fp32|fp16]
                                 [--batch-size B] [--workers W]

Turns are synthetic LoCoMo-shaped conversations (bench/_turns.py: two speakers, dated sessions of 20 turns,
dia_ids, 600 turns a conversation; each conversation a scope), written as one LoCoMo JSON file and read with the
CLI's reader. Each repeat embeds the texts alone (the embedder's texts/s), then imports the file's turns through
the CLI's path (engram.transfer.import_items) into a fresh store, then imports them again (a resumed import:
everything known, nothing embedded). Medians are quoted. --device, --precision and --batch-size are the
embedder_* settings (docs/gpu.md); --workers the processes finding graph rules ahead (default: as `engram import`
chooses). CPU time counts those processes too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _turns import write_locomo_like

from engram import Memory
from engram.ahead import auto_workers
from engram.transfer import import_items, read_locomo


def cpu_seconds() -> float:
    """CPU time of this process and of its ended children (an import's rule workers end with it)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def line(name: str, runs: list[float], shape: str, unit: str) -> None:
    each = ", ".join(shape.format(r) for r in runs)
    print(f"{name:<24}{shape.format(statistics.median(runs)):>9} {unit:<8} (runs: {each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    workers = auto_workers(args.n) if args.workers is None else args.workers
    embedder = {"embedder_device": args.device, "embedder_precision": args.precision,
                "embedder_batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        source = home / "turns.json"
        write_locomo_like(source, args.n)
        items = read_locomo(source)
        texts = [item.content for item in items]
        raw, full, again, raw_cpu, full_cpu = [], [], [], [], []
        for run in range(args.repeat):
            with Memory(home=home, db_path=home / f"import{run}.db", **embedder) as memory:
                memory.embedder.embed(texts[:256])  # loaded (and, on a GPU, warmed up) before the clocks start
                started, cpu = time.perf_counter(), cpu_seconds()
                memory.embedder.embed(texts)
                raw.append(args.n / (time.perf_counter() - started))
                raw_cpu.append(args.n / (cpu_seconds() - cpu))
                started, cpu = time.perf_counter(), cpu_seconds()
                counts = import_items(memory, items, workers=workers)
                full.append(args.n / (time.perf_counter() - started))
                full_cpu.append(args.n / (cpu_seconds() - cpu))
                assert counts["ADD"] + counts["NOOP"] == args.n, counts
                started = time.perf_counter()
                assert import_items(memory, items)["ADD"] == 0
                again.append(args.n / (time.perf_counter() - started))
                runtime = getattr(memory.embedder, "runtime", None)
        print(f"== {args.n:,} LoCoMo-style turns, {runtime}, {workers} rule workers ==")
        ratios = [f / r for f, r in zip(full, raw, strict=True)]
        line("embedder alone", raw, "{:,.0f}", "texts/s")
        line("engram import", full, "{:,.0f}", "texts/s")
        line("import / embedder", ratios, "{:.1%}", "")
        line("resumed import (known)", again, "{:,.0f}", "texts/s")
        # on a machine others share, CPU time is steadier: texts per second of this process's CPU (all threads)
        line("embedder alone, CPU", raw_cpu, "{:,.0f}", "texts/s")
        line("engram import, CPU", full_cpu, "{:,.0f}", "texts/s")
        line("import / embedder, CPU", [f / r for f, r in zip(full_cpu, raw_cpu, strict=True)], "{:.1%}", "")


if __name__ == "__main__":
    main()
