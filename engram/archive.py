"""engram's full export: everything a store holds, as JSON lines, and such a file read back as a migration source.

The first line is a header: `{"engram": "archive", "format": 2, "embedder": name, "dimension": n, "scope": ...}`.
Then one line per version of a memory (`{"version": {...its fields...}, "vector": base64 of float32, "graph":
{...}}`, the graph only when the version names entities: engram.archive_graph), per history event (`{"event":
{...}}`) and per chat session (`{"session": {...}, "turns": [...]}`), and a last line `{"end": {counts}}`, so that
a file cut short is refused rather than half imported. Format 1 (written before graphs were exported) is read too:
its versions get the graph the rules give their text, as add(infer=False) would. Ids, versions, history
places (seq), batches and positions, validity and every time are written as the store has them (times as epoch
seconds: JSON floats round-trip exactly), so importing the file into an empty store gives back the same store.
An import is `engram.migrate.migrate(read_archive(path), store, keep_ids=True)`: resumable and verified.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from engram.archive_graph import check_graph, rules_graphs
from engram.errors import EmbedderMismatch, InvalidInput, NotFound
from engram.graph import Graph
from engram.inputs import check_categories, check_id, check_metadata, check_string
from engram.stores.base import Session, Store
from engram.types import FIRST_EPOCH, LAST_EPOCH, Event, MemoryRecord, Op, Scope, Turn

__all__ = ["FORMAT", "Archive", "export_archive", "is_archive", "read_archive"]

FORMAT = 2
READS = (1, 2)  # format 1: no graphs
VERSIONS_PER_READ = 500  # versions whose graphs an export reads at once


def _line(out: TextIO, value: dict[str, Any]) -> None:
    out.write(json.dumps(value, ensure_ascii=False, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def export_archive(store: Store, out: TextIO, *, scope: Scope | None = None,
                   binding: tuple[str, int] | None = None) -> dict[str, int]:
    """Write every version (with its vector), event and chat session of `store` (those of `scope`, if given) to
    `out`; return the counts. `binding`: the store's (embedder, dimension), when the store cannot tell it."""
    binding = store.binding() or binding
    _line(out, {"engram": "archive", "format": FORMAT, "embedder": binding[0] if binding else None,
                "dimension": binding[1] if binding else None, "scope": dict(scope.items()) if scope else None,
                "exported_at": datetime.now(UTC).isoformat()})
    counts = dict.fromkeys(["memories", "versions", "graphs", "events", "sessions", "turns"], 0)
    memory_ids: dict[str, None] = {}
    held: list[tuple[MemoryRecord, np.ndarray]] = []
    for record, vector in store.dump():
        if scope is None or scope.contains(record):
            held.append((record, vector))
            memory_ids[record.id] = None
        if len(held) == VERSIONS_PER_READ:
            _versions(out, store, held, counts)
            held = []
    _versions(out, store, held, counts)
    counts["memories"] = len(memory_ids)
    for event in store.all_events():
        if event.memory_id in memory_ids:
            plain = {f.name: _plain(getattr(event, f.name)) for f in fields(Event)}
            _line(out, {"event": plain | {"op": event.op.value}})
            counts["events"] += 1
    for session, turns in store.sessions.dump():
        if scope is None or scope.contains(session):  # type: ignore[arg-type]
            _line(out, {"session": {f.name: getattr(session, f.name) for f in fields(Session)},
                        "turns": [{f.name: getattr(t, f.name) for f in fields(Turn)} for t in turns]})
            counts["sessions"] += 1
            counts["turns"] += len(turns)
    _line(out, {"end": counts})
    return counts


def _versions(out: TextIO, store: Store, held: list[tuple[MemoryRecord, np.ndarray]], counts: dict[str, int]) -> None:
    """Write these versions' lines, each with its vector and graph."""
    graphs = store.graphs([r.version for r, _ in held]) if held and store.keeps_graph else {}  # type: ignore[misc]
    for record, vector in held:
        line = {"version": {f.name: _plain(getattr(record, f.name)) for f in fields(MemoryRecord)},
                "vector": base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")}
        graph = graphs.get(record.version)  # type: ignore[arg-type]
        if graph:
            line["graph"] = graph.to_json()
            counts["graphs"] += 1
        _line(out, line)
        counts["versions"] += 1


def is_archive(path: str | Path) -> bool:
    """Whether the file starts with a full export's header line."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            first = json.loads(fh.readline())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(first, dict) and first.get("engram") == "archive"


@dataclass
class ArchivedSessions:
    """The chat sessions of a full export, as a store's `sessions` gives them to a copy."""

    held: list[tuple[Session, list[Turn]]] = field(default_factory=list)

    def dump(self) -> list[tuple[Session, list[Turn]]]:
        return list(self.held)


@dataclass
class Archive:
    """A full export, read and checked whole: what engram.migrate copies from (it has a store's read methods)."""

    embedder: tuple[str, int] | None
    scope: dict[str, str] | None
    format: int = FORMAT
    records: list[MemoryRecord] = field(default_factory=list)
    by_version: dict[int, np.ndarray] = field(default_factory=dict)
    graph_by_version: dict[int, Graph] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    sessions: ArchivedSessions = field(default_factory=ArchivedSessions)

    def binding(self) -> tuple[str, int] | None:
        return self.embedder

    def bind_embedder(self, name: str, dimension: int) -> None:
        if self.embedder is not None and self.embedder != (name, dimension):
            raise EmbedderMismatch(f"the export holds vectors of embedder {self.embedder[0]!r} (dimension "
                                   f"{self.embedder[1]}), not of {name!r} (dimension {dimension})")

    def dump(self) -> Iterator[tuple[MemoryRecord, np.ndarray]]:
        for record in self.records:
            yield record, self.by_version[record.version]  # type: ignore[index]

    def vectors(self, versions: list[int]) -> np.ndarray:
        missing = [v for v in versions if v not in self.by_version]
        if missing:
            raise NotFound(f"no vector for version(s) {missing[:3]} in the export")
        return np.stack([self.by_version[v] for v in versions])

    def all_events(self) -> list[Event]:
        return list(self.events)

    keeps_graph = True

    def graphs(self, versions: list[int]) -> dict[int, Graph]:
        return {v: self.graph_by_version[v] for v in versions if v in self.graph_by_version}


def read_archive(path: str | Path) -> Archive:
    """The whole file, every line checked before anything is returned (InvalidInput names the bad line)."""
    with open(path, "rb") as fh:
        lines = [(number, raw) for number, raw in enumerate(fh, 1) if raw.strip()]
    if not lines:
        raise InvalidInput(f"{path} is empty")
    header = _json(*lines[0])
    if header.get("engram") != "archive":
        raise InvalidInput(f"{path} is not a full engram export (no header line)")
    given = header.get("format")
    if isinstance(given, bool) or given not in READS:
        raise InvalidInput(f"{path} is format {given!r} of engram's export; this engram reads "
                           f"{' and '.join(map(str, READS))}")
    archive = Archive(_binding(header), header.get("scope"), given)
    end: dict[str, Any] | None = None
    for number, raw in lines[1:]:
        if end is not None:
            raise InvalidInput(f"line {number}: text after the end line")
        row = _json(number, raw)
        try:
            end = _take(archive, row)
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}: {exc}") from None
    if end is None:
        raise InvalidInput(f"{path} has no end line: the export was cut short")
    _check_whole(archive, end)
    if archive.format == 1:  # written before graphs were exported
        archive.graph_by_version = rules_graphs(archive.records) | archive.graph_by_version
    return archive


def _json(number: int, raw: bytes) -> dict[str, Any]:
    try:
        row = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"line {number}: not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise InvalidInput(f"line {number}: expected a JSON object")
    return row


def _binding(header: dict[str, Any]) -> tuple[str, int] | None:
    name, dimension = header.get("embedder"), header.get("dimension")
    if name is None and dimension is None:
        return None
    if not isinstance(name, str) or not isinstance(dimension, int) or isinstance(dimension, bool) or dimension <= 0:
        raise InvalidInput(f"line 1: embedder {name!r} of dimension {dimension!r} is not a binding")
    return name, dimension


def _take(archive: Archive, row: dict[str, Any]) -> dict[str, Any] | None:
    """Add one line's content to `archive`; the end line's counts when it is that line."""
    if "version" in row:
        record = _build(MemoryRecord, row["version"], _RECORD_CHECKS)
        _ = record.scope  # InvalidInput when an owner field is not one
        if not isinstance(record.version, int) or record.version in archive.by_version:
            raise InvalidInput(f"version {record.version!r} is not a new integer")
        archive.by_version[record.version] = _vector(row.get("vector"), archive.embedder)
        archive.records.append(record)
        graph = check_graph(row["graph"]) if "graph" in row else None
        if graph:
            archive.graph_by_version[record.version] = graph
    elif "event" in row:
        archive.events.append(_build(Event, row["event"], _EVENT_CHECKS))
    elif "session" in row:
        turns = row.get("turns")
        if not isinstance(turns, list):
            raise InvalidInput("a session needs a list of turns")
        session = _build(Session, row["session"], _SESSION_CHECKS)
        _ = session.scope
        archive.sessions.held.append((session, [_build(Turn, turn, _TURN_CHECKS) for turn in turns]))
    elif "end" in row and isinstance(row["end"], dict):
        return row["end"]
    else:
        raise InvalidInput("expected a version, event, session or end line")
    return None


def _build(kind: Any, values: Any, checks: dict[str, Callable[[Any, str], Any]]) -> Any:
    """`kind(**values)` with every field checked: a known field by its check, one this module does not know
    (added to the type since) as JSON gives it, tuples from lists. Unknown keys are refused, never dropped."""
    if not isinstance(values, dict):
        raise InvalidInput(f"expected an object of {kind.__name__} fields")
    known = {f.name: f for f in fields(kind)}
    extra = set(values) - set(known)
    if extra:
        raise InvalidInput(f"unknown {kind.__name__} field(s) {sorted(extra)} (written by a newer engram?)")
    given = {}
    for name, f in known.items():
        if name not in values:
            if f.default is MISSING and f.default_factory is MISSING:
                raise InvalidInput(f"{kind.__name__} field {name!r} is missing")
            continue
        value = checks.get(name, lambda v, _: v)(values[name], name)
        given[name] = tuple(value) if isinstance(value, list) and str(f.type).startswith("tuple") else value
    return kind(**given)


def _vector(text: Any, binding: tuple[str, int] | None) -> np.ndarray:
    if binding is None:
        raise InvalidInput("a version in an export whose header names no embedder")
    try:
        vector = np.frombuffer(base64.b64decode(str(text), validate=True), dtype="<f4").astype(np.float32)
    except ValueError:
        raise InvalidInput("vector is not base64 of float32 values") from None
    if vector.shape != (binding[1],) or not np.isfinite(vector).all():
        raise InvalidInput(f"vector is not {binding[1]} finite numbers")
    return vector


def _check_whole(archive: Archive, end: dict[str, Any]) -> None:
    sessions = archive.sessions.held
    found = {"versions": len(archive.records), "events": len(archive.events), "sessions": len(sessions),
             "turns": sum(len(turns) for _, turns in sessions)}
    if archive.format >= 2:
        found["graphs"] = len(archive.graph_by_version)
    if any(end.get(name) != count for name, count in found.items()):
        raise InvalidInput(f"the end line counts {end}, the file holds {found}: it is not one whole export")
    current = [r.id for r in archive.records if r.is_current]
    if len(current) != len(set(current)):
        raise InvalidInput("a memory has two current versions in the export")


# -- field checks: what a hand-edited or hostile file could hold that a store would then fail to read ----------

def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    return check_string(value, what)


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, what: None if value is None else check(value, what)


def _ident(value: Any, what: str) -> str:
    check_id(value, what)
    return value


def _time(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not FIRST_EPOCH <= value <= LAST_EPOCH:
        raise InvalidInput(f"{what} must be epoch seconds within the years 1 to 9999")
    return float(value)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidInput(f"{what} must be a non-negative integer below 2**63")
    return value


def _texts(value: Any, what: str) -> list[str]:
    if not isinstance(value, list):
        raise InvalidInput(f"{what} must be a list of strings")
    return [_text(item, what) for item in value]


def _categories(value: Any, what: str) -> tuple[str, ...]:
    checked = check_categories(value)
    if list(checked) != value:
        raise InvalidInput(f"{what} must be lower-case, stripped, distinct strings")
    return checked


def _op(value: Any, what: str) -> Op:
    try:
        return Op(_text(value, what))
    except ValueError:
        raise InvalidInput(f"{what} must be one of {', '.join(op.value for op in Op)}") from None


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false")
    return value


_OWNER = {name: _optional(_text) for name in ("user_id", "agent_id", "run_id")}
_RECORD_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "id": _ident, "text": _text, "hash": _text, **_OWNER, "role": _optional(_text), "categories": _categories,
    "metadata": lambda v, _: check_metadata(v), "source": _texts, "created_at": _time, "updated_at": _time,
    "valid_from": _time, "valid_to": _optional(_time), "superseded_by": _optional(_ident),
    "version": _integer, "batch_id": _optional(_ident), "position": _optional(_integer),
    "expires_at": _optional(_time),
}
_EVENT_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "memory_id": _ident, "op": _op, "batch_id": _ident, "created_at": _time,
    "old_text": _optional(_text), "new_text": _optional(_text), "reason": _optional(_text), "source": _texts,
    "old_version": _optional(_integer), "new_version": _optional(_integer), "actor": _optional(_text),
    "seq": _optional(_integer),
}
_SESSION_CHECKS: dict[str, Callable[[Any, str], Any]] = {"id": _ident, **_OWNER, "created_at": _time,
                                                         "updated_at": _time}
_TURN_CHECKS: dict[str, Callable[[Any, str], Any]] = {"role": _text, "content": _text, "created_at": _time,
                                                      "seq": _optional(_integer), "saved": _flag}
