"""The per-user profile ("core memory"): a short summary of stable facts, rebuilt only when memories change."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from engram.llm import LLM, Usage
from engram.memory import Memory

__all__ = ["Profiles"]

STABLE = ("personal", "preferences", "health", "relationships", "work", "plans")
MAX_MEMORIES = 200  # the newest current memories a profile is built from
MAX_LINES = 10


class Profiles:
    """Builds profiles with the LLM when one is given, else by picking stable memories; caches each user's
    profile with a fingerprint of the memories it was built from."""

    def __init__(self, memory: Memory, llm: LLM | None = None) -> None:
        self.memory = memory
        self.llm = llm
        self._cache: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._program: Any = None

    def get(self, user_id: str, usage: Usage | None = None) -> str:
        memories = self.memory.get_all(user_id=user_id, limit=MAX_MEMORIES)["results"]
        fingerprint = hashlib.sha256("".join(sorted(m["hash"] for m in memories)).encode()).hexdigest()
        with self._lock:
            cached = self._cache.get(user_id)
        if cached and cached[0] == fingerprint:
            return cached[1]
        profile = self._build(memories, usage or Usage())
        with self._lock:
            self._cache[user_id] = (fingerprint, profile)
        return profile

    def _build(self, memories: list[dict[str, Any]], usage: Usage) -> str:
        if not memories:
            return "(nothing known yet)"
        if self.llm is None:
            stable = [m for m in memories if set(m["categories"]) & set(STABLE)] or memories
            return "\n".join(f"- {m['memory']}" for m in stable[:MAX_LINES])
        if self._program is None:
            from engram.signatures import Profile

            self._program = self.llm.dspy.Predict(Profile)
        return self.llm.run(self._program, usage, memories=[m["memory"] for m in memories]).profile.strip()
