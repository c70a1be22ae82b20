"""Every code block of README.md and docs/*.md is run, or checked as what it is, and its shown output compared.

The marker convention and the shown-output rules are in tests/doc_blocks.py; doc_server.py runs the server
sessions and MCP client configurations, doc_checks.py checks the blocks that are read rather than run, and
doc_llm.py holds the fake LLM's answers. A block added without a way to check it fails
`test_every_block_is_run_or_marked`.
"""

from __future__ import annotations

import ast
import codecs
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from doc_blocks import (
    ROOT,
    SHELL,
    Block,
    all_blocks,
    matches,
    output_matches,
    parse,
    run_python,
    units,
)
from doc_checks import (
    check_built_service,
    check_dockerfile,
    check_engram_env,
    check_proxy,
    check_setup_line,
    check_upstream,
    directives,
    engram_parses,
    size,
    upstreams,
)
from doc_llm import LLM_SCRIPTS
from doc_server import ServerSession, connect_all, expand

from engram import AsyncMemory, Memory, Settings
from engram.agent import Agent
from engram.filters import OPERATORS
from engram.server.mcp import TOOLS
from engram.testing import FakeOpenAI

BLOCKS, PROBLEMS = all_blocks()
UNITS = units(BLOCKS)
MAX_SKIPPED = 3  # what this machine cannot run at all: a Qdrant server; keep it small


def of_kind(kind: str, langs: set[str] | None = None) -> list[Any]:
    """The units that start with a block of this kind (server sessions apart)."""
    found = [u for u in UNITS if u[0].kind == kind and (langs is None or u[0].lang in langs)
             and "server" not in u[0].options]
    return [pytest.param(u, id=u[0].where) for u in found]


def server_sessions() -> list[Any]:
    return [pytest.param(u, id=u[0].where) for u in UNITS if "server" in u[0].options]


def test_every_block_is_run_or_marked() -> None:
    assert PROBLEMS == []
    assert len(BLOCKS) > 10, "the docs were not read"
    skipped = [b.where for b in BLOCKS if b.kind == "skip"]
    assert len(skipped) <= MAX_SKIPPED, f"too many skipped blocks: {skipped}"
    for unit in UNITS:
        first = unit[0]
        assert first.kind != "output", f"{first.where}: an output block must follow a shell block that runs"
        assert all(b.kind != "output" for b in unit) or (first.kind == "run" and first.lang in SHELL), \
            f"{first.where}: an output block shows what a shell block that runs prints; Python shows it in # -> ..."
    checked = {u[0].kind for u in UNITS}
    assert checked <= {"run", "setup", "config", "compose", "dockerfile", "proxy", "mcp", "filters", "layout", "skip"}


def test_the_shown_output_rules() -> None:
    row = {"id": "9e6e", "memory": "I like tea", "score": 0.5, "metadata": {"k": 1}}
    assert matches({"results": [row, row]}, {"results": [{"memory": "I like tea", "score": ...}, ...]})
    assert matches(row, {"id", "memory", ...}) and not matches(row, {"id", "memory"})
    assert matches("User likes tea more than coffee", "User likes tea...")
    assert not matches([row, row], [row]) and matches({"results": []}, {"results": [...]})
    assert not matches({"results": []}, {"results": [..., ...]})  # at least one result, then any more
    assert not matches(row, {"memory": "I like coffee"}) and not matches(None, "...")
    assert output_matches("a\nb  \nc 1.5 ms\nd\n", "a\n...\nc ... ms\nd\n")
    assert output_matches("│ 1db311aa │ 0.5 │\n", "│ ...      │ 0.5   │\n") and not output_matches("ab\n", "a b\n")
    assert not output_matches("a\nb\n", "a\n") and not output_matches("a b\n", "a ...\nc\n")


def test_the_rules_for_files_read_not_run(tmp_path: Path) -> None:
    assert expand("Token ${KEY}@${HOST:-localhost}", {"KEY": "k"}) == "Token k@localhost"
    with pytest.raises(AssertionError, match=r"KEY.* is not set"):
        expand("Token ${KEY}", {})
    assert directives("nginx", "server {\n  listen 443;  # tls\n}\n") == [["server"], ["listen", "443"]]
    with pytest.raises(AssertionError, match="needs a ;"):
        directives("nginx", "server {\n  listen 443\n}\n")
    with pytest.raises(AssertionError, match="unbalanced"):
        directives("caddy", "example.com {\n  reverse_proxy 127.0.0.1:8765\n")
    assert upstreams("caddy", directives("caddy", "a.com {\n  reverse_proxy 127.0.0.1:8765\n}")) == ["127.0.0.1:8765"]
    with pytest.raises(AssertionError, match="keep engram on loopback"):
        check_upstream("10.0.0.2:8765")
    assert size("2m") == 2 * 1024**2 and size("512") == 512
    with pytest.raises(AssertionError, match="engram requires"):
        check_dockerfile("FROM python:3.9-slim\n", tmp_path)
    with pytest.raises(AssertionError, match="ADD is not checked"):
        check_dockerfile("FROM python:3.12\nADD . /src\n", tmp_path)
    with pytest.raises(AssertionError, match="no such file"):
        check_dockerfile("FROM python:3.12\nCOPY setup.cfg /src/\n", tmp_path)


MARKED = """\
<!-- doc-test: run session="tour" -->
```python
x = [1, 2]
```
Some text.
<!-- doc-test: run session="tour" -->
```python
x  # -> [1, ...]
```
```sh
echo hi
```

<!-- doc-test: output -->
```text
hi
```
```yaml
a: 1
```
<!-- doc-test: skip reason="" -->
```python
```
<!-- doc-test: frobnicate -->
```python
```
<!-- doc-test: skip reason="needs a Qdrant server" -->

```python
```
<!-- doc-test: run server="api" -->
```sh
engram serve --port 8765
```
<!-- doc-test: run server="api" -->
```sh
curl -s http://127.0.0.1:8765/health
```
<!-- doc-test: output -->
```text
{"status":"ok"}
```
<!-- doc-test: mcp server="api" -->
```json
{"mcpServers": {}}
```
```python
print("not in the session")
```
<!-- doc-test: run server="api" session="tour" -->
```sh
```
<!-- doc-test: proxy -->
```text
```
"""


def test_markers_are_read_and_their_mistakes_reported(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(MARKED)
    blocks, problems = parse(doc)
    assert [[(b.line, b.kind) for b in unit] for unit in units(blocks)] == [
        [(3, "run"), (8, "run")], [(11, "run"), (16, "output")], [(30, "run")],
        [(33, "run"), (37, "run"), (41, "output"), (45, "mcp")], [(48, "run")]]
    assert [p.split(": ", 1)[1].split(" ")[:3] for p in problems] == [
        ["a", "```yaml", "block"], ["a", "skipped", "block"], ["unknown", "doc-test", "kind"],
        ["a", "doc-test", "marker"], ["a", "block", "of"], ["a", "proxy", "block"]]


def test_shown_output_in_python_is_checked(tmp_path: Path) -> None:
    def block(code: str) -> Block:
        return Block(tmp_path / "doc.md", 10, "python", code, "run")

    run_python(block("x = [1, 2]  # -> [1, ...]\nlen(x)\n# -> (\n#    2)\n"), {})
    with pytest.raises(AssertionError, match=r"doc.md:11 shows 3"):
        run_python(block("x = [1, 2]\nlen(x)  # -> 3\n"), {})
    with pytest.raises(AssertionError, match=r"doc.md:11: .* looks like output"):
        run_python(block("x = [1, 2]\n# [1, 2]\n"), {})
    with pytest.raises(AssertionError, match=r"doc.md:10: the shown output .* is not complete"):
        run_python(block("x = [1, 2]  # -> [1,\n"), {})


# -- Python -----------------------------------------------------------------------------------------------------

def close_all(namespace: dict[str, Any]) -> None:
    opened = [v for v in namespace.values() if isinstance(v, (Agent, Memory, AsyncMemory))]
    for value in sorted(opened, key=lambda v: not isinstance(v, Agent)):  # an agent saves into its memory
        value.close()


@pytest.mark.parametrize("unit", of_kind("run", {"python"}))
def test_python_blocks_run_and_return_what_they_show(unit: list[Block], home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_HOME", str(home))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    script = LLM_SCRIPTS[unit[0].options["llm"]] if "llm" in unit[0].options else None
    with ExitStack() as stack:
        if script is not None:
            fake = stack.enter_context(FakeOpenAI())
            fake.script_chat(*script)
            monkeypatch.setenv("ENGRAM_LLM_API_BASE", fake.base_url)  # the endpoint, as a reader would set it
            monkeypatch.setenv("ENGRAM_LLM_RETRIES", "0")
        namespace: dict[str, Any] = {"__name__": "__docs__"}
        try:
            for block in unit:
                run_python(block, namespace)
        finally:
            close_all(namespace)
        if script is not None:
            assert fake.errors == [] and fake.count("/chat/completions") == len(script)


@pytest.mark.parametrize("unit", of_kind("skip", {"python"}))
def test_skipped_python_blocks_call_what_exists(unit: list[Block]) -> None:
    """Not run, but their imports work and every call they make fits the signature of what it calls."""
    tree = ast.parse(unit[0].code)
    namespace: dict[str, Any] = {}
    imports: list[ast.stmt] = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(imports, []), unit[0].where, "exec"), namespace)  # noqa: S102
    calls = [(node, node.func.id) for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    assert calls
    for call, name in calls:
        assert name in namespace, f"{unit[0].where}: {name} is not imported"
        inspect.signature(namespace[name]).bind(*call.args, **{k.arg: None for k in call.keywords if k.arg})


# -- shell ------------------------------------------------------------------------------------------------------

@pytest.fixture
def shell_env(tmp_path: Path, home: Path, models_dir: Path) -> dict[str, str]:
    """This tree's engram first on PATH, a scratch HOME, and ENGRAM_HOME holding the session's exported model.

    `mktemp -d` is wrapped too: the directory it makes holds that model already, so a block that makes a new data
    directory does not spend ~13 s exporting it again; everything else about the directory is as mktemp made it.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shims = {"engram": f'exec "{sys.executable}" -m engram.cli "$@"',
             "mktemp": f'made=$("{shutil.which("mktemp")}" "$@") || exit\n'
                       f'case " $* " in *" -d "*) ln -s "{models_dir}" "$made/models";; esac\necho "$made"'}
    for name, body in shims.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGRAM_", "OPENAI_"))}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path), "COLUMNS": "100", "ENGRAM_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def check_ran(block: Block, done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block.where}:\n{output[-4000:]}"
    assert "Traceback" not in output and "error:" not in output, f"{block.where}:\n{output[-4000:]}"


def check_printed(block: Block, printed: str) -> None:
    assert output_matches(printed, block.code), f"{block.where} shows\n{block.code}\nbut it printed\n{printed}"


@pytest.mark.parametrize("unit", of_kind("run", SHELL))
def test_shell_blocks_run_and_print_what_they_show(unit: list[Block], shell_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    printed = ""
    for block in unit:
        if block.kind == "output":
            check_printed(block, printed)
            continue
        stdin = codecs.decode(block.options.get("input", ""), "unicode_escape")
        # A block that starts a server and never ends fails after 3 minutes rather than holding the suite.
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=work, env=shell_env, input=stdin,
                              capture_output=True, text=True, timeout=180, check=False)
        check_ran(block, done)
        printed = done.stdout


@pytest.mark.parametrize("unit", server_sessions())
def test_server_sessions_run_against_the_server_they_start(unit: list[Block], shell_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    printed = ""
    with ServerSession(unit[0], shell_env, work) as session:
        for block in unit[1:]:
            if block.kind == "output":
                check_printed(block, printed)
            elif block.kind == "mcp":
                tools = connect_all(session.text(block), session.env, work)
                assert all(set(names) == set(TOOLS) for names in tools.values()), f"{block.where}: {tools}"
            elif block.lang in SHELL:
                done = session.run_shell(block)
                check_ran(block, done)
                printed = done.stdout
            else:
                done = session.run_python(block)
                assert done.returncode == 0, f"{block.where}:\n{(done.stdout + done.stderr)[-4000:]}"


@pytest.mark.parametrize("unit", of_kind("mcp"))
def test_mcp_client_configurations_connect(unit: list[Block], shell_env: dict[str, str], tmp_path: Path) -> None:
    tools = connect_all(unit[0].code, shell_env, tmp_path)
    assert all(set(names) == set(TOOLS) for names in tools.values()), f"{unit[0].where}: {tools}"


@pytest.mark.parametrize("unit", of_kind("skip", SHELL))
def test_skipped_shell_blocks_are_command_lines_engram_takes(unit: list[Block]) -> None:
    for line in unit[0].code.splitlines():
        words = [w for w in shlex.split(line, comments=True) if not re.fullmatch(r"[A-Z_]+=.*", w)]
        if words:
            assert words[0] == "engram", f"{unit[0].where}: a skipped shell line must be an engram command: {line}"
            engram_parses(words[1:])


@pytest.mark.parametrize("unit", of_kind("setup"))
def test_setup_blocks_name_targets_extras_and_commands_that_exist(unit: list[Block]) -> None:
    for line in unit[0].code.splitlines():
        check_setup_line(line)


# -- configuration, compose files, filters, layout ---------------------------------------------------------------

def flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        out.update(flat(value, f"{prefix}{key}_") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


@pytest.mark.parametrize("unit", of_kind("config"))
def test_config_blocks_load_as_settings(unit: list[Block], tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(unit[0].code)
    settings = Settings.load(env={"ENGRAM_CONFIG": str(path), "ENGRAM_HOME": str(tmp_path)})
    for name, value in flat(tomllib.loads(unit[0].code)).items():
        assert str(getattr(settings, name)) == str(value), name


@pytest.mark.parametrize("unit", of_kind("compose"))
def test_compose_blocks_set_engram_settings_and_qdrants_version(unit: list[Block], tmp_path: Path) -> None:
    client = ".".join(version("qdrant-client").split(".")[:2])
    services = yaml.safe_load(unit[0].code)["services"]
    for name, service in services.items():
        image = service.get("image", "")
        if image.startswith("qdrant/qdrant:"):
            assert image.split(":v")[1].startswith(client + "."), f"{name}: {image} is not qdrant-client {client}"
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        if service.get("build") == ".":
            dockerfiles = [b for b in parse(unit[0].path)[0] if b.kind == "dockerfile"]
            assert len(dockerfiles) == 1, f"{unit[0].where}: built from ., so the doc shows one Dockerfile"
            env = {**check_built_service(service, dockerfiles[0].code, tmp_path / "image").env, **env}
        check_engram_env(env, tmp_path)


@pytest.mark.parametrize("unit", of_kind("dockerfile"))
def test_dockerfiles_build_engram_and_serve_it(unit: list[Block], tmp_path: Path) -> None:
    image = check_dockerfile(unit[0].code, tmp_path / "image")
    assert image.command[1] == "serve", f"{unit[0].where}: the image serves engram"


@pytest.mark.parametrize("unit", of_kind("proxy"))
def test_proxies_forward_to_engram_as_it_expects(unit: list[Block], tmp_path: Path) -> None:
    check_proxy(unit[0].lang, unit[0].code, Settings.load(env={"ENGRAM_HOME": str(tmp_path)}))


@pytest.fixture
def sample(memory: Memory) -> Memory:
    memory.add("I'm allergic to peanuts", user_id="alice", infer=False, categories=["health"],
               metadata={"city": "Paris", "rank": 3, "note": "from the doctor"})
    memory.add("I drink my coffee black", user_id="alice", infer=False, metadata={"city": "Rome", "rank": 1})
    return memory


@pytest.mark.parametrize("unit", of_kind("filters"))
def test_filter_examples_are_accepted_and_match(unit: list[Block], sample: Memory) -> None:
    tree = ast.parse(unit[0].code)
    for statement in tree.body:
        assert isinstance(statement, ast.Assign) and ast.unparse(statement.targets[0]) == "filters", \
            f"{unit[0].where}: every line is filters=..."
        filters = ast.literal_eval(statement.value)
        assert sample.get_all(user_id="alice", filters=filters)["results"], f"{filters} matches no sample memory"
        sample.search("what does she eat or drink?", user_id="alice", filters=filters)
    named = [c for c in re.findall(r"#(.*)", unit[0].code) if {"eq", "ne"} <= set(c.split())]
    assert [set(c.split()) for c in named] == [set(OPERATORS)]


def layout_paths(text: str) -> list[Path]:
    """The paths the layout's first column names: unindented from the root, indented by two inside engram/
    (deeper lines go on describing the entry above)."""
    paths = []
    for line in text.splitlines():
        entry = re.fullmatch(r"( {2})?(\S+(?:, \S+)*)(?: {2,}.*)?", line)
        if entry:
            base = ROOT / "engram" if entry.group(1) else ROOT
            paths += [base / name for name in entry.group(2).split(", ")]
    return paths


@pytest.mark.parametrize("unit", of_kind("layout"))
def test_the_layout_names_what_exists_and_all_of_engram(unit: list[Block]) -> None:
    text = unit[0].code
    named = layout_paths(text)
    assert ROOT / "engram" / "memory.py" in named
    for path in named:
        assert path.exists(), f"the layout names {path.relative_to(ROOT)}, which does not exist"
    for name in re.findall(r"[\w-]+\.py\b", text):  # in the descriptions too
        places = [ROOT / "engram", ROOT / "tests", ROOT / "bench"]
        assert any(list(place.rglob(name)) for place in places), f"the layout names {name}, which does not exist"
    engram_part = text.split("\ndocs/")[0]
    parts = {p.name + ("/" if p.is_dir() else "") for p in (ROOT / "engram").iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    left_out = {part for part in parts if not re.search(rf"(?<![\w/]){re.escape(part)}", engram_part)}
    assert not left_out, f"the layout leaves out {sorted(left_out)} of engram/"
