"""Randomized attempts to reach another tenant's or another user's memories through REST and MCP: ids, filters,
batch ids, session ids and keys of others. Every answer is checked for the victim's secret, and every victim
memory is checked unchanged at the end: zero leaks, zero foreign writes."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, make_home

from engram.server.keys import KeyStore

ATTEMPTS = 2_000
MCP_ATTEMPTS = 200


@dataclass
class Owner:
    name: str
    tenant: str
    user: str
    key: str  # pinned to this user
    secret: str = ""
    ids: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory,
          models_dir: Path) -> Iterator[tuple[Server, list[Owner], dict[str, str]]]:
    home = make_home(tmp_path_factory.mktemp("isolation"), models_dir)
    store = KeyStore(home / "keys.db")
    owners = [Owner(f"{t}/{u}", t, u, store.create(t, u)[0]) for t, u in
              (("acme", "alice"), ("acme", "bob"), ("globex", "alice"), ("globex", "carol"))]
    tenant_keys = {t: store.create(t)[0] for t in ("acme", "globex")}
    server = Server(home).start()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for n, owner in enumerate(owners):
            owner.secret = f"secret-{n}-{random.Random(n).getrandbits(64):x}"
            auth = {"Authorization": f"Token {owner.key}"}
            for i in range(3):
                text = f"{owner.secret} fact {i}" + ("" if i else ": my sister Ana lives in Lyon")  # a graph too
                added = http.post("/memories", headers=auth, json={
                    "messages": text, "infer": False, "metadata": {"tag": owner.secret}}).json()
                owner.ids.append(added["results"][0]["id"])
                owner.batches.append(added["batch_id"])
            chat = http.post("/v1/chat", headers=auth, json={"message": f"{owner.secret} hello"}).json()
            owner.sessions.append(chat["session_id"])
            for memory_id in owner.ids:
                owner.versions[memory_id] = http.get(f"/memories/{memory_id}", headers=auth).json()["version"]
    yield server, owners, tenant_keys
    assert server.stop_cleanly()


Attempt = Callable[[httpx.Client, Owner, Owner, random.Random], httpx.Response]


def _by_id(http: httpx.Client, victim: Owner, pick: random.Random) -> httpx.Response:
    memory_id = pick.choice(victim.ids)
    return pick.choice([
        lambda: http.get(f"/memories/{memory_id}"), lambda: http.get(f"/v1/memories/{memory_id}/"),
        lambda: http.put(f"/memories/{memory_id}", json={"text": "overwritten"}),
        lambda: http.put(f"/v1/memories/{memory_id}/", json={"metadata": {"owned": "by me"}}),
        lambda: http.delete(f"/memories/{memory_id}"), lambda: http.delete(f"/v1/memories/{memory_id}/"),
        lambda: http.get(f"/memories/{memory_id}/history"), lambda: http.get(f"/v1/memories/{memory_id}/history/"),
    ])()


def _reads(http: httpx.Client, victim: Owner, pick: random.Random) -> httpx.Response:
    user = victim.user
    return pick.choice([
        lambda: http.get("/memories", params={"user_id": user}),
        lambda: http.post("/search", json={"query": victim.secret, "user_id": user}),
        lambda: http.post("/search", json={"query": victim.secret, "filters": {"user_id": user}}),
        lambda: http.post("/search", json={"query": victim.secret, "filters": {"tag": victim.secret}}),
        lambda: http.post("/v3/memories/search/",
                          json={"query": victim.secret, "filters": {"AND": [{"user_id": user}]}}),
        lambda: http.post("/v3/memories/", json={"filters": {"user_id": user}}),
        lambda: http.post("/v3/memories/", json={"filters": {"memory": {"icontains": victim.secret}}}),
        lambda: http.get("/v1/export", params={"user_id": user}),
        lambda: http.get("/v1/export"),
        lambda: http.get("/v1/graph", params={"user_id": user}),
        lambda: http.get("/v1/graph/entities", params={"user_id": user}),
        lambda: http.get("/v1/graph/related", params={"user_id": user, "name": "Ana"}),  # every owner's sister
    ])()


def _writes(http: httpx.Client, victim: Owner, pick: random.Random) -> httpx.Response:
    return pick.choice([
        lambda: http.post("/v1/revert", json={"batch_id": pick.choice(victim.batches)}),
        lambda: http.post("/v1/chat", json={"message": "what do you know?", "session_id": victim.sessions[0]}),
    ])()


def _scope_writes(http: httpx.Client, victim: Owner, pick: random.Random) -> httpx.Response:
    """Writes naming the victim's user: refused for a key pinned to another user of the same tenant (a key of
    another tenant naming the same user name writes to its own tenant's user, which is its right)."""
    return pick.choice([
        lambda: http.post("/memories", json={"messages": "planted", "user_id": victim.user, "infer": False}),
        lambda: http.post("/v3/memories/add/", json={"messages": "planted", "filters": {"user_id": victim.user}}),
        lambda: http.delete("/memories", params={"user_id": victim.user}),
        lambda: http.delete("/v1/memories/", params={"user_id": victim.user}),
    ])()


def _allowed(attacker: Owner, victim: Owner, response: httpx.Response) -> bool:
    """A refusal, or an answer about the attacker's own memories (never the victim's)."""
    if response.status_code in (400, 403, 404):
        return True
    return response.status_code == 200 and victim.secret not in response.text


def test_two_thousand_randomized_attempts_leak_nothing_and_write_nothing(
        world: tuple[Server, list[Owner], dict[str, str]]) -> None:
    server, owners, _ = world
    pick = random.Random(20261124)
    clients = {o.name: server.client(o.key) for o in owners}
    outcomes: dict[int, int] = {}
    try:
        for _ in range(ATTEMPTS):
            attacker, victim = pick.sample(owners, 2)
            http = clients[attacker.name]
            kinds: list[Any] = [_by_id, _reads, _writes] + ([_scope_writes] if attacker.tenant == victim.tenant else [])
            kind = pick.choice(kinds)
            response = kind(http, victim, pick)
            outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
            assert _allowed(attacker, victim, response), (attacker.name, victim.name, response.request.url,
                                                          response.text)
    finally:
        for client in clients.values():
            client.close()
    assert sum(outcomes.values()) == ATTEMPTS and outcomes.get(500, 0) == 0
    assert outcomes.get(403, 0) > 100 and outcomes.get(404, 0) > 100  # both kinds of refusal were exercised
    _nothing_changed(server, owners)


def test_other_tenants_keys_of_the_whole_tenant_see_nothing(world: tuple[Server, list[Owner], dict[str, str]]) -> None:
    server, owners, tenant_keys = world
    pick = random.Random(7)
    for tenant, key in tenant_keys.items():
        with server.client(key) as http:
            for victim in (o for o in owners if o.tenant != tenant):
                for _ in range(30):
                    response = pick.choice([_by_id, _reads])(http, victim, pick)
                    assert _allowed(victim, victim, response), response.text
    _nothing_changed(server, owners)


def test_mcp_attempts_by_id_and_batch_reach_nothing(world: tuple[Server, list[Owner], dict[str, str]]) -> None:
    server, owners, tenant_keys = world
    pick = random.Random(99)

    async def attack(attacker: Owner, victims: list[Owner], headers: dict[str, str]) -> list[tuple[bool, str]]:
        results = []
        async with httpx2.AsyncClient(headers=headers, timeout=60) as client, \
                streamable_http_client(f"{server.url}/mcp", http_client=client) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            for _ in range(MCP_ATTEMPTS // len(owners)):
                victim = pick.choice(victims)
                calls: list[tuple[str, dict[str, Any]]] = [
                    ("get_memory", {"memory_id": pick.choice(victim.ids)}),
                    ("update_memory", {"memory_id": pick.choice(victim.ids), "text": "overwritten"}),
                    ("memory_history", {"memory_id": pick.choice(victim.ids)}),
                    ("delete_memories", {"memory_ids": [pick.choice(victim.ids)]}),
                    ("revert", {"batch_id": pick.choice(victim.batches)}),
                    ("search_memory", {"query": victim.secret}),
                    ("list_memories", {}),
                ]
                tool, args = pick.choice(calls)
                result = await session.call_tool(tool, args)
                text = " ".join(getattr(c, "text", "") for c in result.content)
                results.append((tool in ("search_memory", "list_memories") or bool(result.is_error), text))
        return results

    total = 0
    for attacker in owners:
        victims = [o for o in owners if o is not attacker]
        for headers in ({"Authorization": f"Token {attacker.key}"},
                        {"Authorization": f"Token {tenant_keys[attacker.tenant]}", "X-Engram-User": attacker.user}):
            for refused, text in anyio.run(attack, attacker, victims, headers):
                total += 1
                assert refused and not any(v.secret in text for v in victims), text
    assert total >= MCP_ATTEMPTS
    _nothing_changed(server, owners)


def _nothing_changed(server: Server, owners: list[Owner]) -> None:
    """Every victim memory is current, at the version it was written, with its own text: no foreign write."""
    for owner in owners:
        with server.client(owner.key) as http:
            for memory_id, version in owner.versions.items():
                got = http.get(f"/memories/{memory_id}").json()
                assert got["version"] == version and got["memory"].startswith(owner.secret), got
            listed: Any = http.get("/memories").json()["results"]
            assert {m["id"] for m in listed} >= set(owner.ids)  # nothing removed
            others = [o.secret for o in owners if o is not owner]
            for m in listed:  # nothing planted: only the owner's own memories (its adds, its chat's saves)
                assert m["memory"] != "planted" and not any(secret in m["memory"] for secret in others), m
