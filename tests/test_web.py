"""The web memory browser in a real browser: Debian's Chromium driven by Playwright against a real `engram serve`
with keys made by the CLI. One server and one browser for the module; each test opens its own browser context."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _server import ROOT, Server, engram, make_home

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update"]
BIG = 10_000  # memories of the user whose page load is timed
IMG = ROOT / "docs" / "img"

if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (make chromium, or apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the playwright package is not installed (pip install -e '.[dev]')")


def _key(home: Path, *args: str) -> str:
    made = engram(home, "keys", "create", "--tenant", "acme", *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def _fill_big_user(home: Path, models: Path) -> None:
    """BIG memories for user "big", written through add(infer=False) in lists of 1,000. Their vectors are the
    real model's vectors of 20 sentences, reused (the list page never looks at vectors; embedding 10k sentences
    would take minutes on 2 cores)."""
    from engram.config import Settings
    from engram.embed.base import Embedder
    from engram.embed.local import MiniLMEmbedder
    from engram.memory import Memory
    from engram.server.tenancy import tenant_settings

    real = MiniLMEmbedder(models)
    base = real.embed([f"Something about topic {i}" for i in range(20)])

    class Reused(Embedder):
        name, dimension = real.name, real.dimension

        def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
            return np.stack([base[i % len(base)] for i in range(len(texts))])

    with Memory(tenant_settings(Settings(home=home), "acme"), embedder=Reused()) as memory:
        for start in range(0, BIG, 1000):
            memory.add([f"Fact {i} about topic {i % 20}" for i in range(start, start + 1000)], user_id="big",
                       infer=False, categories=["topic"] if start == 0 else None)


# the seed example's sister, and a family around her
SEED = ["My sister Ana lives in Lyon and works at Acme Corp.", "I work at Globex Corp.",
        "My brother Tom lives in Oslo.", "I live in Lisbon.", "Ana visits me every June."]
XSS_NAMES = ['<img src=x onerror="window.pwned = 4">', "<script>window.pwned = 5</script>",
             'Evil "quote" & <b>bold</b> \\ done']


def _fill_graphs(home: Path, models: Path) -> None:
    """gwen: the seed example and her family, found by the offline rules. mallet: entities with hostile names,
    which only an LLM's triplets can give (the fake server answers the extraction call)."""
    from dataclasses import replace

    from engram.config import Settings
    from engram.embed.local import MiniLMEmbedder
    from engram.memory import Memory
    from engram.server.tenancy import tenant_settings
    from engram.testing import FakeOpenAI, dspy_reply

    settings = tenant_settings(Settings(home=home), "acme")
    embedder = MiniLMEmbedder(models)
    with Memory(settings, embedder=embedder) as memory:
        memory.add(SEED, user_id="gwen", infer=False)
    triplets = [{"subject": a, "relation": r, "object": b} for a, r, b in (
        ("User", "met", XSS_NAMES[0]), (XSS_NAMES[0], "knows", XSS_NAMES[1]), (XSS_NAMES[1], "works_at", XSS_NAMES[2]))]
    with FakeOpenAI() as llm, Memory(replace(settings, llm_model="openai/fake-model", llm_api_base=llm.base_url,
                                             llm_api_key="sk-test", llm_retries=0), embedder=embedder) as memory:
        llm.script_chat(dspy_reply(facts=[{"text": "User met <i>odd</i> people", "category": "relationships",
                                           "about": "user", "happened_at": None,
                                           "triplets": triplets}]))
        memory.add("I met <i>odd</i> people", user_id="mallet")
        assert {e["name"] for e in memory.entities(user_id="mallet")["results"]} >= set(XSS_NAMES)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict[str, Any]]:
    home = make_home(tmp_path_factory.mktemp("web"), models_dir)
    keys = {"admin": _key(home, "--admin"), "alice": _key(home, "--user", "alice"), "bob": _key(home, "--user", "bob")}
    _fill_big_user(home, models_dir)
    _fill_graphs(home, models_dir)
    server = Server(home).start()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Token {keys['admin']}"}, timeout=60) as api:
        bob = api.post("/memories", json={"messages": "Bob keeps bees on the roof", "user_id": "bob", "infer": False})
        assert bob.status_code == 200, bob.text
        yield {"server": server, "url": server.url, "keys": keys, "api": api,
               "bob_memory": bob.json()["results"][0]["id"]}
    assert server.stop_cleanly()


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


def signed_in(browser: Any, site: dict[str, Any], key: str, width: int = 1280, height: int = 800) -> Any:
    """A page of a fresh browser context, signed in through the form with `key`."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    page = context.new_page()
    page.goto(site["url"] + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#who")).to_contain_text("acme")
    return page


def test_sign_in_gives_an_httponly_strict_cookie_and_a_wrong_key_an_error(browser: Any, site: dict[str, Any]) -> None:
    page = signed_in(browser, site, site["keys"]["admin"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "engram_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] not in site["keys"]["admin"]
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read it
    response = page.request.get(site["url"] + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").fill("ek_000000000000_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#sign-in-error")).to_contain_text("unknown or revoked")
    assert page.request.get(site["url"] + "/web/users").status == 401  # signed out: the old cookie is dead
    page.context.close()


def test_add_with_a_dry_run_search_edit_delete_and_revert(browser: Any, site: dict[str, Any]) -> None:
    page = signed_in(browser, site, site["keys"]["admin"])
    page.goto(site["url"] + "/#/u/alice")
    page.get_by_text("Add memories").click()
    page.get_by_label("Text, or a conversation").fill("user: I am allergic to peanuts\nuser: My sister lives in Oslo")
    page.get_by_role("button", name="Preview (dry run)").click()
    sync_api.expect(page.locator("#proposed li")).to_have_count(2)
    sync_api.expect(page.locator("#proposed")).to_contain_text("ADD: I am allergic to peanuts")
    assert site["api"].get("/memories", params={"user_id": "alice"}).json()["results"] == []  # nothing written yet
    page.get_by_role("button", name="Apply").click()
    sync_api.expect(page.locator("#applied li")).to_have_count(2)
    sync_api.expect(page.locator("#memories li")).to_have_count(2)

    page.get_by_label("Search", exact=True).fill("peanut allergy")
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator(".hits li").first
    sync_api.expect(first).to_contain_text("allergic to peanuts")
    shown = dict(zip(first.locator("dt").all_inner_texts(), map(float, first.locator("dd").all_inner_texts()),
                     strict=True))
    served = site["api"].post("/web/search", json={"query": "peanut allergy", "user_id": "alice"}).json()["results"][0]
    assert shown["cosine"] == pytest.approx(served["explain"]["cosine"], abs=1e-3) and shown["cosine"] > 0.3
    assert shown["keyword"] == pytest.approx(served["explain"]["keyword"], abs=1e-3) and shown["keyword"] > 0
    assert {"context", "time", "fused", "score"} <= shown.keys()
    sync_api.expect(page.locator("#users")).to_contain_text("alice")  # the list beside the view, for the picture
    page.screenshot(path=IMG / "web-search-1280.png")

    first.get_by_role("link").click()
    sync_api.expect(page.locator("#memory-title")).to_contain_text("allergic to peanuts")
    page.get_by_label("Text", exact=True).fill("I am severely allergic to peanuts")
    page.get_by_role("button", name="Save").click()
    sync_api.expect(page.locator("#notice")).to_have_text("Saved as a new version.")
    sync_api.expect(page.locator("#versions li")).to_have_count(2)
    sync_api.expect(page.locator("#versions li").nth(0)).to_contain_text("superseded")
    sync_api.expect(page.locator("#versions li").nth(1)).to_contain_text("severely")
    sync_api.expect(page.locator("#history tbody tr")).to_have_count(2)
    sync_api.expect(page.locator("#history tbody tr").nth(1)).to_contain_text("UPDATE")
    page.screenshot(path=IMG / "web-memory-1280.png", full_page=True)

    page.get_by_role("button", name="Delete").click()
    sync_api.expect(page.locator("#memory-title")).to_contain_text("deleted")
    delete_row = page.locator("#history tbody tr").nth(2)
    sync_api.expect(delete_row).to_contain_text("DELETE")
    delete_row.get_by_role("button", name="Revert batch").click()
    sync_api.expect(page.locator("#notice")).to_have_text("The batch was reverted.")
    sync_api.expect(page.locator("#memory-title")).to_contain_text("current")
    memory_id = page.url.rsplit("/", 1)[1]
    assert site["api"].get(f"/memories/{memory_id}").json()["memory"] == "I am severely allergic to peanuts"
    page.context.close()


def test_import_with_progress_export_and_switching_users(browser: Any, site: dict[str, Any], tmp_path: Path) -> None:
    upload = tmp_path / "carol.jsonl"
    upload.write_text("".join(json.dumps({"memory": f"Carol fact {i}", "categories": ["work" if i % 2 else "home"]})
                              + "\n" for i in range(300)))
    page = signed_in(browser, site, site["keys"]["admin"])
    page.goto(site["url"] + "/#/u/carol")
    page.get_by_text("Import a file").click()
    page.get_by_label("JSONL (one memory per line)").set_input_files(str(upload))
    page.locator("#import-progress").evaluate("""bar => { window.steps = []; new MutationObserver(() =>
        window.steps.push(bar.value)).observe(bar, {attributes: true, attributeFilter: ['value']}); }""")
    page.get_by_role("button", name="Import", exact=True).click()
    sync_api.expect(page.locator("#import-status")).to_have_text("Imported 300: 300 added, 0 already known",
                                                                 timeout=60_000)
    assert page.locator("#import-progress").evaluate("bar => [bar.value, bar.max]") == [300, 300]
    assert page.evaluate("window.steps")[:3] == [100, 200, 300]  # the bar moved once per 100 written
    sync_api.expect(page.locator("#list-count")).to_have_text("1–50 of 300")
    page.get_by_role("button", name="work (150)").click()
    sync_api.expect(page.locator("#list-count")).to_have_text("1–50 of 150, in work")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export JSONL").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 300 and {json.loads(line)["user_id"] for line in lines} == {"carol"}

    page.locator("#users").get_by_role("link", name="bob").click()
    sync_api.expect(page.locator("#list-title")).to_have_text("Memories of bob")
    sync_api.expect(page.locator("#memories")).to_contain_text("Bob keeps bees")
    page.context.close()


def test_a_pinned_key_reaches_only_its_user_through_the_page_and_by_editing_urls(browser: Any,
                                                                                  site: dict[str, Any]) -> None:
    page = signed_in(browser, site, site["keys"]["alice"], 390, 844)
    sync_api.expect(page.locator("#list-title")).to_have_text("Memories of alice")  # sent straight to its user
    sync_api.expect(page.locator("#users li")).to_have_count(1)
    sync_api.expect(page.locator("#users")).to_contain_text("alice")
    page.screenshot(path=IMG / "web-list-390.png")
    page.goto(site["url"] + "/#/u/bob")
    sync_api.expect(page.locator("#view .error")).to_contain_text("pinned to user 'alice'")
    page.goto(site["url"] + "/#/m/" + site["bob_memory"])
    sync_api.expect(page.locator("#view .error")).to_contain_text("no memory with id")
    assert page.request.get(site["url"] + "/web/memories?user_id=bob").status == 403
    assert page.request.get(site["url"] + f"/web/memories/{site['bob_memory']}").status == 404
    assert page.request.get(site["url"] + "/v1/export?user_id=bob").status == 403
    csrf = page.request.get(site["url"] + "/web/session").json()["csrf"]
    forced = page.request.post(site["url"] + "/web/search", headers={"X-CSRF-Token": csrf},
                               data={"query": "bees", "user_id": "bob"})
    assert forced.status == 403
    page.context.close()


XSS = ["<script>window.pwned = 1</script>", '<img src=x onerror="window.pwned = 2">',
       "**bold** [link](javascript:window.pwned=3) <b>not bold</b>"]


def test_memory_text_is_shown_as_text(browser: Any, site: dict[str, Any]) -> None:
    added = site["api"].post("/memories", json={"messages": [{"role": "user", "content": t} for t in XSS],
                                                "user_id": "mallory", "infer": False, "metadata": {"note": "<i>x</i>"}})
    assert added.status_code == 200
    page = signed_in(browser, site, site["keys"]["admin"])
    page.goto(site["url"] + "/#/u/mallory")
    sync_api.expect(page.locator("#memories li")).to_have_count(3)
    assert sorted(page.locator("#memories li a.text").all_inner_texts()) == sorted(XSS)
    assert page.locator("#view img, #view script, #view b, #view i").count() == 0
    page.locator("#memories li a.text", has_text="onerror").click()
    sync_api.expect(page.locator(".memory-text")).to_have_text(XSS[1])
    assert page.locator("#view img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.context.close()


def test_a_forged_cross_site_post_is_refused(browser: Any, site: dict[str, Any]) -> None:
    page = signed_in(browser, site, site["keys"]["admin"])
    # enctype text/plain sends NAME=VALUE: together they read as a JSON body, the classic forged JSON post
    name = '{"messages": "forged", "user_id": "alice", "infer": false, "x": "'
    action = site["url"] + "/memories"
    evil = (f'<form id="f" method="post" enctype="text/plain" action="{action}">'
            f"<input name='{name}' value='\"}}'></form>"
            '<script>document.getElementById("f").submit()</script>')
    page.route("http://evil.test/", lambda route: route.fulfill(body=evil, content_type="text/html"))
    with page.expect_response(site["url"] + "/memories") as posted:
        page.goto("http://evil.test/")
    assert posted.value.status == 403
    # the same request from the page's own origin, but with the cookie alone and no CSRF token: refused too
    assert page.request.post(site["url"] + "/memories", data={"messages": "forged", "user_id": "alice"}).status == 403
    foreign = page.request.post(site["url"] + "/memories", headers={"Origin": "http://evil.test"},
                                data={"messages": "forged", "user_id": "alice", "infer": False})
    assert foreign.status == 403 and foreign.json()["error"]["type"] == "Forbidden"
    listed = site["api"].get("/memories", params={"user_id": "alice", "limit": 1000}).json()["results"]
    assert all(m["memory"] != "forged" for m in listed)
    with httpx.Client(base_url=site["url"], timeout=30) as keyed:  # a key in the header needs no CSRF token
        assert keyed.get("/v1/ping/", headers={"Authorization": f"Token {site['keys']['alice']}"}).status_code == 200
    page.context.close()


def test_a_user_with_ten_thousand_memories_loads_in_under_a_second(browser: Any, site: dict[str, Any]) -> None:
    page = signed_in(browser, site, site["keys"]["admin"])
    timings = []
    for _ in range(3):
        page.goto("about:blank")
        page.goto(site["url"] + "/#/u/big")
        page.wait_for_function("() => document.querySelectorAll('#memories li').length === 50 && "
                               "/of 10,000$/.test(document.getElementById('list-count').textContent)", polling="raf")
        timings.append(page.evaluate("performance.now()") / 1000)  # since this navigation started
    print(f"\nweb page, user with {BIG:,} memories: first page and total shown in "
          f"{', '.join(f'{t * 1000:.0f}' for t in timings)} ms (cold, then warm)")
    page.set_viewport_size({"width": 1280, "height": 800})
    sync_api.expect(page.locator("#users")).to_contain_text("big")  # the list beside the view, for the picture
    page.screenshot(path=IMG / "web-list-1280.png")
    page.get_by_role("button", name="Next").click()
    sync_api.expect(page.locator("#list-count")).to_have_text("51–100 of 10,000")
    assert min(timings) < 1.0
    page.context.close()


def test_the_graph_view_shows_the_seed_examples_entities_and_a_neighbourhood(browser: Any,
                                                                             site: dict[str, Any]) -> None:
    api = site["api"]
    whole = api.get("/v1/graph", params={"user_id": "gwen"}).json()
    assert {"Ana", "Lyon", "Acme Corp", "Tom", "Oslo", "Globex Corp", "Lisbon"} <= {e["name"] for e in
                                                                                   whole["entities"]}
    page = signed_in(browser, site, site["keys"]["admin"])
    page.goto(site["url"] + "/#/u/gwen")
    page.get_by_role("link", name="Graph", exact=True).click()
    sync_api.expect(page.locator("#graph-title")).to_have_text("Graph of gwen")
    rows = page.locator("#entities tbody tr")
    sync_api.expect(rows).to_have_count(len(whole["entities"]))
    shown = [[cell.strip() for cell in row.split("\t")] for row in rows.all_inner_texts()]
    assert shown == [[e["name"], e["kind"], str(e["memories"]), ", ".join(e["aliases"])] for e in whole["entities"]]
    assert page.locator("#graph-svg a.node").count() == len(whole["entities"])
    assert page.locator("#graph-svg .edge").count() == len({(r["subject"], r["object"]) for r in whole["relations"]})
    sync_api.expect(page.locator("#relations")).to_contain_text("Ana \u2014lives_in\u2192 Lyon")
    drawing = page.locator("#graph-svg").evaluate("svg => svg.outerHTML")
    page.reload()
    sync_api.expect(page.locator("#graph-svg a.node")).to_have_count(len(whole["entities"]))
    assert page.locator("#graph-svg").evaluate("svg => svg.outerHTML") == drawing  # the same graph, the same picture
    sync_api.expect(page.locator("#users")).to_contain_text("gwen")  # the list beside the view, for the picture
    page.screenshot(path=IMG / "web-graph-1280.png")

    page.locator("#graph-svg a.node", has_text="Ana").click()
    sync_api.expect(page.locator("#entity-title")).to_contain_text("Ana")
    sync_api.expect(page.locator("#entity-aliases")).to_have_text("Also called User's sister")
    near = api.get("/v1/graph/related", params={"user_id": "gwen", "name": "Ana", "hops": 2}).json()
    sync_api.expect(page.locator("#entities tbody tr")).to_have_count(len(near["entities"]))
    assert sorted(page.locator("#graph-memories li").all_inner_texts()) == sorted(m["memory"] for m in near["memories"])
    assert "My sister Ana lives in Lyon and works at Acme Corp." in page.locator("#graph-memories").inner_text()
    assert page.locator("#graph-svg a.node.centre").get_attribute("aria-label").startswith("Ana: person")
    page.get_by_label("Relations away").select_option("1")
    sync_api.expect(page).to_have_url(site["url"] + "/#/g/gwen/Ana?hops=1")
    one = api.get("/v1/graph/related", params={"user_id": "gwen", "name": "Ana", "hops": 1}).json()
    sync_api.expect(page.locator("#entities tbody tr")).to_have_count(len(one["entities"]))
    assert {"Tom", "Oslo"}.isdisjoint(e["name"] for e in one["entities"])
    page.locator("#graph-memories a", has_text="Lyon").click()
    sync_api.expect(page.locator(".memory-text")).to_have_text("My sister Ana lives in Lyon and works at Acme Corp.")
    page.context.close()


def test_entity_names_are_drawn_as_text(browser: Any, site: dict[str, Any]) -> None:
    page = signed_in(browser, site, site["keys"]["admin"])
    page.goto(site["url"] + "/#/g/mallet")
    sync_api.expect(page.locator("#entities tbody tr")).to_have_count(len(XSS_NAMES) + 1)
    assert set(XSS_NAMES) <= set(page.locator("#entities tbody td:first-child a").all_inner_texts())
    titles = set(page.locator("#graph-svg a.node title").all_text_contents())
    assert {f"{name} (thing, 1 memory)" for name in XSS_NAMES} <= titles
    assert page.locator("#view img, #view script, #view b, #view i").count() == 0
    page.locator("#graph-svg a.node", has=page.locator("title", has_text="onerror")).click()
    sync_api.expect(page.locator("#entity-title .entity-name")).to_have_text(XSS_NAMES[0])
    sync_api.expect(page.locator("#relations")).to_contain_text(XSS_NAMES[1])
    assert page.locator("#graph-memories li").all_inner_texts() == ["User met <i>odd</i> people"]
    assert page.locator("#view img, #view script, #view b, #view i").count() == 0
    assert page.evaluate("window.pwned") is None
    page.context.close()


def test_a_pinned_key_sees_no_other_users_graph(browser: Any, site: dict[str, Any]) -> None:
    page = signed_in(browser, site, site["keys"]["alice"])
    page.goto(site["url"] + "/#/g/gwen")
    sync_api.expect(page.locator("#view .error")).to_contain_text("pinned to user 'alice'")
    page.goto(site["url"] + "/#/g/gwen/Ana?hops=3")
    sync_api.expect(page.locator("#view .error")).to_contain_text("pinned to user 'alice'")
    assert page.locator("#view").inner_text().count("Lyon") == 0
    for path, params in (("/v1/graph", {}), ("/v1/graph/entities", {}), ("/v1/graph/related", {"name": "Ana"})):
        refused = page.request.get(site["url"] + path, params={"user_id": "gwen", **params})
        assert refused.status == 403 and "Lyon" not in refused.text()
    own = page.request.get(site["url"] + "/v1/graph/related", params={"name": "Ana"})  # alice's own graph
    assert own.status == 404 and own.json()["error"]["message"] == "no entity 'Ana' in this scope"
    mine = page.request.get(site["url"] + "/v1/graph")
    assert mine.status == 200 and "Lyon" not in mine.text() and "Acme" not in mine.text()
    page.goto(site["url"] + "/#/g/alice")
    sync_api.expect(page.locator("#graph-title")).to_have_text("Graph of alice")
    page.context.close()

