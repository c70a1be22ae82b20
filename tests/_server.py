"""A real `engram serve` process on a free loopback port, for the server's tests (not a test module itself)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a server process: this one without ENGRAM_* / OPENAI_*, engram importable, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGRAM_", "OPENAI_"))}
    env.update({"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ENGRAM_SERVER_RATE_LIMIT": "0", **extra})
    return env


def engram(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`engram ARGS --home HOME`, run to its end."""
    return subprocess.run([sys.executable, "-m", "engram.cli", *args, "--home", str(home)], env=server_env(**env),
                          check=False, capture_output=True, text=True, timeout=120)


def make_home(path: Path, models: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "models").symlink_to(models, target_is_directory=True)
    return path


@dataclass
class Server:
    home: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return (self.home / f"server-{self.port}.log").read_text(errors="replace")

    def start(self, timeout: float = 90) -> Server:
        self._log = log = open(self.home / f"server-{self.port}.log", "wb")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engram.cli", "serve", "--port", str(self.port), "--home", str(self.home),
             *self.args],
            env=server_env(**self.env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"engram serve exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"engram serve did not become ready:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server (its whole process group for SIGKILL) and wait; its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            if sig == signal.SIGKILL:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def stop_cleanly(self) -> bool:
        """SIGTERM, then whether it shut down gracefully (uvicorn re-raises the signal once it has finished)."""
        return self.stop(signal.SIGTERM) in (0, -signal.SIGTERM) and "Finished server process" in self.log

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        if key:
            headers["Authorization"] = f"Token {key}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)
