"""Validation of what callers hand to engram: messages, texts, metadata, categories. Pure; raises InvalidInput.

Limits (README, "Limits"): metadata nests at most MAX_DEPTH levels and holds only what JSON and both stores
carry exactly (strings without lone surrogates, integers within ±MAX_SAFE_INT, finite floats, booleans,
null); a call takes at most MAX_CATEGORIES categories of MAX_CATEGORY_CHARS characters; search returns at most
MAX_SEARCH_LIMIT results and get_all at most MAX_LIST_LIMIT. Every check runs in time linear in its input,
without recursion.
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass
from typing import Any

from engram.errors import InvalidInput

__all__ = ["MAX_CATEGORIES", "MAX_CATEGORY_CHARS", "MAX_DEPTH", "MAX_LIST_LIMIT", "MAX_METADATA_CHARS", "MAX_SAFE_INT",
           "MAX_SEARCH_LIMIT", "Message", "check_categories", "check_id", "check_limit", "check_metadata",
           "check_string", "check_text", "check_threshold", "parse_messages", "scalar_problem", "shown",
           "string_problem", "text_problem"]

ROLES = ("user", "assistant", "system", "tool")
MAX_DEPTH = 32  # levels of nested dicts / lists in metadata, and of nested filter dicts
MAX_METADATA_CHARS = 64_000  # metadata as (ASCII-escaped) JSON
MAX_CATEGORIES = 100  # distinct categories in one call
MAX_CATEGORY_CHARS = 100
MAX_SEARCH_LIMIT = 10_000  # search ranks max(limit, search_pool) candidates from each list
MAX_LIST_LIMIT = 100_000
MAX_SAFE_INT = 2**53 - 1  # beyond it, doubles (JavaScript, Qdrant's range filters) cannot tell integers apart


class _ShortRepr(reprlib.Repr):
    """reprlib bounds length and depth (and survives a failing __repr__); this also bounds integers, whose
    repr is slow beyond a few thousand digits and refused beyond 4,300."""

    def repr_int(self, x: int, level: int) -> str:
        return super().repr_int(x, level) if x.bit_length() <= 64 else f"<an integer of {x.bit_length()} bits>"


_repr = _ShortRepr()
_repr.maxstring = _repr.maxother = 80


def shown(value: Any) -> str:
    """A short repr for error messages, whatever the caller passed."""
    return _repr.repr(value)


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    name: str | None = None
    id: str | None = None  # the caller's id of this message, kept as the memory's source


def parse_messages(messages: Any, max_chars: int, *, whole: bool = False) -> list[Message]:
    """A string, one {role, content} dict or a list of them (or of strings) -> messages, all checked before
    anything is used.

    `max_chars` bounds each message's content (a memory: setting max_memory_chars) or, with `whole`, all of
    them together (a conversation facts are extracted from: setting max_input_chars).
    """
    if isinstance(messages, str):
        items: list[Any] = [{"role": "user", "content": messages}]
    elif isinstance(messages, dict):
        items = [messages]
    elif isinstance(messages, (list, tuple)):
        items = list(messages)
        if not items:
            raise InvalidInput("messages is an empty list")
    else:
        raise InvalidInput("messages must be a string, a message dict or a list of them, "
                           f"not {type(messages).__name__}")
    setting = "max_input_chars" if whole else "max_memory_chars"
    # a plain string in the list is one user message, as a string alone is
    parsed = [_message({"role": "user", "content": item} if isinstance(item, str) else item, f"messages[{i}]",
                       max_chars, setting) for i, item in enumerate(items)]
    total = sum(len(m.content) for m in parsed)
    if whole and total > max_chars:
        raise InvalidInput(f"messages hold {total:,} characters together; add(infer=True) reads at most {max_chars:,} "
                           f"(setting {setting})")
    return parsed


def _message(item: Any, where: str, max_chars: int, setting: str) -> Message:
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be a dict with 'role' and 'content', not {type(item).__name__}")
    role = item.get("role", "user")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidInput(f"{where}.role must be one of {', '.join(ROLES)}, not {shown(role)}")
    if "content" not in item:
        raise InvalidInput(f"{where} has no 'content'")
    content = check_text(item["content"], max_chars, f"{where}.content", setting)
    name, ident = item.get("name"), item.get("id")
    if name is not None:
        if not isinstance(name, str):
            raise InvalidInput(f"{where}.name must be a string")
        check_string(name, f"{where}.name")
    if ident is not None:
        if isinstance(ident, bool) or not isinstance(ident, (str, int)):
            raise InvalidInput(f"{where}.id must be a string or an integer")
        if isinstance(ident, int) and abs(ident) > MAX_SAFE_INT:
            raise InvalidInput(f"{where}.id is an integer beyond ±{MAX_SAFE_INT}; pass it as a string")
        if isinstance(ident, str):
            check_string(ident, f"{where}.id")
    return Message(role, content, name, None if ident is None else str(ident))


def check_string(value: str, what: str) -> str:
    problem = string_problem(value)
    if problem:
        raise InvalidInput(f"{what} {problem}")
    return value


def string_problem(value: str) -> str | None:
    """What makes a text or id unfit to store: a lone surrogate (it cannot be written as UTF-8) or NUL (C
    libraries cut strings there); None when there is nothing."""
    at = _surrogate_at(value)
    if at is not None:
        return f"contains a lone surrogate ({shown(value[at])} at {at}); text must be valid Unicode"
    if "\x00" in value:
        return "contains a NUL character"
    return None


def _surrogate_at(value: str) -> int | None:
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_text(text: Any, max_chars: int, what: str = "text", setting: str = "max_memory_chars") -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be a string, not {type(text).__name__}")
    problem = text_problem(text, max_chars, setting)
    if problem:
        raise InvalidInput(f"{what} {problem}")
    return text.strip()


def text_problem(text: str, max_chars: int, setting: str = "max_memory_chars") -> str | None:
    """What is wrong with a text to be stored (from a caller or from an LLM), or None."""
    stripped = text.strip()
    if not stripped:
        return "is empty"
    if len(stripped) > max_chars:
        return f"has {len(stripped)} characters; the limit is {max_chars} (setting {setting})"
    return string_problem(stripped)


def check_id(value: Any, what: str = "memory_id") -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise InvalidInput(f"{what} must be a non-empty string of at most 128 characters, got {shown(value)}")
    check_string(value, what)


def scalar_problem(value: Any) -> str | None:
    """Why `value` cannot be a metadata or filter scalar, or None when it can."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return None if _surrogate_at(value) is None else "a string with a lone surrogate"
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INT else "an integer beyond ±(2**53 - 1)"
    if isinstance(value, float):
        return None if math.isfinite(value) else "not a finite number"
    return f"of type {type(value).__name__}, not a string, number, boolean or null"


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput(f"metadata must be a dict, not {type(metadata).__name__}")
    for key in metadata:
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"metadata keys must be non-empty strings, got {shown(key)}")
    _check_tree(metadata)
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be JSON-serialisable: {exc}") from None
    if len(text) > MAX_METADATA_CHARS:
        raise InvalidInput(f"metadata is larger than {MAX_METADATA_CHARS // 1000} kB as JSON")
    return json.loads(text)  # a deep copy: later changes to the caller's dict do not reach the store


def _check_tree(metadata: dict[str, Any]) -> None:
    """Depth, scalars and size of metadata, walked with a stack (deep or cyclic input never recurses). More
    than MAX_METADATA_CHARS values cannot fit in that many characters of JSON, so the walk stops there."""
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    budget = MAX_METADATA_CHARS
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise InvalidInput(f"metadata is larger than {MAX_METADATA_CHARS // 1000} kB as JSON")
        if isinstance(value, (dict, list, tuple)):
            if depth > MAX_DEPTH:
                raise InvalidInput(f"metadata is nested more than {MAX_DEPTH} levels deep")
            if isinstance(value, dict):
                for key in value:
                    problem = scalar_problem(key) if isinstance(key, str) else None
                    if problem:
                        raise InvalidInput(f"metadata key {shown(key)} is {problem}")
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)
            continue
        problem = scalar_problem(value)
        if problem:
            raise InvalidInput(f"metadata value {shown(value)} is {problem}")


def check_categories(categories: Any) -> tuple[str, ...]:
    """Stripped, lower-cased and de-duplicated in first-seen order; at most MAX_CATEGORIES of them."""
    if categories is None:
        return ()
    if isinstance(categories, str):
        categories = [categories]
    if not isinstance(categories, (list, tuple, set, frozenset)):
        raise InvalidInput(f"categories must be a list of strings, not {type(categories).__name__}")
    out: dict[str, None] = {}  # insertion-ordered set: linear, where a list's `in` made this quadratic
    for category in categories:
        if not isinstance(category, str) or not category.strip():
            raise InvalidInput(f"each category must be a non-empty string, got {shown(category)}")
        name = check_string(category.strip(), "a category").lower()
        if len(name) > MAX_CATEGORY_CHARS:
            raise InvalidInput(f"category {shown(name)} is longer than {MAX_CATEGORY_CHARS} characters")
        out[name] = None
        if len(out) > MAX_CATEGORIES:
            raise InvalidInput(f"more than {MAX_CATEGORIES} distinct categories")
    return tuple(out)


def check_limit(limit: Any, what: str = "limit", maximum: int = MAX_LIST_LIMIT) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InvalidInput(f"{what} must be a positive integer, got {shown(limit)}")
    if limit > maximum:
        raise InvalidInput(f"{what} is {shown(limit)}; the most is {maximum:,}")
    return limit


def check_threshold(threshold: Any) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or (isinstance(threshold, float) and math.isnan(threshold)):
        raise InvalidInput(f"threshold must be a number in [0, 1], got {shown(threshold)}")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInput(f"threshold must be in [0, 1], got {shown(threshold)}")
    return float(threshold)
