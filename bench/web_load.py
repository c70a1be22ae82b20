"""How long the web page takes to show a user with 10,000 memories: Debian's Chromium (Playwright) opens
`/#/u/big` on a real `engram serve` and waits until the first page of 50 rows and the total ("of 10,000") show.

    python bench/web_load.py [--memories 10000] [--runs 5] [--models DIR]

The memories are written through add(infer=False) in lists of 1,000 with the real model's vectors of 20 sentences
reused (the list never reads vectors; embedding 10k sentences would dominate the run). Prints each run in ms,
from the start of the navigation (performance.now()), the first one cold.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_load import bench_home, free_port, start

from engram.config import Settings
from engram.embed.base import Embedder
from engram.embed.local import MiniLMEmbedder
from engram.memory import Memory
from engram.server.keys import KeyStore
from engram.server.tenancy import tenant_settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def fill(home: Path, count: int) -> None:
    real = MiniLMEmbedder(home / "models")
    base = real.embed([f"Something about topic {i}" for i in range(20)])

    class Reused(Embedder):
        name, dimension = real.name, real.dimension

        def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
            return np.stack([base[i % len(base)] for i in range(len(texts))])

    with Memory(tenant_settings(Settings(home=home), "bench"), embedder=Reused()) as memory:
        for first in range(0, count, 1000):
            memory.add([f"Fact {i} about topic {i % 20}" for i in range(first, min(first + 1000, count))],
                       user_id="big", infer=False)


def measure(url: str, key: str, count: int, runs: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    ready = ("n => document.querySelectorAll('#memories li').length === Math.min(50, n) && "
             "/of [0-9,]+$/.test(document.getElementById('list-count').textContent)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + "/")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("#shell:not([hidden])")
        timings = []
        for _ in range(runs):
            page.goto("about:blank")
            page.goto(url + "/#/u/big")
            page.wait_for_function(ready, arg=count, polling="raf")
            timings.append(page.evaluate("performance.now()"))
        browser.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", type=Path, help="a models directory with the exported ONNX model")
    args = parser.parse_args()
    with bench_home(args.models) as home:
        fill(home, args.memories)
        key = KeyStore(home / "keys.db").create("bench", admin=True)[0]
        port = free_port()
        server = start(home, port, 1)
        try:
            timings = measure(f"http://127.0.0.1:{port}", key, args.memories, args.runs)
        finally:
            server.terminate()
            server.wait(60)
    print(f"web page, user with {args.memories:,} memories, first page of 50 and the total shown:")
    print("  runs (ms): " + ", ".join(f"{t:.0f}" for t in timings))
    print(f"  cold {timings[0]:.0f} ms, warm median {statistics.median(timings[1:] or timings):.0f} ms")


if __name__ == "__main__":
    main()
