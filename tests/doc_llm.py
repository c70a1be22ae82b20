"""What the fake LLM answers to the docs' blocks marked llm="NAME" (tests/test_docs.py), in order."""

from __future__ import annotations

from engram.testing import dspy_reply


def facts(*items: tuple[str, str]) -> str:
    return dspy_reply(facts=[{"text": t, "category": c, "about": "user", "happened_at": None} for t, c in items])


def turn(*tools: tuple[str, dict], response: str, save: bool) -> list[str]:
    """The LLM answers of one chat-agent turn: a ReAct step per tool call, `finish`, then the reply."""
    steps = [dspy_reply(next_thought=f"use {name}", next_tool_name=name, next_tool_args=args) for name, args in tools]
    steps.append(dspy_reply(next_thought="done", next_tool_name="finish", next_tool_args={}))
    return [*steps, dspy_reply(reasoning="answering", response=response, save_memory=save)]


LLM_SCRIPTS: dict[str, list[str]] = {
    "inferred": [
        facts(("User likes coffee", "preferences")),
        facts(("User likes tea more than coffee", "preferences"), ("User likes football", "preferences")),
        dspy_reply(operations=[
            {"fact": 0, "op": "DELETE", "memory_id": 0, "text": None, "reason": "the user now prefers tea"},
            {"fact": 1, "op": "ADD", "memory_id": None, "text": None, "reason": "new"}]),
    ],
    "chat": [
        *turn(response="What a nice name!", save=True),
        facts(("User has a dog named Rex", "personal")),
        dspy_reply(profile="- User has a dog named Rex"),
        *turn(("search_memories", {"query": "dog name"}), response="Your dog is called Rex.", save=False),
    ],
}
