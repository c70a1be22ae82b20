"""Mem0 2.x argument shapes read into engram's: pure checks the facade calls before anything is done.

Mem0's names for things engram already has (`top_k` for `limit`, `text` / `data` for an update's text) are
accepted; arguments engram does not implement are refused with InvalidInput naming what to do instead, never
ignored in silence.
"""

from __future__ import annotations

import uuid
from typing import Any

from engram.errors import InvalidInput
from engram.inputs import shown

__all__ = ["UNSET", "owner_id", "pick_limit", "pick_text", "refuse_unsupported"]


class _Unset:
    """The default of an argument whose None means something (update(expiration_date=None) clears it)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def owner_id(value: Any) -> Any:
    """A user / agent / run id as engram stores it: Mem0 accepts integer ids (a database key) and stores them
    as strings; so does engram, and UUIDs too. Anything else is left for Scope to check."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def pick_limit(limit: Any, top_k: Any) -> Any:
    """`limit` (engram) or `top_k` (Mem0 2.x); None when neither is given."""
    if top_k is None:
        return limit
    if limit is not None and limit != top_k:
        raise InvalidInput(f"limit={shown(limit)} and top_k={shown(top_k)} disagree; give one of them")
    return top_k


def pick_text(text: Any, data: Any) -> Any:
    """An update's new text: `text` (Mem0 2.x), or `data` (Mem0's older name); None when neither is given."""
    if data is None:
        return text
    if text is not None and text != data:
        raise InvalidInput("text and data name the same thing (data is Mem0's older name); give one of them")
    return data


def refuse_unsupported(memory_type: Any, prompt: Any) -> None:
    """Mem0's add() arguments engram does not implement."""
    if memory_type is not None:
        raise InvalidInput(
            f"memory_type={shown(memory_type)}: engram has no procedural memories (Mem0's 'procedural_memory'); "
            "store an agent's steps with add(..., infer=False), or leave memory_type out")
    if prompt is not None:
        raise InvalidInput(
            "prompt=: engram's extraction prompt is fixed and cannot be replaced per call; choose what is kept "
            "with the categories setting, or store texts as they are with infer=False")
