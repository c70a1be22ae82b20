"""`engram graph` end to end: the real command in a process of its own over a store written by the library, in
every format, with Graphviz's dot drawing the PNG, and `error: ...` with exit 2 for every mistake."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _server import engram, make_home, server_env

from engram import Memory

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PARIS = "User's sister Ana lives in Paris and works at Acme Corp."
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (make graphviz)")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Path:
    """alice: her sister Ana in Lyon, then in Paris (from March 2024); her work at Globex. bob: his own."""
    path = make_home(tmp_path_factory.mktemp("graph"), models_dir)
    with Memory(home=path) as memory:
        lyon = memory.add("My sister Ana lives in Lyon and works at Acme Corp.", user_id="alice",
                          timestamp="2024-01-01")["results"][0]["id"]
        memory.add("I work at Globex.", user_id="alice", timestamp="2024-01-02")
        memory.update(lyon, PARIS, timestamp="2024-03-01")
        memory.add("My brother Tom lives in Oslo.", user_id="bob")
    return path


def graph(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = engram(home, "graph", *args)
    assert "Traceback" not in done.stderr
    return done


def triples(found: dict) -> set[tuple[str, str, str]]:
    return {(r["subject"], r["relation"], r["object"]) for r in found["relations"]}


def test_json_whole_graph_of_a_scope(home: Path) -> None:
    done = graph(home, "--user", "alice", "--format", "json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    entities = {e["name"]: e for e in found["entities"]}
    assert entities["Ana"]["kind"] == "person" and "User's sister" in entities["Ana"]["aliases"]
    assert entities["Paris"]["memories"] == 1 and entities["User"]["memories"] == 2 and "Lyon" not in entities
    assert triples(found) == {("User", "sister", "Ana"), ("Ana", "lives_in", "Paris"), ("Ana", "works_at", "Acme Corp"),
                              ("User", "works_at", "Globex")}
    with Memory(home=home) as memory:
        assert found == memory.graph(user_id="alice")  # the library's answer, as it is
        ana = next(r for r in found["relations"] if r["relation"] == "lives_in")
        assert memory.get(ana["memory_id"], strict=True)["memory"] == ana["memory"] == PARIS
    assert "Oslo" not in done.stdout  # bob's graph is bob's


def test_an_entity_neighbourhood_by_alias_with_hops_and_as_of(home: Path) -> None:
    near = json.loads(graph(home, "-u", "alice", "--entity", "user's sister", "--hops", "1", "-f", "json").stdout)
    assert near["entity"]["name"] == "Ana"
    assert {e["name"]: (e["distance"], e["memories"]) for e in near["entities"]} == {
        "Ana": (0, 1), "Paris": (1, 1), "Acme Corp": (1, 1), "User": (1, 2)}
    assert ("User", "works_at", "Globex") not in triples(near)  # two hops away
    assert [m["memory"] for m in near["memories"]] == [PARIS]
    then = json.loads(graph(home, "-u", "alice", "-e", "Ana", "--as-of", "2024-02-01", "-f", "json").stdout)
    assert ("Ana", "lives_in", "Lyon") in triples(then) and ("User", "works_at", "Globex") in triples(then)
    table = graph(home, "-u", "alice", "-e", "Ana")
    assert table.returncode == 0 and "Paris" in table.stdout and "Ana -lives_in-> Paris" in table.stdout


def test_dot_is_a_digraph_graphviz_reads(home: Path, tmp_path: Path) -> None:
    done = graph(home, "-u", "alice", "-f", "dot")
    assert done.returncode == 0 and done.stdout.startswith("digraph engram {")
    assert 'label="Ana"' in done.stdout and 'label="lives_in"' in done.stdout
    out = tmp_path / "alice.dot"
    assert graph(home, "-u", "alice", "-f", "dot", "--output", str(out)).returncode == 0
    assert out.read_text(encoding="utf-8") == done.stdout and (out.stat().st_mode & 0o777) == 0o600
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg", str(out)], capture_output=True, text=True, timeout=60, check=True).stdout
        assert svg.count('class="node"') == 5 and svg.count('class="edge"') == 4


@needs_dot
def test_png_drawn_by_graphviz_to_a_file_or_a_pipe(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ana.png"
    done = graph(home, "-u", "alice", "-e", "Ana", "-f", "png", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 1000
    piped = subprocess.run([sys.executable, "-m", "engram.cli", "graph", "-u", "alice", "-f", "png",
                            "--home", str(home)], env=server_env(), capture_output=True, timeout=120, check=False)
    assert piped.returncode == 0 and piped.stdout.startswith(PNG_MAGIC)


def test_png_refuses_a_terminal_and_a_machine_without_graphviz(home: Path, tmp_path: Path) -> None:
    leader, terminal = pty.openpty()
    try:
        to_tty = subprocess.run([sys.executable, "-m", "engram.cli", "graph", "-u", "alice", "-f", "png",
                                 "--home", str(home)], env=server_env(), stdout=terminal, stderr=subprocess.PIPE,
                                text=True, timeout=120, check=False)
    finally:
        os.close(terminal)
        os.close(leader)
    if shutil.which("dot"):
        assert to_tty.returncode == 2 and to_tty.stderr.startswith("error: a PNG is binary: give --output FILE")
    no_dot = engram(home, "graph", "-u", "alice", "-f", "png", "-o", str(tmp_path / "x.png"), PATH=str(tmp_path))
    assert no_dot.returncode == 2 and "needs Graphviz's dot program" in no_dot.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["-u", "alice", "-e", "Zed"], "error: no entity 'Zed' in this scope"),
    (["-u", "alice", "--hops", "1"], "error: --hops goes with --entity"),
    (["-u", "alice", "-e", "Ana", "--hops", "9"], "error: hops must be an integer from 0 to 5"),
    (["-u", "alice", "--as-of", "someday"], "error: as_of"),
    (["-u", "alice", "-f", "json", "-o", "/no/such/dir/g.json"], "error: --output /no/such/dir/g.json: the directory"),
    (["-u", "alice", "-o", "g.txt"], "error: --output writes --format json, dot or png"),
    ([], "error: at least one of user_id, agent_id or run_id is required"),
])
def test_mistakes_exit_2_with_an_error_line(home: Path, args: list[str], message: str) -> None:
    done = graph(home, *args)
    assert done.returncode == 2 and done.stderr.startswith(message), done.stderr
    assert done.stdout == ""
