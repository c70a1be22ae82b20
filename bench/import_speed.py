"""Bulk import against the raw embedder: `engram import` of N LoCoMo-style turns, and the same texts embedded
alone, side by side in one run (SQLite store, MiniLM embedder).

    python bench/import_speed.py [N] [--conversations 50] [--session 20] [--repeat 3]

Turns are synthetic conversation lines ("Speaker: sentence"), `session` turns a session sharing its date, as
LoCoMo's are; conversations are scopes. Each repeat embeds the texts alone (the embedder's texts/s), then
imports a JSONL file of them through the CLI's path (engram.transfer.import_items) into a fresh store, then
imports it again (a resumed import: everything known, nothing embedded). Medians are quoted.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sentences

from engram import Memory
from engram.transfer import import_items, read_jsonl

SPEAKERS = ["Caroline", "Melanie", "Jon", "Gina", "Maria", "John", "Tim", "Joanna", "Nate", "Evan"]


def write_turns(path: Path, n: int, conversations: int, session: int) -> None:
    rng = random.Random(4)
    texts = sentences(n, seed=9)
    with path.open("w") as out:
        per = -(-n // conversations)
        for i, text in enumerate(texts):  # conversation after conversation, as LoCoMo files hold them
            conv, turn = divmod(i, per)
            row = {"memory": f"{rng.choice(SPEAKERS)}: {text}", "user_id": f"conv-{conv}", "role": "user",
                   "source": f"D{turn // session + 1}:{turn % session + 1}",
                   "created_at": 1.68e9 + 86400.0 * (turn // session)}
            out.write(json.dumps(row) + "\n")


def line(name: str, runs: list[float], shape: str, unit: str) -> None:
    each = ", ".join(shape.format(r) for r in runs)
    print(f"{name:<24}{shape.format(statistics.median(runs)):>9} {unit:<8} (runs: {each})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=20_000)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--session", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        source = home / "turns.jsonl"
        write_turns(source, args.n, args.conversations, args.session)
        items = read_jsonl(source)
        texts = [item.content for item in items]
        raw, full, again = [], [], []
        for run in range(args.repeat):
            with Memory(home=home, db_path=home / f"import{run}.db") as memory:
                started = time.perf_counter()
                memory.embedder.embed(texts)
                raw.append(args.n / (time.perf_counter() - started))
                started = time.perf_counter()
                counts = import_items(memory, items)
                full.append(args.n / (time.perf_counter() - started))
                assert counts["ADD"] + counts["NOOP"] == args.n, counts
                started = time.perf_counter()
                assert import_items(memory, items)["ADD"] == 0
                again.append(args.n / (time.perf_counter() - started))
        print(f"== {args.n:,} turns, {args.conversations} conversations, sessions of {args.session} turns ==")
        ratios = [f / r for f, r in zip(full, raw, strict=True)]
        line("embedder alone", raw, "{:,.0f}", "texts/s")
        line("engram import", full, "{:,.0f}", "texts/s")
        line("import / embedder", ratios, "{:.1%}", "")
        line("resumed import (known)", again, "{:,.0f}", "texts/s")


if __name__ == "__main__":
    main()
