"""Server sessions and MCP client configurations of the docs (the rules are in doc_blocks.py): a real
`engram serve` started as the doc starts it, and the official MCP SDK's client connecting as the doc's JSON
says."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import anyio
import httpx
import httpx2
from _server import free_port
from doc_blocks import Block
from doc_checks import engram_parses, option
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

SHELL_NOISE = {"_", "SHLVL", "PWD", "OLDPWD"}  # what bash sets by itself, not what a block exported


class ServerSession:
    """The `engram serve` a session's first block names, running in the background while its other blocks run."""

    def __init__(self, first: Block, env: dict[str, str], work: Path) -> None:
        lines = [line for line in first.code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        words = shlex.split(lines[0]) if len(lines) == 1 else []
        assert words[:2] == ["engram", "serve"], f"{first.where}: a server session starts with one engram serve line"
        engram_parses(words[1:])
        self.doc_port = option(words, "--port")
        assert self.doc_port, f"{first.where}: name the --port, so that the examples after it can name it too"
        self.port = free_port()
        self.command = [w if w != self.doc_port else str(self.port) for w in words]
        self.env, self.work, self.where = dict(env), work, first.where
        self.log = work / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerSession:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.command, cwd=self.work, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                status = self.process.returncode
                raise AssertionError(f"{self.where}: engram serve exited with {status}:\n{self.output}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self._stop()
        raise AssertionError(f"{self.where}: engram serve did not answer /health within 90 s:\n{self.output}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        status = self._stop()
        if kind is None:  # a clean stop: SIGTERM ends it (uvicorn exits 0 or re-raises the signal), nothing failed
            assert status in (0, -signal.SIGTERM), f"{self.where}: engram serve exited with {status}:\n{self.output}"
            assert not re.search(r"Traceback| ERROR ", self.output), f"{self.where}: the server logged\n{self.output}"

    def _stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def text(self, block: Block) -> str:
        """The block, naming the server's real port where it names the doc's (`127.0.0.1:8765`)."""
        return re.sub(rf":{self.doc_port}\b", f":{self.port}", block.code)

    def run_shell(self, block: Block) -> subprocess.CompletedProcess[str]:
        """Run a shell block as the next command of the session's shell: what it exports carries over."""
        after = self.work / "env-after"
        script = f"{self.text(block)}\nenv -0 > {shlex.quote(str(after))}\n"
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=180, check=False)
        if done.returncode == 0:
            pairs = (item.split("=", 1) for item in after.read_text().split("\0") if "=" in item)
            self.env = {name: value for name, value in pairs if name not in SHELL_NOISE}
        return done

    def run_python(self, block: Block) -> subprocess.CompletedProcess[str]:
        """Run a Python block in a process of its own, with the session's environment."""
        runner = Path(__file__).with_name("doc_blocks.py")
        return subprocess.run([sys.executable, str(runner), str(block.path), str(block.line)], input=self.text(block),
                              cwd=self.work, env=self.env, capture_output=True, text=True, timeout=180, check=False)


# -- MCP client configurations -----------------------------------------------------------------------------------

def expand(text: str, env: dict[str, str]) -> str:
    """${VAR} and ${VAR:-default}, as Claude Code expands them in .mcp.json; an unset ${VAR} is an error here."""
    def value(found: re.Match[str]) -> str:
        name, default = found.group(1), found.group(3)
        assert name in env or default is not None, f"${{{name}}} is not set"
        return env.get(name, default or "")

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", value, text)


async def _tools(session: ClientSession) -> list[str]:
    await session.initialize()
    names = [tool.name for tool in (await session.list_tools()).tools]
    listed = await session.call_tool("list_memories", {})
    assert not listed.is_error, listed.content
    return names


async def _connect(entry: dict[str, Any], env: dict[str, str], errlog: TextIO) -> list[str]:
    if "command" in entry:
        command = shutil.which(expand(entry["command"], env), path=env["PATH"])
        assert command, f"{entry['command']} is not on PATH"
        args = [expand(a, env) for a in entry.get("args", [])]
        if Path(command).name == "engram":
            engram_parses(args)  # a clear usage error rather than a closed connection
        params = StdioServerParameters(command=command, args=args,
                                       env={**env, **{k: expand(v, env) for k, v in entry.get("env", {}).items()}})
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            return await _tools(session)
    assert entry.get("type", "http") in ("http", "streamable-http"), f"transport {entry.get('type')} is not checked"
    headers = {k: expand(v, env) for k, v in entry.get("headers", {}).items()}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http, \
            streamable_http_client(expand(entry["url"], env), http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        return await _tools(session)


def connect_all(config: str, env: dict[str, str], work: Path) -> dict[str, list[str]]:
    """Connect to each server of an MCP client configuration; the tools each one lists."""
    servers = json.loads(config)["mcpServers"]
    assert servers, "the configuration names no server"
    log = work / "mcp-stdio.log"
    tools = {}
    for name, entry in servers.items():
        with open(log, "a") as errlog:
            try:
                tools[name] = anyio.run(_connect, entry, env, errlog)
            except Exception as error:
                raise AssertionError(f"MCP server {name}: {error!r}\n{log.read_text()[-3000:]}") from error
    return tools
