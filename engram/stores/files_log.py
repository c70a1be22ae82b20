"""The files store's append-only logs, as JSON lines: `versions.jsonl` (every version written, with its vector and
its graph, and each close and reopen of one) and `history.jsonl` (every event). Replaying them gives every version
as it stands."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from engram.errors import CorruptStore
from engram.graph import Graph
from engram.types import Event, MemoryRecord, Op

__all__ = ["EVENTS", "VERSIONS", "closed_line", "event_line", "inserted_line", "read_events", "read_versions",
           "reopened_line"]

VERSIONS = "versions.jsonl"
EVENTS = "history.jsonl"


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def inserted_line(record: MemoryRecord, vector: np.ndarray, graph: Graph | None = None) -> str:
    """A version written, with its vector and (when it names any entity) its graph (engram.graph)."""
    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    line = {"insert": asdict(record), "vector": base64.b64encode(data).decode("ascii")}
    return _line(line | {"graph": graph.to_json()} if graph else line)


def closed_line(version: int, valid_to: float | None, superseded_by: str | None) -> str:
    return _line({"close": version, "valid_to": valid_to, "superseded_by": superseded_by})


def reopened_line(version: int) -> str:
    return _line({"reopen": version})


def event_line(event: Event) -> str:
    return _line({**asdict(event), "op": event.op.value})


def _lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.exists():
        return []
    found = []
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                found.append((number, json.loads(raw)))
            except ValueError as exc:
                raise CorruptStore(f"{path}:{number} is not a JSON line ({exc}); engram writes this file, "
                                   "edit memories.md instead") from exc
    return found


def read_versions(path: Path) -> tuple[dict[int, tuple[MemoryRecord, np.ndarray]], dict[int, Graph]]:
    """Every version the log holds, by version, as it stands after the log's closes and reopens; and the graph of
    each version that has one."""
    versions: dict[int, tuple[MemoryRecord, np.ndarray]] = {}
    graphs: dict[int, Graph] = {}
    for number, data in _lines(path):
        try:
            if "insert" in data:
                fields = data["insert"]
                record = MemoryRecord(**{**fields, "categories": tuple(fields["categories"]),
                                         "source": tuple(fields["source"])})
                vector = np.frombuffer(base64.b64decode(data["vector"]), dtype=np.float32)
                versions[int(record.version)] = (record, vector)  # type: ignore[arg-type]
                if data.get("graph"):
                    graphs[int(record.version)] = Graph.from_json(data["graph"])  # type: ignore[arg-type]
            elif "close" in data:
                record, vector = versions[data["close"]]
                versions[data["close"]] = (replace(record, valid_to=data["valid_to"],
                                                   superseded_by=data["superseded_by"]), vector)
            else:
                record, vector = versions[data["reopen"]]
                versions[data["reopen"]] = (replace(record, valid_to=None, superseded_by=None), vector)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CorruptStore(f"{path}:{number} cannot be read: {exc!r}") from exc
    return versions, graphs


def read_events(path: Path) -> list[Event]:
    events = []
    for number, data in _lines(path):
        try:
            events.append(Event(**{**data, "op": Op(data["op"]), "source": tuple(data["source"])}))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptStore(f"{path}:{number} cannot be read: {exc!r}") from exc
    return events
