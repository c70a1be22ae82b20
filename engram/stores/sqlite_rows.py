"""How the SQLite store's rows are read and indexed: the memory columns, the FTS scope tokens, keyword queries."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from engram.stores.sparse import STOPWORDS
from engram.types import SCOPE_FIELDS, MemoryRecord

__all__ = ["COLUMNS", "fts_scope", "keyword_query", "rows_in", "scope_token", "to_record"]

COLUMNS = (
    "rowid, id, text, hash, user_id, agent_id, run_id, role, categories, metadata, source, "
    "created_at, updated_at, valid_from, valid_to, superseded_by, batch_id, position, expires_at"
)
_WORD = re.compile(r"\w+", re.UNICODE)
T = TypeVar("T")


def scope_token(name: str, value: str) -> str:
    return name[0] + hashlib.sha1(value.encode("utf-8")).hexdigest()[:16]


def fts_scope(record: MemoryRecord, current: bool) -> str:
    """Each scope field's token, and the same token + "c" while current: one short posting list per query."""
    tokens = [scope_token(name, value) for name, value in record.scope.items()]
    return " ".join(tokens + ([t + "c" for t in tokens] if current else []))


def keyword_query(text: str) -> str | None:
    """An FTS5 OR-query of the text's topical words, each quoted (so no user text is FTS syntax)."""
    words = []
    for word in _WORD.findall(text.casefold()):
        if word not in STOPWORDS and word not in words:
            words.append(word)
    return " OR ".join(f'"{w}"' for w in words) or None


def to_record(row: tuple) -> MemoryRecord:
    return MemoryRecord(
        version=row[0], id=row[1], text=row[2], hash=row[3], user_id=row[4], agent_id=row[5], run_id=row[6],
        role=row[7], categories=tuple(json.loads(row[8])), metadata=json.loads(row[9]), source=tuple(json.loads(row[10])),
        created_at=row[11], updated_at=row[12], valid_from=row[13], valid_to=row[14], superseded_by=row[15],
        batch_id=row[16], position=row[17], expires_at=row[18],
    )


def rows_in(db: sqlite3.Connection, sql: str, values: list, make: Callable[[tuple], T], params: tuple = ()) -> list[T]:
    """`sql` ending in "IN" completed with `values`, read in chunks SQLite's parameter limit allows."""
    found: list[T] = []
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        found += map(make, db.execute(f"{sql} ({','.join('?' * len(chunk))})", (*params, *chunk)).fetchall())
    return found



assert SCOPE_FIELDS == ("user_id", "agent_id", "run_id")  # the columns above name them in this order
