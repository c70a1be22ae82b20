"""The code blocks of README.md and docs/*.md, their doc-test markers, and the shown output they promise.

A fenced block may be preceded, on the line right before its fence, by one marker:

    <!-- doc-test: KIND key="value" ... -->

Without a marker, a ```python, ```sh or ```bash block is `run`; any other block must carry one. The kinds (see
tests/test_docs.py for what each check does):

    run      executed. Python in a fresh namespace, shell with bash -euo pipefail and this tree's `engram`,
             both in a scratch data directory. Options: session="NAME" (consecutive blocks of one file with the
             same session share a Python namespace or a shell data directory, because the text reads as one
             session), llm="SCRIPT" (Python: the LLM is engram.testing.FakeOpenAI answering with the named
             script), input="..." (shell: standard input, with \\n escapes), server="NAME" (below)
    output   the output of the shell block right before it; `...` alone on a line stands for any lines,
             within a line for any text, and a run of spaces for any run of spaces
    setup    shell lines that install or test engram: make targets, pip extras and pins, engram commands and
             python -m modules are checked to exist, not run
    config   a TOML config file, loaded by engram's settings
    compose  a docker compose file: parsed, its ENGRAM_* variables loaded as settings, its Qdrant image of
             qdrant-client's version; a service built from `.` matches the file's Dockerfile
    dockerfile  a Dockerfile: its base image runs a Python engram supports, the files it copies are
             enough to build engram's wheel (built), its pip lines are checked as setup lines, its ENGRAM_*
             variables load, its volume holds the data directory and its command is an `engram` command line
             on the port it exposes
    proxy    a Caddyfile (```caddy) or nginx configuration (```nginx): it forwards to engram on loopback at
             `engram serve`'s default port, lets bodies as large as engram takes through, and engram keeps the
             request id it sets
    mcp      an MCP client's JSON configuration ("mcpServers"): each server it names is connected to with the
             MCP SDK's client as the configuration says (a command over stdio, this tree's `engram` first on
             PATH; or a url with headers, where ${VAR} and ${VAR:-default} are expanded from the environment as
             Claude Code does), its tools listed and one called. Option: server="NAME"
    filters  lines `filters=...`, each run by get_all and search on sample memories
    layout   the source tree: every file it names exists and every part of engram/ is named
    skip     not run; reason="..." is required (what this machine cannot provide, e.g. a Qdrant server).
             Shell lines of a skipped block are still parsed by the CLI

A server session: consecutive run and mcp blocks of one file with the same server="NAME" read as one
terminal session next to a running server. Its first block is one `engram serve ... --port P` line: it is
started in the background in the session's scratch data directory, on a free loopback port in place of P,
and must answer /health. The later blocks run in that data directory, with P replaced by that port wherever
they name it after a colon (`127.0.0.1:P`), and each shell block starts with the environment the ones
before it exported (`export ENGRAM_KEY=$(...)` carries over, as in one shell); a Python block runs in a
process of its own with that environment. At the end the server gets SIGTERM and must exit cleanly, with no
error in its log.

Shown output in Python: a comment holding `-> PATTERN` after a statement (on its last line, or on the comment
lines right after it) shows the value of that expression statement, or of the name it assigns. PATTERN is a
Python expression, evaluated in the block's namespace and matched: `...` is any value (at the end of a list:
any further items); a string holding `...` matches any string with other text there; a dict matches a dict
holding at least its keys with matching values; a set of names matches a dict holding those keys (all of
them when the set has no `...`); lists and tuples match item by item; anything else must be equal.
A pattern may go on over further comment lines until it is a complete expression.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

KINDS: dict[str, set[str]] = {"run": {"session", "server", "llm", "input"}, "output": set(), "setup": set(),
                              "config": set(), "compose": set(), "dockerfile": set(), "proxy": set(),
                              "mcp": {"server"}, "filters": set(), "layout": set(), "skip": {"reason"}}
RUN_BY_DEFAULT = {"python", "sh", "bash"}
SHELL = {"sh", "bash"}
PROXIES = {"caddy", "nginx"}
MARKER = re.compile(r'<!-- doc-test: ([a-z]+)((?: [a-z]+="[^"]*")*) -->')
OPTION = re.compile(r' ([a-z]+)="([^"]*)"')
FENCE = re.compile(r"^```\s*([\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the first code line, 1-based
    lang: str
    code: str
    kind: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{shown_path(self.path)}:{self.line}"


def shown_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def parse(path: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown file, and the problems with its markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            if lines[i].lstrip().startswith("<!-- doc-test") and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                problems.append(f"{shown_path(path)}:{i + 1}: a doc-test marker must be right before a code fence")
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            problems.append(f"{shown_path(path)}:{i + 1}: a code fence is never closed")
            break
        lang = fence.group(1).lower()
        before = lines[i - 1].strip() if i else ""
        kind, options, problem = _marker(before, lang)
        if problem:
            problems.append(f"{shown_path(path)}:{i + 1}: {problem}")
        else:
            blocks.append(Block(path, i + 2, lang, "\n".join(lines[i + 1:end]) + "\n", kind, options))
        i = end + 1
    return blocks, problems


def _marker(line: str, lang: str) -> tuple[str, dict[str, str], str | None]:
    if not line.startswith("<!-- doc-test"):
        if lang in RUN_BY_DEFAULT:
            return "run", {}, None
        return "", {}, f"a ```{lang or '(plain)'} block needs a <!-- doc-test: KIND --> marker (one of {sorted(KINDS)})"
    found = MARKER.fullmatch(line)
    if not found:
        return "", {}, f"malformed marker {line!r}: <!-- doc-test: KIND key=\"value\" ... -->"
    kind, options = found.group(1), dict(OPTION.findall(found.group(2)))
    problem = _marker_problem(kind, options, lang)
    return ("", {}, problem) if problem else (kind, options, None)


def _marker_problem(kind: str, options: dict[str, str], lang: str) -> str | None:
    """What is wrong with a well-formed marker on a block of this language, if anything."""
    if kind not in KINDS:
        return f"unknown doc-test kind {kind!r}; known: {sorted(KINDS)}"
    wrong = {
        f"doc-test {kind} takes no {sorted(set(options) - KINDS[kind])}": bool(set(options) - KINDS[kind]),
        "a skipped block needs reason=\"...\" saying what it needs":
            kind == "skip" and len(options.get("reason", "").strip()) < 10,
        f"a ```{lang} block cannot be run": kind == "run" and lang not in RUN_BY_DEFAULT,
        "a block of a server session takes no session= or llm=":
            "server" in options and bool({"session", "llm"} & set(options)),
        f"a proxy block is ```{' or ```'.join(sorted(PROXIES))}": kind == "proxy" and lang not in PROXIES,
    }
    return next((problem for problem, found in wrong.items() if found), None)


def all_blocks() -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    problems: list[str] = []
    for path in DOC_FILES:
        found, wrong = parse(path)
        blocks += found
        problems += wrong
    return blocks, problems


def together(block: Block) -> tuple[str, str] | None:
    """The session or server session a block belongs to, if any."""
    for option in ("session", "server"):
        if option in block.options:
            return option, block.options[option]
    return None


def units(blocks: list[Block]) -> list[list[Block]]:
    """What runs together: a run block with the output block after it, and consecutive blocks of one session or
    one server session."""
    grouped: list[list[Block]] = []
    for block in blocks:
        last = grouped[-1][-1] if grouped else None
        joins = last is not None and last.path == block.path and (
            block.kind == "output" or (block.kind in ("run", "mcp") and last.kind in ("run", "output", "mcp")
                                       and together(block) is not None
                                       and together(block) == together(grouped[-1][0])))
        if joins:
            grouped[-1].append(block)
        else:
            grouped.append([block])
    return grouped


# -- shown output in Python blocks ------------------------------------------------------------------------------

CHECK = "__doc_check__"


def instrument(block: Block) -> tuple[ast.Module, dict[int, str]]:
    """The block's code, with a call `__doc_check__(value, line)` after each statement that shows its output,
    and the pattern text of each such line (README line numbers)."""
    tree = ast.parse(block.code, filename=block.where)
    shown = _shown_outputs(block)
    simple = [node for node in ast.walk(tree) if isinstance(node, ast.stmt) and not _compound(node)]
    owner: dict[int, int] = {}  # statement line -> pattern line
    for line in shown:
        before = [s for s in simple if s.end_lineno is not None and s.end_lineno <= line]
        if not before:
            raise AssertionError(f"{block.where}: the shown output of line {block.line + line - 1} follows nothing")
        statement = max(before, key=lambda s: (s.end_lineno, s.lineno))
        owner[statement.lineno] = line + block.line - 1
    tree = _Checks(owner, shown_path(block.path)).visit(tree)
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, block.line - 1)
    return tree, {line + block.line - 1: text for line, text in shown.items()}


def _compound(node: ast.stmt) -> bool:
    return any(isinstance(getattr(node, name, None), list) and getattr(node, name)
               and isinstance(getattr(node, name)[0], ast.stmt) for name in ("body", "orelse", "finalbody"))


def _shown_outputs(block: Block) -> dict[int, str]:
    """Line (in the block) of each `-> PATTERN` comment -> the pattern, continued over the comment lines after it."""
    code = block.code
    comments = {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(code).readline)
                if tok.type == tokenize.COMMENT}
    lines = code.splitlines()
    where = shown_path(block.path)
    shown: dict[int, str] = {}
    consumed: set[int] = set()
    for line, comment in comments.items():
        if "-> " not in comment or line in consumed:
            continue
        text = comment.split("-> ", 1)[1]
        following = line + 1
        while not _complete(text):
            if following not in comments or lines[following - 1].strip() != comments[following]:
                raise AssertionError(f"{where}:{block.line + line - 1}: the shown output {text!r} is not complete")
            text += " " + comments[following].lstrip("#")
            consumed.add(following)
            following += 1
        shown[line] = text
    for line, comment in comments.items():
        if line not in shown and line not in consumed and comment.lstrip("# ").startswith(("{", "[")):
            raise AssertionError(f"{where}:{block.line + line - 1}: {comment!r} looks like output; write it as "
                                 "`# -> ...` so that it is checked")
    return shown


def _complete(text: str) -> bool:
    try:
        ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return False
    return True


class _Checks(ast.NodeTransformer):
    def __init__(self, owner: dict[int, int], where: str) -> None:
        self.owner, self.where = owner, where

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            statements = getattr(node, name, None)
            if isinstance(statements, list) and statements and isinstance(statements[0], ast.stmt):
                setattr(node, name, [new for statement in statements for new in self._checked(statement)])
        return node

    def _checked(self, statement: ast.stmt) -> list[ast.stmt]:
        line = self.owner.get(statement.lineno)
        if line is None:
            return [statement]
        if isinstance(statement, ast.Expr):
            return [ast.copy_location(ast.Expr(_call(statement.value, line)), statement)]
        targets = statement.targets if isinstance(statement, ast.Assign) else []
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            check = ast.Expr(_call(ast.Name(targets[0].id, ast.Load()), line))
            return [statement, ast.copy_location(check, statement)]
        raise AssertionError(f"{self.where}:{line}: a shown output needs an expression or `name = ...` before it")


def _call(value: ast.expr, line: int) -> ast.Call:
    return ast.Call(ast.Name(CHECK, ast.Load()), [value, ast.Constant(line)], [])


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    """Execute a Python block in `namespace`, checking each output it shows."""
    tree, patterns = instrument(block)

    def check(value: Any, line: int) -> Any:
        pattern = eval(patterns[line], namespace)  # a pattern written in our own docs
        assert matches(value, pattern), f"{block.path.name}:{line} shows {patterns[line].strip()}\ngot {value!r}"
        return value

    namespace[CHECK] = check
    exec(compile(tree, str(block.path), "exec"), namespace)  # noqa: S102 - our own documentation


def matches(value: Any, pattern: Any) -> bool:  # noqa: PLR0911 - one answer per form of pattern
    """Whether `value` looks as `pattern` shows it (the rules are in this module's docstring)."""
    if pattern is Ellipsis:
        return True
    if isinstance(pattern, str) and "..." in pattern:
        parts = map(re.escape, pattern.split("..."))
        return isinstance(value, str) and re.fullmatch(".*".join(parts), value, re.DOTALL) is not None
    if isinstance(pattern, dict):
        return isinstance(value, Mapping) and all(k in value and matches(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, (set, frozenset)):
        keys = pattern - {Ellipsis}
        return isinstance(value, Mapping) and (keys <= set(value) if Ellipsis in pattern else keys == set(value))
    if isinstance(pattern, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        if pattern and pattern[-1] is Ellipsis:
            return len(value) >= len(pattern) - 1 and all(map(matches, value, pattern[:-1]))
        return len(value) == len(pattern) and all(map(matches, value, pattern))
    return bool(value == pattern)


def output_matches(actual: str, shown: str) -> bool:
    """Whether a command's output looks as an output block shows it: a line `...` stands for any lines, `...`
    within a line for any text, and a run of spaces for any run of spaces (table columns may be wider)."""
    pieces = []
    for line in shown.rstrip("\n").splitlines():
        if line.strip() == "...":
            pieces.append(r"(?:[^\n]*\n)*?")
        else:
            texts = [" +".join(map(re.escape, re.split(" +", text))) for text in line.rstrip().split("...")]
            pieces.append("[^\n]*?".join(texts) + "\n")
    text = "\n".join(line.rstrip() for line in actual.rstrip("\n").splitlines()) + "\n"
    return re.fullmatch("".join(pieces), text) is not None


if __name__ == "__main__":  # python doc_blocks.py PATH LINE < CODE: one Python block, in a process of its own
    import sys

    run_python(Block(Path(sys.argv[1]), int(sys.argv[2]), "python", sys.stdin.read(), "run"), {"__name__": "__docs__"})
