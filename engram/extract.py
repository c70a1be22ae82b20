"""Extraction: messages -> atomic facts about the user (DSPy program), and the Fact every pipeline returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from engram.inputs import Message
from engram.llm import LLM, Usage

__all__ = ["Fact", "DEFAULT_CATEGORIES", "LLMExtractor", "render_messages"]

DEFAULT_CATEGORIES = ("personal", "preferences", "health", "work", "relationships", "plans", "events", "other")


@dataclass(frozen=True)
class Fact:
    """One thing worth remembering. `correction` marks a statement that retracts or contradicts an earlier one
    (the offline pipeline's hint; the LLM judges contradictions itself)."""

    text: str
    category: str = "other"
    about: str = "user"
    happened_at: str | None = None
    correction: bool = False


def render_messages(messages: list[Message]) -> str:
    return json.dumps([{"role": m.role, **({"name": m.name} if m.name else {}), "content": m.content} for m in messages],
                      ensure_ascii=False, indent=1)


class LLMExtractor:
    """The DSPy extraction program: one LLM call (two if the first answer could not be parsed)."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        from engram.signatures import ExtractFacts

        self.program = llm.dspy.Predict(ExtractFacts)

    def extract(self, messages: list[Message], when: float, categories: tuple[str, ...], usage: Usage) -> list[Fact]:
        date = datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%d (%A) %H:%M UTC")
        prediction = self.llm.run(self.program, usage, conversation=render_messages(messages),
                                  conversation_date=date, categories=list(categories))
        return [_fact(raw, categories) for raw in prediction.facts if raw.text and raw.text.strip()]


def _fact(raw: Any, categories: tuple[str, ...]) -> Fact:
    category = (raw.category or "other").strip().lower()
    return Fact(
        text=" ".join(raw.text.split()),
        category=category if category in categories else "other",
        about=(raw.about or "user").strip() or "user",
        happened_at=(raw.happened_at or None),
    )
