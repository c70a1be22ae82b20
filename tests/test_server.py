"""`engram serve` over real HTTP: Mem0's self-hosted paths, engram's own, keys and tenants, errors and limits."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _server import Server, engram, make_home

from engram.server.keys import KeyStore


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, str]:
    home = make_home(tmp_path_factory.mktemp("served"), models_dir)
    store = KeyStore(home / "keys.db")
    made = {name: store.create(tenant, user, admin=admin)[0] for name, tenant, user, admin in (
        ("admin", "acme", None, True), ("acme", "acme", None, False), ("alice", "acme", "alice", False),
        ("bob", "acme", "bob", False), ("globex", "globex", None, False), ("globex_alice", "globex", "alice", False))}
    store.close()
    return {**made, "home": str(home)}


@pytest.fixture(scope="module")
def server(keys: dict[str, str]) -> Iterator[Server]:
    running = Server(Path(keys["home"])).start()
    yield running
    assert running.stop_cleanly()


def test_health_readiness_request_ids_and_the_openapi_document(server: Server) -> None:
    with server.client() as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").json() == {"status": "ready"}
        made = http.get("/health").headers["x-request-id"]
        assert len(made) == 32 and made != http.get("/health").headers["x-request-id"]
        assert http.get("/health", headers={"X-Request-ID": "proxy-7.a_b"}).headers["x-request-id"] == "proxy-7.a_b"
        assert http.get("/health", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"] != "bad id!"
        spec = http.get("/openapi.json").json()
        assert {"/memories", "/memories/{memory_id}", "/search", "/reset", "/v3/memories/add/", "/v1/chat",
                "/v1/revert", "/v1/graph", "/v1/graph/entities", "/v1/graph/related"} <= set(spec["paths"])
        assert http.get("/docs").status_code == 200
    assert "[proxy-7.a_b] GET /health 200" in server.log


def test_mem0_self_hosted_paths_round_trip(server: Server, keys: dict[str, str]) -> None:
    with server.client(keys["acme"]) as http:
        added = http.post("/memories", json={"messages": [{"role": "user", "content": "I live in Lisbon"}],
                                             "user_id": "carol", "infer": False, "metadata": {"src": "t"}}).json()
        [row] = added["results"]
        assert row["event"] == "ADD" and row["memory"] == "I live in Lisbon" and added["batch_id"]
        memory_id = row["id"]
        got = http.get(f"/memories/{memory_id}").json()
        assert got["memory"] == "I live in Lisbon" and got["user_id"] == "carol" and got["metadata"] == {"src": "t"}
        assert [m["id"] for m in http.get("/memories", params={"user_id": "carol"}).json()["results"]] == [memory_id]
        hits = http.post("/search", json={"query": "which city?", "user_id": "carol"}).json()["results"]
        assert hits[0]["id"] == memory_id and 0 <= hits[0]["score"] <= 1
        updated = http.put(f"/memories/{memory_id}", json={"text": "I live in Porto"}).json()
        assert updated["message"].startswith("Memory updated")
        assert http.put(f"/memories/{memory_id}", json={"data": "I live in Braga"}).status_code == 200
        history = http.get(f"/memories/{memory_id}/history").json()
        assert [(h["event"], h["new_memory"]) for h in history] == [
            ("ADD", "I live in Lisbon"), ("UPDATE", "I live in Porto"), ("UPDATE", "I live in Braga")]
        assert http.delete(f"/memories/{memory_id}").json()["message"].startswith("Memory deleted")
        gone = http.get(f"/memories/{memory_id}")
        assert gone.status_code == 404 and gone.json()["error"]["type"] == "NotFound"
        http.post("/memories", json={"messages": "one", "user_id": "carol", "infer": False})
        http.post("/memories", json={"messages": "two", "user_id": "carol", "infer": False})
        assert http.delete("/memories", params={"user_id": "carol"}).json()["count"] == 2
        assert http.get("/memories", params={"user_id": "carol"}).json()["results"] == []


def test_engram_extras_dry_run_categories_as_of_revert_and_export(server: Server, keys: dict[str, str]) -> None:
    with server.client(keys["acme"]) as http:
        dry = http.post("/memories", json={"messages": "tea please", "user_id": "dan", "infer": False, "dry_run": True})
        assert dry.json()["dry_run"] is True
        assert http.get("/memories", params={"user_id": "dan"}).json()["results"] == []
        added = http.post("/memories", json={"messages": "I am vegetarian", "user_id": "dan", "infer": False,
                                             "categories": ["food"]}).json()
        time.sleep(0.01)
        before = time.time()
        memory_id = added["results"][0]["id"]
        http.put(f"/memories/{memory_id}", json={"text": "I am vegan"})
        food = http.get("/memories", params={"user_id": "dan", "categories": ["food"]}).json()["results"]
        assert [m["memory"] for m in food] == ["I am vegan"]
        assert http.get("/memories", params={"user_id": "dan", "categories": ["work"]}).json()["results"] == []
        then = http.post("/search", json={"query": "diet", "user_id": "dan", "as_of": before}).json()["results"]
        assert [h["memory"] for h in then] == ["I am vegetarian"]
        lines = http.get("/v1/export", params={"user_id": "dan"}).text.splitlines()
        assert [json.loads(line)["memory"] for line in lines] == ["I am vegan"]
        changed = http.post("/v1/revert", json={"batch_id": added["batch_id"]})  # the update came after it
        assert changed.status_code == 400 and "revert that change first" in changed.json()["error"]["message"]
        hiking = http.post("/memories", json={"messages": "I like hiking", "user_id": "dan", "infer": False}).json()
        undone = http.post("/v1/revert", json={"batch_id": hiking["batch_id"]}).json()
        assert [(r["event"], r["previous_memory"]) for r in undone["results"]] == [("REVERT", "I like hiking")]
        left = http.get("/memories", params={"user_id": "dan"}).json()["results"]
        assert [m["memory"] for m in left] == ["I am vegan"]
        again = http.post("/v1/revert", json={"batch_id": hiking["batch_id"]})
        assert again.status_code == 400 and "already reverted" in again.json()["error"]["message"]


def test_graph_paths_give_the_librarys_graph_to_the_keys_that_may_see_it(server: Server, keys: dict[str, str]) -> None:
    with server.client(keys["acme"]) as http:
        first = http.post("/memories", json={"messages": "My sister Ana lives in Lyon.", "user_id": "hana",
                                              "infer": False, "timestamp": "2024-01-01T00:00:00Z"}).json()
        http.post("/memories", json={"messages": "I work at Globex Corp.", "user_id": "hana", "infer": False})
        http.put(f"/memories/{first['results'][0]['id']}", json={"text": "My sister Ana lives in Paris.",
                                                                  "timestamp": "2024-03-01T00:00:00Z"})
        whole = http.get("/v1/graph", params={"user_id": "hana"}).json()
        assert {(r["subject"], r["relation"], r["object"]) for r in whole["relations"]} == {
            ("User", "sister", "Ana"), ("Ana", "lives_in", "Paris"), ("User", "works_at", "Globex Corp")}
        named = http.get("/v1/graph/entities", params={"user_id": "hana"}).json()["results"]
        assert named == whole["entities"] and named[0] == {"name": "User", "kind": "person", "aliases": [],
                                                           "memories": 2}
        near = http.get("/v1/graph/related", params={"user_id": "hana", "name": "user's sister", "hops": 1}).json()
        assert near["entity"]["name"] == "Ana" and {e["name"] for e in near["entities"]} == {"Ana", "User", "Paris"}
        then = http.get("/v1/graph/related", params={"user_id": "hana", "name": "Ana", "as_of": "2024-02-01"}).json()
        assert [m["memory"] for m in then["memories"]] == ["My sister Ana lives in Lyon."]
        mistakes: list[tuple[dict[str, str | int], int]] = [
            ({"user_id": "hana", "name": "Zed"}, 404), ({"user_id": "hana", "name": "Ana", "hops": 9}, 400),
            ({"name": "Ana"}, 400), ({"user_id": "hana", "name": ""}, 422),
            ({"user_id": "hana", "name": "Ana", "as_of": "someday"}, 400)]
        for params, status in mistakes:
            refused = http.get("/v1/graph/related", params=params)
            assert refused.status_code == status and "error" in refused.json(), (params, refused.text)
    with server.client(keys["alice"]) as pinned:
        for path, extra in (("/v1/graph", {}), ("/v1/graph/entities", {}), ("/v1/graph/related", {"name": "Ana"})):
            refused = pinned.get(path, params={"user_id": "hana", **extra})
            assert refused.status_code == 403 and "Paris" not in refused.text
        assert "Paris" not in pinned.get("/v1/graph").text  # no user named: its own graph
    with server.client(keys["globex"]) as other_tenant:
        assert other_tenant.get("/v1/graph", params={"user_id": "hana"}).json() == {"entities": [], "relations": []}


def test_chat_answers_from_memory_and_keeps_sessions_per_user(server: Server, keys: dict[str, str]) -> None:
    with server.client(keys["alice"]) as http:
        http.post("/memories", json={"messages": "My dog is called Rex", "infer": False})
        reply = http.post("/v1/chat", json={"message": "what is my dog called?"}).json()
        assert "Rex" in reply["response"] and reply["memories_used"][0]["memory"] == "My dog is called Rex"
        assert reply["trace"][0]["tool"] == "search_memories" and reply["session_id"]
        session = reply["session_id"]
    with server.client(keys["bob"]) as http:  # the same session id is bob's own session: alice's stays hers
        own = http.post("/v1/chat", json={"message": "what is my dog called?", "session_id": session})
        assert own.status_code == 200 and "Rex" not in own.text and own.json()["memories_used"] == []


def test_errors_are_json_with_a_4xx_status(server: Server, keys: dict[str, str]) -> None:
    with server.client(keys["acme"]) as http:
        def error(response: httpx.Response, status: int, kind: str) -> str:
            assert response.status_code == status, response.text
            body = response.json()["error"]
            assert body["type"] == kind and body["request_id"] == response.headers["x-request-id"]
            return str(body["message"])

        error(http.post("/memories", content=b"{not json", headers={"content-type": "application/json"}), 422,
              "InvalidInput")
        error(http.post("/memories", json={"messages": "x"}), 400, "ScopeRequired")
        error(http.post("/memories", json={"messages": "", "user_id": "u", "infer": False}), 400, "InvalidInput")
        error(http.post("/search", json={"query": "x", "user_id": "u", "filters": {"a": {"zz": 1}}}), 400,
              "InvalidFilter")
        error(http.get("/memories/nope"), 404, "NotFound")
        error(http.get("/no/such/path"), 404, "HTTPError")
        error(http.patch("/memories"), 405, "HTTPError")
        error(http.post("/memories", json={"messages": "x", "user_id": "u", "bogus": 1}), 422, "InvalidInput")
        added = http.post("/memories", json={"messages": "v1", "user_id": "u", "infer": False})
        memory_id = added.json()["results"][0]["id"]
        http.put(f"/memories/{memory_id}", json={"text": "v2"})
        stale = http.put(f"/memories/{memory_id}", json={"text": "v3", "expected_version": 1})
        assert "version" in error(stale, 409, "Conflict")
        error(http.post("/reset"), 403, "Forbidden")
        too_big = http.post("/memories", content=b"x" * 1_100_000, headers={"content-type": "application/json"})
        error(too_big, 413, "TooLarge")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
            yield b'{"messages": "'
            for _ in range(200):
                yield b"y" * 10_000
            yield b'", "user_id": "u"}'
        error(http.post("/memories", content=chunks(), headers={"content-type": "application/json"}), 413, "TooLarge")


def test_keys_decide_tenant_user_and_admin(server: Server, keys: dict[str, str]) -> None:
    with server.client() as anonymous:
        assert anonymous.get("/memories", params={"user_id": "u"}).status_code == 401
        assert anonymous.get("/health").status_code == 200
    with server.client("ek_000000000000_" + "A" * 43) as wrong:
        assert wrong.get("/v1/ping/").json()["error"]["type"] == "Unauthorized"
    with httpx.Client(base_url=server.url, headers={"Authorization": "Basic abc"}) as basic:
        assert basic.get("/v1/ping/").status_code == 401
    with httpx.Client(base_url=server.url, headers={"X-API-Key": keys["acme"]}) as header:
        assert header.get("/v1/ping/").json()["tenant"] == "acme"
    with server.client(keys["alice"]) as alice:
        assert alice.get("/v1/ping/").json()["user_id"] == "alice"
        forbidden = alice.get("/memories", params={"user_id": "bob"})
        assert forbidden.status_code == 403 and "pinned to user 'alice'" in forbidden.json()["error"]["message"]
        assert alice.post("/search", json={"query": "x", "filters": {"user_id": "bob"}}).status_code == 403
        mine = alice.post("/memories", json={"messages": "alice's secret", "infer": False}).json()["results"][0]["id"]
    with server.client(keys["bob"]) as bob:
        for call in (bob.get(f"/memories/{mine}"), bob.put(f"/memories/{mine}", json={"text": "x"}),
                     bob.delete(f"/memories/{mine}"), bob.get(f"/memories/{mine}/history")):
            assert call.status_code == 404
    with server.client(keys["globex"]) as other_tenant:
        assert other_tenant.get(f"/memories/{mine}").status_code == 404
        assert other_tenant.get("/memories", params={"user_id": "alice"}).json()["results"] == []
    with server.client(keys["acme"]) as acme:
        assert acme.get(f"/memories/{mine}").json()["memory"] == "alice's secret"
    assert (Path(keys["home"]) / "tenants" / "acme" / "engram.db").is_file()
    assert not (Path(keys["home"]) / "engram.db").exists()


def test_admin_keys_manage_their_tenant_keys(server: Server, keys: dict[str, str]) -> None:
    with server.client(keys["acme"]) as plain:
        assert plain.get("/v1/keys").status_code == 403
    with server.client(keys["admin"]) as admin:
        made = admin.post("/v1/keys", json={"user_id": "erin", "label": "erin's phone"}).json()
        assert made["tenant"] == "acme" and made["user_id"] == "erin" and made["key"].startswith("ek_")
        listed = admin.get("/v1/keys").json()["results"]
        assert made["id"] in [k["id"] for k in listed] and {k["tenant"] for k in listed} == {"acme"}
        assert all("key" not in k and "hash" not in k for k in listed)
        with server.client(made["key"]) as erin:
            assert erin.get("/v1/ping/").json()["user_id"] == "erin"
            assert admin.delete(f"/v1/keys/{made['id']}").json()["revoked_at"] is not None
            time.sleep(2.1)  # a checked key is trusted for 2 s
            assert erin.get("/v1/ping/").status_code == 401
        globex_key = KeyStore(Path(keys["home"]) / "keys.db").list("globex")[0]
        assert admin.delete(f"/v1/keys/{globex_key.id}").status_code == 404


def test_reset_takes_an_admin_key_and_erases_only_its_tenant(server: Server, keys: dict[str, str]) -> None:
    with server.client(keys["globex"]) as globex:
        globex.post("/memories", json={"messages": "globex keeps this", "user_id": "g", "infer": False})
    with server.client(keys["admin"]) as admin:
        admin.post("/memories", json={"messages": "acme loses this", "user_id": "g", "infer": False})
        assert admin.post("/reset").json() == {"message": "All memories reset"}
        assert admin.get("/memories", params={"user_id": "g"}).json()["results"] == []
    with server.client(keys["globex"]) as globex:
        kept = globex.get("/memories", params={"user_id": "g"}).json()["results"]
        assert [m["memory"] for m in kept] == ["globex keeps this"]


def test_the_keys_command_prints_a_key_once_lists_and_revokes(tmp_path: Path) -> None:
    made = engram(tmp_path, "keys", "create", "--tenant", "acme", "--user", "alice")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ek_") and "shown once" in made.stderr
    assert token not in (tmp_path / "keys.db").read_bytes().decode("latin-1")
    listed = json.loads(engram(tmp_path, "keys", "list", "--json").stdout)
    assert [(k["tenant"], k["user_id"], k["revoked_at"]) for k in listed] == [("acme", "alice", None)]
    assert engram(tmp_path, "keys", "revoke", listed[0]["id"]).returncode == 0
    assert KeyStore(tmp_path / "keys.db").check(token) is None
    bad = engram(tmp_path, "keys", "create", "--tenant", "../etc")
    assert bad.returncode == 2 and "error: a tenant is" in bad.stderr
    pinned_admin = engram(tmp_path, "keys", "create", "--tenant", "acme", "--user", "a", "--admin")
    assert pinned_admin.returncode == 2


def test_without_keys_it_serves_loopback_only(tmp_path: Path, models_dir: Path) -> None:
    home = make_home(tmp_path / "open", models_dir)
    refused = engram(home, "serve", "--host", "0.0.0.0", "--port", "1")
    assert refused.returncode == 2 and "refusing to listen on 0.0.0.0 without keys" in refused.stderr
    server = Server(home).start()
    try:
        assert "serving without authentication, on loopback only" in server.log
        with server.client() as http:
            added = http.post("/memories", json={"messages": "open", "user_id": "u", "infer": False})
            assert added.status_code == 200
            rebound = http.get("/memories", params={"user_id": "u"}, headers={"Host": "evil.example:80"})
            assert rebound.status_code == 403
        assert (home / "engram.db").is_file()  # the home's own store, the one the CLI uses
        listed = engram(home, "list", "--user", "u", "--json")
        assert [m["memory"] for m in json.loads(listed.stdout)["results"]] == ["open"]
    finally:
        assert server.stop_cleanly()


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path, models_dir: Path) -> None:
    home = make_home(tmp_path / "limited", models_dir)
    token, _ = KeyStore(home / "keys.db").create("t")
    server = Server(home, env={"ENGRAM_SERVER_RATE_LIMIT": "0.5", "ENGRAM_SERVER_RATE_BURST": "3"}).start()
    try:
        with server.client(token) as http:
            statuses = [http.get("/v1/ping/") for _ in range(5)]
            assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
            assert statuses[3].headers["retry-after"] == "2" and statuses[3].json()["error"]["type"] == "RateLimited"
    finally:
        server.stop()


def test_graceful_shutdown_finishes_the_writes_in_flight(tmp_path: Path, models_dir: Path) -> None:
    home = make_home(tmp_path / "stopping", models_dir)
    server = Server(home).start()
    answered: list[str] = []

    def write(n: int) -> None:
        with server.client() as http:
            for i in range(200):
                try:
                    response = http.post("/memories",
                                         json={"messages": f"fact {n}-{i}", "user_id": "u", "infer": False})
                except httpx.TransportError:
                    return  # the server stopped taking new connections
                if response.status_code != 200:
                    return
                answered.append(response.json()["results"][0]["memory"])

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    time.sleep(1.5)
    assert server.stop_cleanly()
    for thread in writers:
        thread.join()
    assert answered and "Shutting down" in server.log and "Finished server process" in server.log
    listed = json.loads(engram(home, "list", "--user", "u", "--limit", "100000", "--json").stdout)["results"]
    assert set(answered) <= {m["memory"] for m in listed}  # every acknowledged write is there
