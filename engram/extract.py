"""Extraction: messages -> atomic facts about the user (DSPy program), and the Fact every pipeline returns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from engram.inputs import Message
from engram.llm import LLM, Usage

__all__ = ["DEFAULT_CATEGORIES", "PIECE_CHARS", "Fact", "LLMExtractor", "pieces", "render_messages"]

DEFAULT_CATEGORIES = ("personal", "preferences", "health", "work", "relationships", "plans", "events", "other")
# Characters of message content one extraction call reads: a LoCoMo session (at most ~7,500) is one call, and
# a long transcript is read in pieces an LLM extracts from as well as from a short one.
PIECE_CHARS = 8_000
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n\s*")


@dataclass(frozen=True)
class Fact:
    """One thing worth remembering. `correction` marks a statement that retracts or contradicts an earlier one
    (the offline pipeline's hint; the LLM judges contradictions itself)."""

    text: str
    category: str = "other"
    about: str = "user"
    happened_at: str | None = None
    correction: bool = False
    source: tuple[str, ...] = ()  # the ids of the messages it comes from (those the caller gave ids)
    triplets: tuple[tuple[str, str, str], ...] = ()  # (subject, relation, object) the fact states, from the LLM


def render_messages(messages: list[Message]) -> str:
    """The transcript the LLM reads: each message with an id it can cite (its position)."""
    return json.dumps([{"id": i, "role": m.role, **({"name": m.name} if m.name else {}), "content": m.content}
                       for i, m in enumerate(messages)], ensure_ascii=False, indent=1)


def pieces(messages: list[Message], limit: int = PIECE_CHARS) -> list[list[Message]]:
    """Consecutive messages in pieces of at most `limit` characters of content, one extraction call each. A
    longer message is cut between sentences (a longer sentence between words) into parts that keep its role
    and id, so a fact from any part still cites that message."""
    out: list[list[Message]] = []
    piece: list[Message] = []
    size = 0
    for message in messages:
        for part in _parts(message.content, limit):
            if piece and size + len(part) > limit:
                out.append(piece)
                piece, size = [], 0
            piece.append(replace(message, content=part))
            size += len(part)
    return [*out, piece] if piece else out


def _parts(text: str, limit: int) -> list[str]:
    """`text` as parts of at most `limit` characters, cut where sentences end when it can be."""
    parts, current = [], ""
    for segment in _segments(text, limit):
        if len(current) + len(segment.rstrip()) > limit:
            parts.append(current)
            current = ""
        current += segment
    return [part.strip() for part in [*parts, current] if part.strip()]


def _segments(text: str, limit: int) -> Iterator[str]:
    """Sentences with their trailing space; one longer than `limit` cut at its last space before, or anywhere."""
    start = 0
    ends = [m.end() for m in _SENTENCE_END.finditer(text)] + [len(text)]
    for end in ends:
        sentence = text[start:end]
        start = end
        while len(sentence.rstrip()) > limit:
            cut = sentence.rfind(" ", 1, limit + 1)
            cut = cut if cut > 0 else limit
            yield sentence[:cut]
            sentence = sentence[cut:]
        if sentence:
            yield sentence


def cited(raw: Any, messages: list[Message]) -> tuple[str, ...]:
    """The caller's ids of the messages a fact cites by position. A fact that cites none that exist is
    credited to every user message of the call (the LLM did not say which)."""
    positions = raw if isinstance(raw, list) else []
    chosen = [messages[p] for p in dict.fromkeys(positions) if isinstance(p, int) and 0 <= p < len(messages)]
    if not chosen:
        chosen = [m for m in messages if m.role == "user"]
    return tuple(dict.fromkeys(m.id for m in chosen if m.id))


class LLMExtractor:
    """The DSPy extraction program: one LLM call (two if the first answer could not be parsed)."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        from engram.signatures import ExtractFacts

        self.program = llm.dspy.Predict(ExtractFacts)

    def extract(self, messages: list[Message], when: float, categories: tuple[str, ...], usage: Usage) -> list[Fact]:
        date = datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%d (%A) %H:%M UTC")
        prediction = self.llm.run(self.program, usage, conversation=render_messages(messages),
                                  conversation_date=date, categories=list(categories))
        return [_fact(raw, categories, messages) for raw in prediction.facts if raw.text and raw.text.strip()]


def _fact(raw: Any, categories: tuple[str, ...], messages: list[Message]) -> Fact:
    """An extracted fact, its side fields bounded (they are stored as metadata): the text is checked later
    like any user input."""
    category = (raw.category or "other").strip().lower()
    about = " ".join((raw.about or "user").split())
    happened = (raw.happened_at or "").strip()
    return Fact(
        text=" ".join(raw.text.split()),
        category=category if category in categories else "other",
        about=about if 0 < len(about) <= 100 and "\x00" not in about else "user",
        happened_at=happened if 0 < len(happened) <= 40 and "\x00" not in happened else None,
        source=cited(raw.sources, messages),
        triplets=_triplets(getattr(raw, "triplets", None) or ()),
    )


def _triplets(raw: Any) -> tuple[tuple[str, str, str], ...]:
    """The LLM's triplets with three short, non-empty parts (at most 20); the others are dropped."""
    out = []
    for triplet in list(raw)[:20]:
        parts = tuple(" ".join(str(getattr(triplet, key, "") or "").split())
                      for key in ("subject", "relation", "object"))
        if all(0 < len(part) <= 100 and "\x00" not in part for part in parts):
            out.append(parts)
    return tuple(out)  # type: ignore[arg-type]
