"""The Markdown side of the files store, as pure functions: where a scope's file lies, how a memory is written as a
line, how a file people may have edited is read back, and what their edits mean.

A scope's memories are `<dir>/<scope path>/memories.md`; each current memory is one list item ending in an HTML
comment that carries its id and version, continued on lines indented by two spaces when its text has several:

    - User likes green tea <!-- id=5f0c… v=12 -->

A list item without the comment is a memory someone added by hand; any other line that is neither blank nor a
heading cannot be read and is reported (`Problem`), kept as it is, never dropped or rewritten.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from engram.types import MemoryRecord, Scope, normalize_text

__all__ = ["FILE", "Edits", "Item", "Line", "Problem", "Verbatim", "diff", "parse", "render", "render_item",
           "scope_of_path", "scope_path"]

FILE = "memories.md"
_KINDS = (("user_id", "user"), ("agent_id", "agent"), ("run_id", "run"))
_SAFE = "@+,=_-."  # kept as they are in a directory name, with letters and digits
_COMMENT = re.compile(r"^(?P<text>.*?)\s*<!--(?P<attrs>[^<>]*)-->\s*$", re.DOTALL)
_ATTR = re.compile(r"(\w+)=(\S+)")
_ITEM = re.compile(r"^[-*] (?P<rest>.*)$")
_PLAIN = re.compile(r"^- (?P<text>\S.*?) <!-- id=(?P<id>[^\s<>]+) v=(?P<v>\d+) -->$")  # as render_item writes it


def scope_path(scope: Scope) -> str:
    """The scope's directory, relative to the store's: `user-alice`, `user-alice/agent-coach`, `agent-bot`, one
    component per given field, odd characters percent-encoded; a component too long for a file name is a hash."""
    parts = []
    for name, kind in _KINDS:
        value = getattr(scope, name)
        if value is not None:
            encoded = quote(value, safe=_SAFE)
            if encoded.startswith("."):
                encoded = "%2E" + encoded[1:]
            if len(encoded) > 180:
                encoded = "~" + hashlib.sha256(value.encode()).hexdigest()[:40]
            parts.append(f"{kind}-{encoded}")
    return "/".join(parts)


def scope_of_path(path: str) -> Scope | None:
    """The scope a directory path (as `scope_path` writes it) names, or None when it names none or a hashed one."""
    given: dict[str, str] = {}
    kinds = {kind: name for name, kind in _KINDS}
    for part in path.split("/"):
        kind, _, encoded = part.partition("-")
        if kind not in kinds or not encoded or encoded.startswith("~") or kinds[kind] in given:
            return None
        given[kinds[kind]] = unquote(encoded)
    return Scope(**given) if given else None


@dataclass(frozen=True)
class Item:
    """A memory line: `memory_id` None when written by hand without the comment."""

    text: str
    memory_id: str | None
    version: int | None
    line: int  # 1-based, its first line


@dataclass(frozen=True)
class Verbatim:
    """A blank line, a heading or anything else kept as it is."""

    raw: str


@dataclass(frozen=True)
class Problem:
    """A line that cannot be read as a memory: kept in the file as it is, and reported."""

    path: str
    line: int
    raw: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.raw[:80]!r}"


Line = Item | Verbatim


def parse(content: str, path: str) -> tuple[list[Line], list[Problem]]:
    """The file's lines, in order, and the problems among them (which are kept as Verbatim lines too)."""
    lines: list[Line] = []
    problems: list[Problem] = []
    raw_lines = content.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    i = 0
    while i < len(raw_lines):
        raw = raw_lines[i]
        plain = _PLAIN.match(raw)
        if plain is not None and not (i + 1 < len(raw_lines) and raw_lines[i + 1].startswith("  ")):
            lines.append(Item(plain["text"].strip(), plain["id"], int(plain["v"]), i + 1))
            i += 1
            continue
        match = _ITEM.match(raw)
        if match is None:
            if raw.strip() and not raw.lstrip().startswith("#"):
                problems.append(Problem(path, i + 1, raw, "not a memory line (\"- text <!-- id=... -->\")"))
            lines.append(Verbatim(raw))
            i += 1
            continue
        block = [match["rest"]]
        while i + len(block) < len(raw_lines) and raw_lines[i + len(block)].startswith("  "):
            block.append(raw_lines[i + len(block)][2:])
        item = _item("\n".join(block), i + 1)
        if isinstance(item, str):
            problems.append(Problem(path, i + 1, raw, item))
            lines.extend(Verbatim(r) for r in raw_lines[i:i + len(block)])
        else:
            lines.append(item)
        i += len(block)
    return lines, problems


def _item(body: str, line: int) -> Item | str:
    """The item a list entry's body holds, or why it holds none."""
    if "<!--" not in body and "-->" not in body:
        return Item(body.strip(), None, None, line) if body.strip() else "an empty memory"
    match = _COMMENT.match(body)
    if match is None:
        return "a broken <!-- id=... --> comment"
    attrs = dict(_ATTR.findall(match["attrs"]))
    version = attrs.get("v")
    if "id" not in attrs or (version is not None and not version.isdigit()):
        return "the comment has no id, or a version that is not a number"
    if not match["text"].strip():
        return "an empty memory"
    return Item(match["text"].strip(), attrs["id"], int(version) if version else None, line)


def render_item(record: MemoryRecord) -> str:
    first, *rest = record.text.strip().split("\n")
    body = "\n".join([first] + [f"  {r}" for r in rest])
    return f"- {body} <!-- id={record.id} v={record.version} -->"


def heading(scope: Scope) -> str:
    return "# Memories of " + ", ".join(f"{kind} {getattr(scope, name)}" for name, kind in _KINDS
                                        if getattr(scope, name) is not None)


def render(lines: list[Line], current: list[MemoryRecord], scope: Scope) -> str:
    """The file after a write: the lines as they were, each memory line showing its memory's current version
    (matched by id, else by text: a line written by hand), lines of memories no longer current gone, and the
    current memories no line shows appended, in version order."""
    by_id = {r.id: r for r in current}
    by_text: dict[str, list[MemoryRecord]] = {}
    for each in current:
        by_text.setdefault(normalize_text(each.text), []).append(each)
    placed = _held(lines, current)  # a memory whose line someone broke keeps that line only
    out: list[str] = []
    for line in lines:
        if isinstance(line, Verbatim):
            out.append(line.raw)
            continue
        record: MemoryRecord | None = by_id.get(line.memory_id) if line.memory_id else None
        if record is None or record.id in placed:
            record = next((r for r in by_text.get(normalize_text(line.text), []) if r.id not in placed), None)
        if record is not None:
            placed.add(record.id)
            out.append(render_item(record))
    if not out:
        out = [heading(scope), ""]
    out.extend(render_item(r) for r in sorted(current, key=lambda r: r.version or 0) if r.id not in placed)
    return "\n".join(out) + "\n"


@dataclass
class Edits:
    """What edits by hand did to a scope's file, against its current memories."""

    added: list[str]
    changed: list[tuple[MemoryRecord, str]]  # (the current version, its new text)
    removed: list[MemoryRecord]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def diff(lines: list[Line], current: list[MemoryRecord]) -> Edits:
    """Edits by hand: a line without an id (or repeating one) is added, a line whose text differs from its
    memory's (beyond whitespace) changed it, a current memory with no line was removed."""
    by_id = {r.id: r for r in current}
    seen: set[str] = set()
    edits = Edits([], [], [])
    for line in lines:
        if not isinstance(line, Item):
            continue
        record = by_id.get(line.memory_id) if line.memory_id else None
        if record is None or record.id in seen:
            edits.added.append(line.text)
            continue
        seen.add(record.id)
        if normalize_text(line.text) != normalize_text(record.text):
            edits.changed.append((record, line.text))
    held = _held(lines, current)
    edits.removed = [r for r in current if r.id not in seen and r.id not in held]
    return edits


def _held(lines: list[Line], current: list[MemoryRecord]) -> set[str]:
    """The memories an unreadable line names by id: neither removed nor written again while it is broken."""
    kept = [line.raw for line in lines if isinstance(line, Verbatim) and "id=" in line.raw]
    return {r.id for r in current if any(f"id={r.id}" in raw for raw in kept)}
