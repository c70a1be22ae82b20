"""Other people's clients against `engram serve`: Mem0's own MemoryClient (the mem0ai package, unmodified), and
the official MCP SDK's client over stdio (`engram mcp`) and over streamable HTTP (/mcp)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, make_home, server_env

from engram.server.keys import KeyStore
from engram.server.mcp import TOOLS

# Runs in its own process with HOME pointing at a temporary directory: mem0ai writes ~/.mem0 as it is imported
MEM0_SCRIPT = """
import json, sys
from mem0 import MemoryClient

url, key, other_key = sys.argv[1:4]
client = MemoryClient(api_key=key, host=url)
out = {}
added = client.add([{"role": "user", "content": "I am allergic to peanuts"}], user_id="alice", infer=False,
                   metadata={"source": "chat"})
out["add"] = added
client.add("I live in Oslo", user_id="alice", infer=False)
client.add("Bob likes jazz", user_id="bob", infer=False)
memory_id = added["results"][0]["id"]
out["search"] = client.search("what can't I eat?", filters={"user_id": "alice"}, top_k=1)
out["search_and"] = client.search("city", filters={"AND": [{"user_id": "alice"}]}, top_k=5)
out["get_all"] = client.get_all(filters={"user_id": "alice"})
out["page"] = client.get_all(filters={"user_id": "alice"}, page=2, page_size=1)
out["get"] = client.get(memory_id)
out["update"] = client.update(memory_id, text="I am allergic to peanuts and cashews")
out["history"] = client.history(memory_id)
out["delete"] = client.delete(memory_id)
out["after_delete"] = client.get_all(filters={"user_id": "alice"})
out["delete_all"] = client.delete_all(user_id="alice")
out["after_delete_all"] = client.get_all(filters={"user_id": "alice"})
out["bob"] = client.get_all(filters={"user_id": "bob"})
try:
    MemoryClient(api_key="ek_000000000000_" + "A" * 43, host=url)
except ValueError as exc:
    out["bad_key"] = str(exc)
pinned = MemoryClient(api_key=other_key, host=url)
try:
    pinned.get_all(filters={"user_id": "bob"})
except Exception as exc:
    out["pinned_other"] = type(exc).__name__ + ": " + str(exc)
out["pinned_own"] = pinned.get_all(filters={"user_id": "carol"})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    home = make_home(tmp_path_factory.mktemp("clients"), models_dir)
    store = KeyStore(home / "keys.db")
    keys = {"acme": store.create("acme")[0], "carol": store.create("acme", "carol")[0],
            "alice": store.create("acme", "alice")[0], "globex": store.create("globex")[0]}
    running = Server(home).start()
    yield running, keys
    assert running.stop_cleanly()


def test_mem0s_own_memory_client_works_unmodified(served: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, keys = served
    env = server_env(HOME=str(tmp_path), MEM0_DIR=str(tmp_path / ".mem0"), MEM0_TELEMETRY="False")
    run = subprocess.run([sys.executable, "-c", MEM0_SCRIPT, server.url, keys["acme"], keys["carol"]], env=env,
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert [(r["event"], r["memory"]) for r in out["add"]["results"]] == [("ADD", "I am allergic to peanuts")]
    assert [h["memory"] for h in out["search"]["results"]] == ["I am allergic to peanuts"]
    assert {h["memory"] for h in out["search_and"]["results"]} == {"I am allergic to peanuts", "I live in Oslo"}
    assert out["get_all"]["count"] == 2 and {m["user_id"] for m in out["get_all"]["results"]} == {"alice"}
    assert len(out["page"]["results"]) == 1 and out["page"]["previous"] and out["page"]["next"] is None
    assert out["get"]["memory"] == "I am allergic to peanuts" and out["get"]["metadata"] == {"source": "chat"}
    assert out["update"]["message"] == "Memory updated successfully!"
    assert [h["new_memory"] for h in out["history"]] == ["I am allergic to peanuts",
                                                          "I am allergic to peanuts and cashews"]
    assert out["delete"]["message"] == "Memory deleted successfully!"
    assert [m["memory"] for m in out["after_delete"]["results"]] == ["I live in Oslo"]
    assert out["delete_all"]["count"] == 1 and out["after_delete_all"]["results"] == []
    assert [m["memory"] for m in out["bob"]["results"]] == ["Bob likes jazz"]
    assert "unknown or revoked" in out["bad_key"]
    assert "pinned to user 'carol'" in out["pinned_other"] and out["pinned_own"]["results"] == []
    assert {p.name for p in tmp_path.iterdir()} <= {".mem0"}  # mem0ai wrote only under its temporary HOME


def _tool_result(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


async def _every_tool(session: ClientSession) -> dict[str, Any]:
    """Each of the tools, in an order that exercises it, and what they answered."""
    await session.initialize()
    listed = {tool.name for tool in (await session.list_tools()).tools}
    out: dict[str, Any] = {"tools": listed}
    call = session.call_tool
    out["add"] = _tool_result(await call("add_memories", {"text": "I am a nurse and I work night shifts"}))
    memory_id = out["add"]["results"][0]["id"]
    out["search"] = _tool_result(await call("search_memory", {"query": "what is my job?"}))
    out["get"] = _tool_result(await call("get_memory", {"memory_id": memory_id}))
    out["update"] = _tool_result(await call("update_memory", {"memory_id": memory_id, "text": "I am a nurse"}))
    out["history"] = _tool_result(await call("memory_history", {"memory_id": memory_id}))
    out["list"] = _tool_result(await call("list_memories", {}))
    out["delete"] = _tool_result(await call("delete_memories", {"memory_ids": [memory_id]}))
    second = _tool_result(await call("add_memories", {"text": "My favourite colour is green"}))
    _tool_result(await call("add_memories", {"text": "My sister Ana lives in Lyon"}))
    out["entities"] = _tool_result(await call("list_entities", {}))
    out["explore"] = _tool_result(await call("explore_entity", {"name": "ana", "hops": 1}))
    out["unknown_entity"] = await call("explore_entity", {"name": "Zed"})
    out["delete_all"] = _tool_result(await call("delete_all_memories", {}))
    out["revert"] = _tool_result(await call("revert", {"batch_id": out["delete_all"]["batch_id"]}))
    out["after"] = _tool_result(await call("list_memories", {}))
    out["second"] = second
    out["foreign"] = await call("get_memory", {"memory_id": "00000000-0000-0000-0000-000000000000"})
    return out


def _check_every_tool(out: dict[str, Any]) -> None:
    assert out["tools"] >= set(TOOLS)
    assert out["add"]["results"] and all(r["event"] == "ADD" for r in out["add"]["results"])
    assert out["search"]["results"][0]["id"] == out["add"]["results"][0]["id"]
    assert out["get"]["memory"] == out["add"]["results"][0]["memory"]
    assert out["update"]["message"] == "Memory updated successfully!"
    assert [h["event"] for h in out["history"]["history"]] == ["ADD", "UPDATE"]
    assert any(m["memory"] == "I am a nurse" for m in out["list"]["results"])
    assert out["delete"]["results"][0]["message"] == "Memory deleted successfully!"
    assert out["delete_all"]["count"] >= 1
    assert {r["memory"] for r in out["revert"]["results"]} == {m["memory"] for m in out["after"]["results"]}
    assert out["after"]["results"] and out["foreign"].is_error and "NotFound" in out["foreign"].content[0].text
    assert {"Ana", "Lyon"} <= {e["name"] for e in out["entities"]["results"]}
    assert out["explore"]["entity"]["name"] == "Ana"
    explored = {(r["subject"], r["relation"], r["object"]) for r in out["explore"]["relations"]}
    assert ("Ana", "lives_in", "Lyon") in explored
    assert out["unknown_entity"].is_error and "no entity 'Zed'" in out["unknown_entity"].content[0].text


def test_mcp_over_stdio_calls_every_tool_for_the_connections_user(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    home = server.home

    async def main(errlog: TextIO) -> dict[str, Any]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "engram.cli", "mcp", "--user", "dora",
                                                                      "--tenant", "acme", "--home", str(home)],
                                       env=server_env())
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            return await _every_tool(session)

    with open(home / "mcp-stdio.log", "w") as errlog:
        out = anyio.run(main, errlog)
    _check_every_tool(out)
    with server.client(keys["acme"]) as http:  # what the stdio tools wrote is dora's, in tenant acme
        dora = http.get("/memories", params={"user_id": "dora"}).json()["results"]
        assert {m["memory"] for m in dora} == {m["memory"] for m in out["after"]["results"]}


async def _over_http(url: str, headers: dict[str, str], work: Any) -> Any:
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        return await work(session)


def test_mcp_over_http_with_a_pinned_key(served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served
    out = anyio.run(_over_http, server.url, {"Authorization": f"Token {keys['alice']}"}, _every_tool)
    _check_every_tool(out)
    with server.client(keys["acme"]) as http:
        alice = http.get("/memories", params={"user_id": "alice"}).json()["results"]
        assert {m["memory"] for m in alice} >= {m["memory"] for m in out["after"]["results"]}


def test_mcp_over_http_takes_the_user_from_the_connection_never_from_the_model(
        served: tuple[Server, dict[str, str]]) -> None:
    server, keys = served

    async def add(session: ClientSession) -> Any:
        await session.initialize()
        schema = {t.name: t.input_schema for t in (await session.list_tools()).tools}
        assert all("user_id" not in s.get("properties", {}) for s in schema.values())
        return _tool_result(await session.call_tool("add_memories", {"text": "I prefer window seats"}))

    added = anyio.run(_over_http, server.url, {"Authorization": f"Token {keys['acme']}", "X-Engram-User": "erin"}, add)
    with server.client(keys["acme"]) as http:
        got = http.get(f"/memories/{added['results'][0]['id']}").json()
        assert got["user_id"] == "erin"
    refused = httpx2.post(f"{server.url}/mcp", headers={"Authorization": f"Token {keys['alice']}",
                                                        "X-Engram-User": "erin"}, json={})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "Forbidden"
    assert httpx2.post(f"{server.url}/mcp", json={}).status_code == 401
