"""Synthetic conversations shaped like LoCoMo's (never its data): speakers, dated sessions of turns, dia_ids."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from _common import sentences

__all__ = ["SPEAKERS", "locomo_like", "write_locomo_like"]

SPEAKERS = ["Caroline", "Melanie", "Jon", "Gina", "Maria", "John", "Tim", "Joanna", "Nate", "Evan", "Audrey", "Andrew"]
CAPTIONS = ["a photo of a dog on a beach", "a painting of a sunset", "a plate of pasta", "a bookshelf", "a guitar"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def locomo_like(n: int, *, turns_per_conversation: int = 600, session: int = 20, seed: int = 4) -> list[dict[str, Any]]:
    """`n` turns as LoCoMo conversations: two speakers each, sessions of `session` turns one day apart, each
    turn a speaker, one or two sentences, a dia_id `D<session>:<turn>`, a photo caption now and then."""
    rng = random.Random(seed)
    texts = sentences(n * 2, seed=seed + 5)
    conversations: list[dict[str, Any]] = []
    for first in range(0, n, turns_per_conversation):
        count = min(n, first + turns_per_conversation) - first
        a, b = rng.sample(SPEAKERS, 2)
        body: dict[str, Any] = {"speaker_a": a, "speaker_b": b}
        for s, start in enumerate(range(0, count, session), 1):
            day = first // turns_per_conversation * 3 + s
            clock = f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d} pm"
            body[f"session_{s}_date_time"] = f"{clock} on {day % 28 + 1} {MONTHS[day // 28 % 12]}, {2022 + day // 336}"
            turns = []
            for t in range(start, min(count, start + session)):
                i = first + t
                text = texts[2 * i] if rng.random() < 0.5 else f"{texts[2 * i]}. {texts[2 * i + 1]}"
                turn = {"speaker": (a, b)[t % 2], "dia_id": f"D{s}:{t - start + 1}", "text": text}
                if rng.random() < 0.1:
                    turn["blip_caption"] = rng.choice(CAPTIONS)
                turns.append(turn)
            body[f"session_{s}"] = turns
        conversations.append({"sample_id": f"conv-{len(conversations)}", "conversation": body})
    return conversations


def write_locomo_like(path: Path, n: int, **shape: Any) -> None:
    path.write_text(json.dumps(locomo_like(n, **shape)))
