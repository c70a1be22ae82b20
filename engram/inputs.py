"""Validation of what callers hand to engram: messages, texts, metadata, categories. Pure; raises InvalidInput."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from engram.errors import InvalidInput

__all__ = ["Message", "parse_messages", "check_text", "text_problem", "check_id", "check_metadata", "check_categories", "check_limit"]

ROLES = ("user", "assistant", "system", "tool")


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    name: str | None = None
    id: str | None = None  # the caller's id of this message, kept as the memory's source


def parse_messages(messages: Any, max_chars: int) -> list[Message]:
    """A string, one {role, content} dict or a list of them -> messages, all checked before anything is used."""
    if isinstance(messages, str):
        items: list[Any] = [{"role": "user", "content": messages}]
    elif isinstance(messages, dict):
        items = [messages]
    elif isinstance(messages, (list, tuple)):
        items = list(messages)
        if not items:
            raise InvalidInput("messages is an empty list")
    else:
        raise InvalidInput(f"messages must be a string, a message dict or a list of them, not {type(messages).__name__}")
    parsed = []
    for i, item in enumerate(items):
        where = f"messages[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be a dict with 'role' and 'content', not {type(item).__name__}")
        role = item.get("role", "user")
        if role not in ROLES:
            raise InvalidInput(f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}")
        if "content" not in item:
            raise InvalidInput(f"{where} has no 'content'")
        content = check_text(item["content"], max_chars, f"{where}.content")
        name, ident = item.get("name"), item.get("id")
        if name is not None and not isinstance(name, str):
            raise InvalidInput(f"{where}.name must be a string")
        if ident is not None and not isinstance(ident, (str, int)):
            raise InvalidInput(f"{where}.id must be a string or an integer")
        parsed.append(Message(role, content, name, None if ident is None else str(ident)))
    return parsed


def check_text(text: Any, max_chars: int, what: str = "text") -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be a string, not {type(text).__name__}")
    problem = text_problem(text, max_chars)
    if problem:
        raise InvalidInput(f"{what} {problem}")
    return text.strip()


def text_problem(text: str, max_chars: int) -> str | None:
    """What is wrong with a text to be stored (from a caller or from an LLM), or None."""
    stripped = text.strip()
    if not stripped:
        return "is empty"
    if len(stripped) > max_chars:
        return f"has {len(stripped)} characters; the limit is {max_chars} (setting max_memory_chars)"
    if "\x00" in stripped:
        return "contains a NUL character"
    return None


def check_id(value: Any, what: str = "memory_id") -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise InvalidInput(f"{what} must be a non-empty string, got {value!r}")


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput(f"metadata must be a dict, not {type(metadata).__name__}")
    for key in metadata:
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"metadata keys must be non-empty strings, got {key!r}")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata must be JSON-serialisable: {exc}") from None
    if len(text) > 64_000:
        raise InvalidInput("metadata is larger than 64 kB as JSON")
    return json.loads(text)  # a deep copy: later changes to the caller's dict do not reach the store


def check_categories(categories: Any) -> tuple[str, ...]:
    if categories is None:
        return ()
    if isinstance(categories, str):
        categories = [categories]
    if not isinstance(categories, (list, tuple, set, frozenset)):
        raise InvalidInput(f"categories must be a list of strings, not {type(categories).__name__}")
    out: list[str] = []
    for category in categories:
        if not isinstance(category, str) or not category.strip():
            raise InvalidInput(f"each category must be a non-empty string, got {category!r}")
        name = category.strip().lower()
        if name not in out:
            out.append(name)
    return tuple(out)


def check_limit(limit: Any, what: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InvalidInput(f"{what} must be a positive integer, got {limit!r}")
    return limit


def check_threshold(threshold: Any) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        raise InvalidInput(f"threshold must be a number in [0, 1], got {threshold!r}")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInput(f"threshold must be in [0, 1], got {threshold!r}")
    return float(threshold)
