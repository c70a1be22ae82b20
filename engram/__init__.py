"""engram: a durable, correct, offline-first memory layer for LLM applications.

`import engram` stays light: the facade (and numpy behind it) loads on first use of `Memory` or `AsyncMemory`.
"""

from typing import TYPE_CHECKING, Any

from engram.config import Settings
from engram.errors import (
    ConfigError,
    Conflict,
    CorruptStore,
    EmbedderError,
    EmbedderMismatch,
    EngramError,
    InvalidFilter,
    InvalidInput,
    LLMError,
    NotFound,
    RerankerError,
    ScopeRequired,
    StoreError,
)
from engram.types import Event, Hit, MemoryRecord, Op, Scope

if TYPE_CHECKING:
    from engram.async_memory import AsyncMemory
    from engram.memory import Memory

__all__ = [
    "Memory", "AsyncMemory", "Settings",
    "MemoryRecord", "Hit", "Event", "Op", "Scope",
    "EngramError", "ConfigError", "InvalidInput", "ScopeRequired", "InvalidFilter", "NotFound", "Conflict",
    "EmbedderError", "LLMError", "RerankerError", "StoreError", "CorruptStore", "EmbedderMismatch",
]
__version__ = "0.1.0"

_LAZY = {"Memory": "engram.memory", "AsyncMemory": "engram.async_memory"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engram' has no attribute {name!r}")
