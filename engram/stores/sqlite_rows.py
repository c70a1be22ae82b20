"""How the SQLite store's rows are read: the memory columns, a record from a row, IN queries in chunks; and how
some are written: a memory version, a history event, and the JSON of list and object columns."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from engram.stores.keywords import pack
from engram.stores.sparse import term_counts
from engram.stores.vectors import VectorStorage, encode
from engram.types import SCOPE_FIELDS, Event, MemoryRecord

__all__ = ["COLUMNS", "HISTORY_INSERT", "OWNED", "USER_STATS", "VERSIONS", "history_row", "insert_version", "json_list",
           "json_object", "log_event", "rows_in", "to_record"]

COLUMNS = (
    "rowid, id, text, hash, user_id, agent_id, run_id, role, categories, metadata, source, "
    "created_at, updated_at, valid_from, valid_to, superseded_by, batch_id, position, expires_at"
)
HISTORY_INSERT = ("INSERT INTO history (memory_id, op, old_text, new_text, reason, source, old_version, new_version, "
                  "actor, batch_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# What a browsing page reads (Store.versions, owned, user_stats), through the indexes on id and user_id
VERSIONS = f"SELECT {COLUMNS} FROM memories WHERE id=? ORDER BY updated_at, rowid"
OWNED = f"SELECT {COLUMNS} FROM memories WHERE user_id=? ORDER BY rowid"
USER_STATS = ("SELECT user_id, count(DISTINCT CASE WHEN valid_to IS NULL THEN id END), count(DISTINCT id), "
              "max(max(updated_at, coalesce(valid_to, 0), created_at)) FROM memories WHERE user_id IS NOT NULL "
              "GROUP BY user_id ORDER BY user_id")
T = TypeVar("T")


def to_record(row: tuple) -> MemoryRecord:
    return MemoryRecord(
        version=row[0], id=row[1], text=row[2], hash=row[3], user_id=row[4], agent_id=row[5], run_id=row[6],
        role=row[7], categories=_strings(row[8]), metadata={} if row[9] == "{}" else json.loads(row[9]),
        source=_strings(row[10]), created_at=row[11], updated_at=row[12], valid_from=row[13],
        valid_to=row[14], superseded_by=row[15], batch_id=row[16], position=row[17], expires_at=row[18],
    )


def _strings(text: str) -> tuple[str, ...]:
    """A stored JSON list; most are empty, and a scope's first read decodes three of these a row."""
    return () if text == "[]" else tuple(json.loads(text))


def history_row(event: Event) -> tuple:
    """The values of HISTORY_INSERT for `event`."""
    return (event.memory_id, event.op.value, event.old_text, event.new_text, event.reason, json_list(event.source),
            event.old_version, event.new_version, event.actor, event.batch_id, event.created_at)


def json_list(values: tuple[str, ...] | list[str]) -> str:
    """A list column's text; most are empty, and a bulk import writes several a memory."""
    return json.dumps(list(values), ensure_ascii=False) if values else "[]"


def json_object(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False) if value else "{}"


def rows_in(db: sqlite3.Connection, sql: str, values: list, make: Callable[[tuple], T], params: tuple = ()) -> list[T]:
    """`sql` ending in "IN" completed with `values`, read in chunks SQLite's parameter limit allows."""
    found: list[T] = []
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        found += map(make, db.execute(f"{sql} ({','.join('?' * len(chunk))})", (*params, *chunk)).fetchall())
    return found



assert SCOPE_FIELDS == ("user_id", "agent_id", "run_id")  # the columns above name them in this order


def insert_version(db: sqlite3.Connection, record: MemoryRecord, vector: np.ndarray, keep: bool = False,
                   storage: VectorStorage = "float32", terms: bytes | None = None) -> int:
    """Insert one version of a memory, with its vector stored as `storage` and its packed term counts (counted
    here unless given); its rowid, or with `keep` the version the record carries (checked free by the caller)."""
    cursor = db.execute(
        "INSERT INTO memories (id, text, hash, user_id, agent_id, run_id, role, categories, metadata, source, "
        "created_at, updated_at, valid_from, valid_to, superseded_by, batch_id, position, expires_at, vector, "
        "terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.id, record.text, record.hash, record.user_id, record.agent_id, record.run_id, record.role,
            json_list(record.categories), json_object(record.metadata),
            json_list(record.source), record.created_at, record.updated_at, record.valid_from,
            record.valid_to, record.superseded_by, record.batch_id, record.position, record.expires_at,
            encode(vector, storage), pack(*term_counts(record.text)) if terms is None else terms,
        ),
    )
    version = cursor.lastrowid
    if keep and record.version is not None and record.version != version:
        db.execute("UPDATE memories SET rowid=? WHERE rowid=?", (record.version, version))
        version = record.version
    return int(version)  # type: ignore[arg-type]


def log_event(db: sqlite3.Connection, event: Event, keep: bool = False) -> None:
    """Append one history event; with `keep`, at the place (seq) it carries (a copy keeps its place in history)."""
    cursor = db.execute(HISTORY_INSERT, history_row(event))
    if keep and event.seq is not None and event.seq != cursor.lastrowid:
        db.execute("UPDATE history SET seq=? WHERE seq=?", (event.seq, cursor.lastrowid))
