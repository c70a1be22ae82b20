"""Test helpers shipped with engram, so users' tests drive the same fakes engram's own tests use."""

from engram.testing.fake_openai import NO_CHAT_LEFT, FakeOpenAI, RecordedRequest, Reply, hash_embedding

__all__ = ["FakeOpenAI", "Reply", "RecordedRequest", "hash_embedding", "NO_CHAT_LEFT"]
