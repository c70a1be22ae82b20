"""The contracts every part of engram speaks: scopes, memory records, hits and history events."""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any, TypeVar

from engram.compat import owner_id
from engram.errors import InvalidFilter, InvalidInput, ScopeRequired
from engram.inputs import check_string, shown

__all__ = ["FIRST_EPOCH", "LAST_EPOCH", "Event", "Hit", "MemoryRecord", "Op", "Scope", "Turn", "content_hash", "iso",
           "last_day", "new_batch_id", "new_id", "now", "tick", "to_epoch", "to_expiry"]

SCOPE_FIELDS = ("user_id", "agent_id", "run_id")


class Op(StrEnum):
    ADD = "ADD"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    NOOP = "NOOP"
    REVERT = "REVERT"


def now() -> float:
    return time.time()


# The instants engram stores: what Python's datetime represents, 0001-01-01 to 9999-12-31 (UTC), so that every
# stored time can be shown as ISO 8601. to_epoch refuses anything else; iso never fails on a stored row.
FIRST_EPOCH = datetime.min.replace(tzinfo=UTC).timestamp()
LAST_EPOCH = datetime.max.replace(microsecond=0, tzinfo=UTC).timestamp() + 0.999


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 in UTC (what results show). A time outside the years 1-9999 (only a row
    written before engram refused them can hold one) shows as the nearest representable instant."""
    if ts is None or math.isnan(ts):
        return None
    return datetime.fromtimestamp(min(max(ts, FIRST_EPOCH), LAST_EPOCH), tz=UTC).isoformat()


def to_epoch(value: Any, what: str = "time") -> float:
    """Accept epoch seconds, a datetime (naive = UTC) or an ISO 8601 string; return epoch seconds of an instant
    in the years 1 to 9999 (UTC), or raise InvalidInput."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a datetime, ISO 8601 string or epoch seconds, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value) if -1e16 < value < 1e16 else math.inf  # float() of a huge int overflows
    elif isinstance(value, datetime):
        try:
            seconds = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        except (OverflowError, ValueError, TypeError):
            raise InvalidInput(f"{what}: {shown(value)} has no usable UTC offset") from None
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())  # "Z" included, since Python 3.11
        except ValueError:
            raise InvalidInput(f"{what}: {shown(value)} is not an ISO 8601 date/time") from None
        return to_epoch(parsed, what)
    else:
        raise InvalidInput(f"{what} must be a datetime, ISO 8601 string or epoch seconds, not {type(value).__name__}")
    if not FIRST_EPOCH <= seconds <= LAST_EPOCH:  # NaN fails this too
        raise InvalidInput(f"{what}: {shown(value)} is outside the years 1 to 9999 (UTC)")
    return seconds


def to_expiry(value: Any) -> float | None:
    """An expiration date -> the instant the memory expires (epoch seconds), or None for "never". A date
    (`date`, or a "YYYY-MM-DD" string) keeps the memory through that whole day (UTC), as Mem0 does; a datetime,
    an ISO 8601 string with a time, or epoch seconds is that exact instant."""
    if value is None:
        return None
    day: date | None = None
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"expiration_date: {shown(value)} is not a date") from None
    if day is None:
        return to_epoch(value, "expiration_date")
    if day == date.max:
        return LAST_EPOCH
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC).timestamp()


def last_day(expires_at: float | None) -> str | None:
    """Mem0's `expiration_date` of a memory expiring at `expires_at`: the last day (UTC) it is shown."""
    if expires_at is None or math.isnan(expires_at):
        return None
    moment = datetime.fromtimestamp(min(max(expires_at, FIRST_EPOCH), LAST_EPOCH), tz=UTC)
    day = moment.date()
    if moment.time() == datetime.min.time() and day > date.min:  # expires at midnight: shown through the day before
        day -= timedelta(days=1)
    return day.isoformat()


_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def new_id() -> str:
    """A new memory or batch id: a UUID (version 8, RFC 9562) whose first 32 bits count microseconds, rising
    within a process and wrapping every 71 minutes, the other 90 bits (after the version and variant) random.
    The ids a write makes are neighbours in a store's indexes on them, so a bulk import into SQLite writes a few
    index pages where random (version 4) ids dirtied one per memory, and costs a third as much
    (bench/import_store.py). Ids made at different times still differ in their first 8 characters, which the CLI
    shows (a time-ordered version 7 id starts with the same 8 characters for a whole minute)."""
    value = (tick() & 0xFFFF_FFFF) << 96 | int.from_bytes(os.urandom(12), "big") & _RANDOM_BITS | _VERSION_8
    return str(uuid.UUID(int=value))


def new_batch_id() -> str:
    """A new batch id: `new_id` as 32 hex digits."""
    return new_id().replace("-", "")


class _Clock:
    """The process's one strictly increasing clock (a lock and the last tick handed out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def tick(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last


_CLOCK = _Clock()


def tick() -> int:
    """Microseconds since the epoch, strictly increasing within the process (even within one microsecond, or
    when the clock steps back): what ids begin with, and what orders Qdrant's versions, events and turns.
    Microseconds stay below 2**53 (until the year 2255), so Qdrant's float ranges compare them exactly."""
    return _CLOCK.tick()

_RANDOM_BITS = (0xFFFF << 80) | (0xFFF << 64) | ((1 << 62) - 1)  # after the microseconds: 16, 12 and 62 bits
_VERSION_8 = (0x8 << 76) | (0b10 << 62)  # the version and variant fields


R = TypeVar("R")


def evolve(record: R, **fields: Any) -> R:
    """`dataclasses.replace` for the frozen records of this module, which check nothing when made, at a fifth of
    its cost: a bulk write copies several a memory, thousands a second."""
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__, **fields)
    if fields.keys() & set(SCOPE_FIELDS):
        copy.__dict__.pop("scope", None)  # a MemoryRecord's cached owner
    return copy


@lru_cache(maxsize=2048)  # a write (up to 1,024 texts) hashes each text to look it up, then to insert it
def content_hash(text: str) -> str:
    """Identity of a memory's content: whitespace-folded, case-folded text (exact duplicates share it)."""
    return hashlib.sha256(normalize_text(text).casefold().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Scope:
    """Who a memory belongs to. A query scope matches records whose given fields are all equal."""

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        for name in SCOPE_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{name} must be a non-empty string, got {shown(value)}")
            if len(value) > 256:
                raise InvalidInput(f"{name} is longer than 256 characters")
            check_string(value, name)

    @classmethod
    def build(cls, user_id: Any = None, agent_id: Any = None, run_id: Any = None,
              filters: dict[str, Any] | None = None) -> Scope:
        """Scope from keyword arguments and/or the same keys at the top of `filters`; one is required. Integer
        and UUID ids are taken as their strings (Mem0 accepts integer ids)."""
        if filters is not None and not isinstance(filters, dict):
            raise InvalidFilter(f"filters must be a dict, got {type(filters).__name__}")
        given = {"user_id": owner_id(user_id), "agent_id": owner_id(agent_id), "run_id": owner_id(run_id)}
        for name in SCOPE_FIELDS:
            in_filter = owner_id((filters or {}).get(name))
            if in_filter is None:
                continue
            if given[name] is not None and given[name] != in_filter:
                raise InvalidInput(f"{name} given twice with different values: {shown(given[name])} and "
                                   f"{shown(in_filter)}")
            given[name] = in_filter
        scope = cls(**given)
        if scope.is_empty():
            raise ScopeRequired("at least one of user_id, agent_id or run_id is required")
        return scope

    def is_empty(self) -> bool:
        return self.user_id is None and self.agent_id is None and self.run_id is None

    def items(self) -> list[tuple[str, str]]:
        return [(name, getattr(self, name)) for name in SCOPE_FIELDS if getattr(self, name) is not None]

    def contains(self, record: MemoryRecord) -> bool:
        return all(getattr(record, name) == value for name, value in self.items())


@dataclass(frozen=True)
class MemoryRecord:
    """One version of a memory. `id` is stable across versions; `version` is the store's key of this row.

    A record is current while `valid_to` is None. UPDATE closes a version and writes a new one with the same
    id; DELETE closes it (with `superseded_by` when a newer memory contradicted it). Nothing is destroyed.
    """

    id: str
    text: str
    hash: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    role: str | None = None
    categories: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    source: tuple[str, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
    valid_from: float = 0.0
    valid_to: float | None = None
    superseded_by: str | None = None
    version: int | None = None
    batch_id: str | None = None  # the write (add() call, update, ...) that wrote this version
    position: int | None = None  # its place among that write's versions (conversational context follows it)
    expires_at: float | None = None  # from then on reads leave it out (unless show_expired); it stays current

    @cached_property
    def scope(self) -> Scope:
        """Its owner fields as a Scope (made and checked once: a bulk write asks several times a record)."""
        return Scope(self.user_id, self.agent_id, self.run_id)

    def at_version(self, version: int) -> MemoryRecord:
        """This record as stored at `version`."""
        return evolve(self, version=version)

    @property
    def is_current(self) -> bool:
        return self.valid_to is None

    def valid_at(self, ts: float) -> bool:
        return self.valid_from <= ts and (self.valid_to is None or ts < self.valid_to)

    def expired_by(self, ts: float) -> bool:
        return self.expires_at is not None and self.expires_at <= ts

    def to_dict(self) -> dict[str, Any]:
        """Mem0's result shape plus engram's fields."""
        out: dict[str, Any] = {
            "id": self.id,
            "memory": self.text,
            "hash": self.hash,
            "metadata": dict(self.metadata),
            "categories": list(self.categories),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "valid_from": iso(self.valid_from),
            "valid_to": iso(self.valid_to),
            "superseded_by": self.superseded_by,
            "source": list(self.source),
            "version": self.version,
            "batch_id": self.batch_id,
            "expiration_date": last_day(self.expires_at),
            "expires_at": iso(self.expires_at),
        }
        out.update(self.scope.items())
        if self.role:
            out["role"] = self.role
        return out


@dataclass(frozen=True)
class Hit:
    record: MemoryRecord
    score: float  # fused relevance in [0, 1], higher is better
    similarity: float  # cosine similarity to the query, clipped to [0, 1]
    rerank_score: float | None = None  # the reranker's relevance in [0, 1], when search(rerank=True) ran one
    explain: dict[str, float] | None = None  # the parts of `score`, when search(explain=True) asked for them

    def to_dict(self) -> dict[str, Any]:
        out = self.record.to_dict()
        out["score"] = round(self.score, 6)
        out["similarity"] = round(self.similarity, 6)
        if self.rerank_score is not None:
            out["rerank_score"] = round(self.rerank_score, 6)
        if self.explain is not None:
            out["explain"] = dict(self.explain)
        return out


@dataclass(frozen=True)
class Event:
    """One change in the history: what happened to which memory, why, from what, in which batch."""

    memory_id: str
    op: Op
    batch_id: str
    created_at: float
    old_text: str | None = None
    new_text: str | None = None
    reason: str | None = None
    source: tuple[str, ...] = ()
    old_version: int | None = None
    new_version: int | None = None
    actor: str | None = None
    seq: int | None = None

    def to_dict(self, role: str | None = None) -> dict[str, Any]:
        """Mem0's history row plus engram's keys. `created_at` and `updated_at` are both when the change was
        made; `role` is the memory's (events do not hold it); engram records no speaker name (`actor_id`)."""
        return {
            "id": self.seq,
            "memory_id": self.memory_id,
            "event": self.op.value,
            "old_memory": self.old_text,
            "new_memory": self.new_text,
            "reason": self.reason,
            "source": list(self.source),
            "batch_id": self.batch_id,
            "actor": self.actor,
            "actor_id": None,
            "role": role,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
            "is_deleted": self.op is Op.DELETE,
        }


@dataclass(frozen=True)
class Turn:
    """One message of a chat session, as stored. `saved` once it has been handed to add(infer=True)."""

    role: str
    content: str
    created_at: float
    seq: int | None = None
    saved: bool = False

    def to_message(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "id": f"turn-{self.seq}"}
