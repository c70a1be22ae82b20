"""Test helpers shipped with engram, so users' tests drive the same fakes engram's own tests use."""

from engram.testing.fake_openai import NO_CHAT_LEFT, FakeOpenAI, RecordedRequest, Reply, hash_embedding

__all__ = ["FakeOpenAI", "Reply", "RecordedRequest", "hash_embedding", "NO_CHAT_LEFT", "dspy_reply"]


def dspy_reply(**fields: object) -> str:
    """An assistant message in DSPy's chat-adapter format: `[[ ## name ## ]]` sections, values as JSON when
    not strings. Script it on FakeOpenAI to answer a DSPy program's call."""
    import json

    parts = [f"[[ ## {name} ## ]]\n{value if isinstance(value, str) else json.dumps(value)}"
             for name, value in fields.items()]
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])
