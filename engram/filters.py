"""Mem0-style filter expressions, parsed once into a small tree and evaluated as a pure function.

    {"city": "Paris"}                                  equality on a metadata key
    {"score": {"gte": 5, "lt": 9}}                     several operators on one key are ANDed
    {"AND": [...]}, {"OR": [...]}, {"NOT": [...]}     logic (NOT of a list means: none of them)
    {"categories": {"in": ["health", "work"]}}         any overlap with the record's categories
    {"created_at": {"gte": "2024-01-01"}}              time fields take ISO strings, datetimes or epochs
    {"memory": {"icontains": "coffee"}}                the memory text itself
    {"topic": "*"}                                     the key exists

Operators: eq, ne, in, nin, gt, gte, lt, lte, contains, icontains. Scope keys (user_id, agent_id, run_id)
at the top level are taken out by `Scope.build`; anywhere else they are ordinary fields. Values are what
metadata may hold (inputs.scalar_problem); a filter nests at most MAX_DEPTH dicts and holds MAX_TERMS terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engram.errors import InvalidFilter, InvalidInput
from engram.inputs import MAX_DEPTH, scalar_problem, shown
from engram.types import SCOPE_FIELDS, MemoryRecord, to_epoch

__all__ = ["ALL", "MAX_TERMS", "TIME_FIELDS", "And", "Cond", "Filter", "Not", "Or", "parse_filters"]

TIME_FIELDS = ("created_at", "updated_at", "valid_from", "valid_to")
RECORD_FIELDS = (*SCOPE_FIELDS, *TIME_FIELDS, "id", "hash", "role", "memory", "categories")
OPERATORS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "icontains")
MAX_TERMS = 1_000  # conditions in one filter, each value of an in/nin list counting as one
_MISSING = object()


class Filter:
    def matches(self, record: MemoryRecord) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class _All(Filter):
    def matches(self, record: MemoryRecord) -> bool:
        return True


ALL: Filter = _All()


@dataclass(frozen=True)
class Cond(Filter):
    field: str
    op: str  # one of OPERATORS, or "exists"
    value: Any = None

    def matches(self, record: MemoryRecord) -> bool:
        actual = field_value(record, self.field)
        if self.op == "exists":
            return actual is not _MISSING and actual is not None
        if isinstance(actual, (list, tuple)):  # a list field matches when any element does
            if self.op in ("ne", "nin"):
                return all(_compare(item, self.op, self.value) for item in actual)
            return any(_compare(item, self.op, self.value) for item in actual)
        if actual is _MISSING or actual is None:
            return self.op in ("ne", "nin")
        return _compare(actual, self.op, self.value)


@dataclass(frozen=True)
class And(Filter):
    parts: tuple[Filter, ...]

    def matches(self, record: MemoryRecord) -> bool:
        return all(part.matches(record) for part in self.parts)


@dataclass(frozen=True)
class Or(Filter):
    parts: tuple[Filter, ...]

    def matches(self, record: MemoryRecord) -> bool:
        return any(part.matches(record) for part in self.parts)


@dataclass(frozen=True)
class Not(Filter):
    part: Filter

    def matches(self, record: MemoryRecord) -> bool:
        return not self.part.matches(record)


def field_value(record: MemoryRecord, name: str) -> Any:
    if name == "memory":
        return record.text
    if name == "categories":
        return record.categories
    if name in RECORD_FIELDS:
        return getattr(record, name)
    value: Any = record.metadata
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _same_kind(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, numeric) and isinstance(b, numeric)) or type(a) is type(b)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("ne", "nin"):  # exactly the negation of eq / in
        return not _compare(actual, "eq" if op == "ne" else "in", expected)
    if op == "eq":
        return _same_kind(actual, expected) and actual == expected
    if op == "in":
        return any(_same_kind(actual, e) and actual == e for e in expected)
    if op in _ORDER:
        return _same_kind(actual, expected) and _ORDER[op](actual, expected)
    if op == "contains":
        return isinstance(actual, str) and expected in actual
    if op == "icontains":
        return isinstance(actual, str) and expected.casefold() in actual.casefold()
    raise InvalidFilter(f"unknown operator {op!r}")  # unreachable: parse_filters checks


def parse_filters(filters: dict[str, Any] | None, *, drop_scope: bool = True) -> Filter:
    """Parse a Mem0-style filter dict; raises InvalidFilter with the offending part named. A filter nests at
    most MAX_DEPTH dicts and holds at most MAX_TERMS conditions, each value of an in/nin list counting as one."""
    if filters is None:
        return ALL
    return _Reader().filter(filters, drop_scope, 1)


class _Reader:
    """One parse: counts the terms read so far, so a huge filter is refused before it is all converted."""

    def __init__(self) -> None:
        self.terms = 0

    def spend(self, terms: int) -> None:
        self.terms += terms
        if self.terms > MAX_TERMS:
            raise InvalidFilter(f"a filter holds at most {MAX_TERMS:,} conditions (each in/nin value counts as one)")

    def filter(self, filters: Any, drop_scope: bool, depth: int) -> Filter:
        if not isinstance(filters, dict):
            raise InvalidFilter(f"filters must be a dict, got {type(filters).__name__}")
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"filters are nested more than {MAX_DEPTH} levels deep")
        parts: list[Filter] = []
        for key, value in filters.items():
            if not isinstance(key, str) or not key:
                raise InvalidFilter(f"filter keys must be non-empty strings, got {shown(key)}")
            problem = scalar_problem(key)
            if problem:
                raise InvalidFilter(f"filter key {shown(key)} is {problem}")
            if drop_scope and key in SCOPE_FIELDS:
                continue
            logic = key.lstrip("$").upper()
            if logic in ("AND", "OR", "NOT"):
                parts.append(self.logic(logic, value, depth))
            else:
                parts.append(self.field(key, value))
        if not parts:
            return ALL
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def logic(self, op: str, value: Any, depth: int) -> Filter:
        items = [value] if op == "NOT" and isinstance(value, dict) else value
        if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
            raise InvalidFilter(f"{op} takes a non-empty list of filter dicts, got {shown(value)}")
        if len(items) > MAX_TERMS:
            raise InvalidFilter(f"{op} holds {len(items):,} filters; a filter holds at most {MAX_TERMS:,} conditions")
        parsed = tuple(self.filter(item, False, depth + 1) for item in items)
        if op == "AND":
            return And(parsed)
        if op == "OR":
            return Or(parsed)
        return Not(Or(parsed))

    def field(self, name: str, spec: Any) -> Filter:
        if isinstance(spec, str) and spec == "*":
            self.spend(1)
            return Cond(name, "exists")
        if not isinstance(spec, dict):
            self.spend(1)
            return Cond(name, "eq", _coerce(name, "eq", spec))
        if not spec:
            raise InvalidFilter(f"filter on {shown(name)} has no operator")
        conds = []
        for key, value in spec.items():
            if not isinstance(key, str):
                raise InvalidFilter(f"operators on {shown(name)} are strings, got {shown(key)}")
            op = key.removeprefix("$")
            if op not in OPERATORS:
                raise InvalidFilter(f"unknown operator {shown(op)} on {shown(name)}; known: {', '.join(OPERATORS)}")
            self.spend(max(1, len(value)) if op in ("in", "nin") and isinstance(value, (list, tuple)) else 1)
            conds.append(Cond(name, op, _coerce(name, op, value)))
        return conds[0] if len(conds) == 1 else And(tuple(conds))


def _coerce(name: str, op: str, value: Any) -> Any:
    if op in ("in", "nin"):
        if not isinstance(value, (list, tuple)):
            raise InvalidFilter(f"{op} on {shown(name)} takes a list, got {shown(value)}")
        return tuple(_coerce(name, "eq", v) for v in value)
    if op in ("contains", "icontains") and not isinstance(value, str):
        raise InvalidFilter(f"{op} on {shown(name)} takes a string, got {shown(value)}")
    if op in _ORDER and not isinstance(value, (int, float, str)) and name not in TIME_FIELDS:
        raise InvalidFilter(f"{op} on {shown(name)} takes a number or a string, got {shown(value)}")
    if name in TIME_FIELDS and value is not None:
        try:
            return to_epoch(value, name)
        except InvalidInput as exc:
            raise InvalidFilter(str(exc)) from None
    if isinstance(value, (dict, list, tuple, set)):
        raise InvalidFilter(f"{op} on {shown(name)} takes a scalar, got {shown(value)}")
    problem = scalar_problem(value)
    if problem:
        raise InvalidFilter(f"{op} on {shown(name)}: {shown(value)} is {problem}")
    return value
