"""Cold start of `engram search` (a new process each time: interpreter, imports, model load, query).

    python bench/cli_cold_start.py [--runs 15] [--memories 1000]

The data directory is prepared first (model exported, memories added), as on a machine in use.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import sentences, summary

from engram import Memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--memories", type=int, default=1000)
    args = parser.parse_args()
    engram = Path(sys.executable).with_name("engram")
    with tempfile.TemporaryDirectory() as home:
        with Memory(home=home) as memory:
            texts = sentences(args.memories)
            for i in range(0, len(texts), 64):
                memory.add([{"content": t} for t in texts[i:i + 64]], user_id="alice", infer=False)
        env = {**os.environ, "ENGRAM_HOME": home}
        samples = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([str(engram), "search", "what does my sister like?", "--user", "alice", "--limit", "5"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            samples.append((time.perf_counter() - start) * 1000)
        print(summary(f"`engram search` cold start ({args.memories} memories)", samples))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        print(f"{'(bare python interpreter start, for scale)':<44} {(time.perf_counter() - start) * 1000:7.2f} ms")


if __name__ == "__main__":
    main()
