"""Embedders: the protocol and its implementations."""

from engram.embed.base import Embedder
from engram.embed.openai import OpenAIEmbedder

__all__ = ["Embedder", "OpenAIEmbedder"]
