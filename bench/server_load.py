"""Load on `engram serve` over loopback: search and add(infer=False) at 1, 8 and 32 concurrent clients
(and /v1/ping/, which costs only the server's own part: key check, routing, JSON) (async
httpx, each client one keep-alive connection), and the same library calls in-process side by side, so the
server's overhead shows.

    python bench/server_load.py [--seconds 5] [--clients 1 8 32] [--memories 1000] [--workers 1]

It starts its own server on a free port over a temporary home (the embedding model is exported there on the
first run, or taken from --models). Prints req/s, p50 and p99 in ms and errors for each row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pct, queries, sentences

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def bench_home(models: Path | None) -> Iterator[Path]:
    """A temporary engram home, removed after; `models`: a models directory (the exported ONNX model) linked in."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if models:
            (home / "models").symlink_to(models.resolve(), target_is_directory=True)
        yield home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGRAM_", "OPENAI_"))}
    env.update({"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ENGRAM_SERVER_RATE_LIMIT": "0"})
    process = subprocess.Popen([sys.executable, "-m", "engram.cli", "serve", "--port", str(port), "--home", str(home),
                                "--workers", str(workers), "--log-level", "warning"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


async def drive(url: str, clients: int, seconds: float, request: str) -> tuple[int, list[float], int]:
    """`clients` loops, each sending one request after another for `seconds`: (done, latencies in ms, errors)."""
    latencies: list[float] = []
    errors = 0
    asked = queries(500)
    fresh = iter(sentences(2_000_000, seed=int(time.time())))
    deadline = time.perf_counter() + seconds

    async def one(n: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            i = n
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if request == "ping":  # the server's own cost: key check, routing, JSON; no embedding
                    response = await http.get("/v1/ping/")
                elif request == "search":
                    body = {"query": asked[i % len(asked)], "user_id": f"u{i % 10}"}
                    response = await http.post("/search", json=body)
                else:
                    response = await http.post("/memories", json={"messages": next(fresh), "user_id": f"u{i % 10}",
                                                                  "infer": False})
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200
                i += clients

    await asyncio.gather(*(one(n) for n in range(clients)))
    return len(latencies), latencies, errors


def library_side(home: Path, count: int) -> dict[str, list[float]]:
    """The same calls on a Memory in this process (its own database in the same home)."""
    from engram import Memory

    timings: dict[str, list[float]] = {"search": [], "add": []}
    with Memory(home=home, db_path=home / "library.db") as memory:
        for i, text in enumerate(sentences(count, seed=5)):
            memory.add(text, user_id=f"u{i % 10}", infer=False)
        asked, fresh = queries(500), sentences(count, seed=7)
        for i in range(count):
            started = time.perf_counter()
            memory.search(asked[i % len(asked)], user_id=f"u{i % 10}")
            timings["search"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            memory.add(fresh[i], user_id=f"u{i % 10}", infer=False)
            timings["add"].append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--memories", type=int, default=1000, help="memories stored before searching")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--models", type=Path, help="a models directory with the exported ONNX model")
    args = parser.parse_args()
    with bench_home(args.models) as home:
        port = free_port()
        server = start(home, port, args.workers)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                for i, text in enumerate(sentences(args.memories)):
                    http.post("/memories", json={"messages": text, "user_id": f"u{i % 10}", "infer": False})
            print(f"engram serve, {args.workers} worker(s), {args.memories} memories over 10 users, "
                  f"{args.seconds:g} s per row")
            print(f"{'request':<8} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            for request in ("ping", "search", "add"):
                for clients in args.clients:
                    done, latencies, errors = asyncio.run(drive(url, clients, args.seconds, request))
                    print(f"{request:<8} {clients:>7} {done / args.seconds:>8.0f} {pct(latencies, 50):>8.2f} "
                          f"{pct(latencies, 99):>8.2f} {errors:>7}")
        finally:
            server.terminate()
            server.wait(60)
        side = library_side(home, 300)
        print("library in-process, 1 caller (the server's overhead is the 1-client p50 minus this p50):")
        for request, timings in side.items():
            print(f"{request:<8} p50 {pct(timings, 50):.2f} ms  p99 {pct(timings, 99):.2f} ms")


if __name__ == "__main__":
    main()
