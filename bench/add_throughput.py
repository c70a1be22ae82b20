"""add(infer=False) throughput next to the raw embedder's, measured side by side on the same texts.

    python bench/add_throughput.py [--texts 2000] [--rounds 3]

Store overhead = (time of add - time of embedding the same texts) / time of embedding, for adds of one
message at a time and of 64 messages per call. Rounds alternate embedder and add to share machine noise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sentences, timed

from engram import Memory


def embed_each(memory: Memory, chunks: list[list[str]]) -> None:
    for chunk in chunks:
        memory.embedder.embed(chunk)


def add_each(memory: Memory, chunks: list[list[str]]) -> None:
    for i, chunk in enumerate(chunks):
        memory.add([{"content": text} for text in chunk], user_id=f"u{i % 100}", infer=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 64):
            embed_ms, add_ms = [], []
            for r in range(args.rounds):
                texts = sentences(args.texts, seed=100 + r)
                chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
                with Memory(home=tmp, db_path=Path(tmp) / f"b{batch}r{r}.db") as memory:
                    memory.embedder.embed(["warm up"])
                    embed_ms.append(timed(partial(embed_each, memory, chunks)))
                    add_ms.append(timed(partial(add_each, memory, chunks)))
            e, a = statistics.median(embed_ms), statistics.median(add_ms)
            print(f"batch {batch:>2}: embedder {args.texts / e * 1000:7.1f} texts/s   add(infer=False) "
                  f"{args.texts / a * 1000:7.1f} texts/s   store overhead {100 * (a - e) / e:5.1f} % of embedding time"
                  f"   (medians of {args.rounds} rounds of {args.texts} texts)")


if __name__ == "__main__":
    main()
