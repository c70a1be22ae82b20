"""engram: a durable, correct, offline-first memory layer for LLM applications."""

from engram.config import Settings
from engram.errors import (
    ConfigError, Conflict, CorruptStore, EmbedderError, EmbedderMismatch, EngramError, InvalidFilter, InvalidInput, LLMError,
    NotFound, RerankerError, ScopeRequired, StoreError,
)
from engram.async_memory import AsyncMemory
from engram.memory import Memory
from engram.types import Event, Hit, MemoryRecord, Op, Scope

__all__ = [
    "Memory", "AsyncMemory", "Settings",
    "MemoryRecord", "Hit", "Event", "Op", "Scope",
    "EngramError", "ConfigError", "InvalidInput", "ScopeRequired", "InvalidFilter", "NotFound", "Conflict", "EmbedderError",
    "LLMError", "RerankerError", "StoreError", "CorruptStore", "EmbedderMismatch",
]
__version__ = "0.1.0"
