"""Embedders: the protocol and its implementations (imported on first use, to keep start-up light)."""

from typing import Any

from engram.embed.base import Embedder

__all__ = ["Embedder", "MiniLMEmbedder", "OpenAIEmbedder"]


def __getattr__(name: str) -> Any:
    if name == "MiniLMEmbedder":
        from engram.embed.local import MiniLMEmbedder

        return MiniLMEmbedder
    if name == "OpenAIEmbedder":
        from engram.embed.openai import OpenAIEmbedder

        return OpenAIEmbedder
    raise AttributeError(name)
