"""engram's exceptions: one tree, so callers can catch exactly what they mean.

    EngramError
    ├── ConfigError            bad or contradictory settings
    ├── InvalidInput           bad arguments: empty/oversized/non-string content, bad ids
    │   ├── ScopeRequired      no user_id / agent_id / run_id where one is needed
    │   └── InvalidFilter      a filter expression engram cannot read
    ├── NotFound               an unknown (or deleted) memory id
    ├── Conflict               the memory changed since it was read (a concurrent write won)
    ├── EmbedderError          the embedder failed or returned something unusable
    ├── LLMError               the LLM failed, timed out or answered in a form we cannot use
    ├── RerankerError          a rerank endpoint failed or answered in a form we cannot use
    └── StoreError             the store failed
        ├── CorruptStore       the file is not an engram database, or is damaged
        └── EmbedderMismatch   the store holds vectors of another embedder
"""

from __future__ import annotations

__all__ = [
    "EngramError",
    "ConfigError",
    "InvalidInput",
    "ScopeRequired",
    "InvalidFilter",
    "NotFound",
    "Conflict",
    "EmbedderError",
    "LLMError",
    "RerankerError",
    "StoreError",
    "CorruptStore",
    "EmbedderMismatch",
]


class EngramError(Exception):
    """Base class of every error engram raises on purpose."""


class ConfigError(EngramError):
    pass


class InvalidInput(EngramError, ValueError):
    pass


class ScopeRequired(InvalidInput):
    pass


class InvalidFilter(InvalidInput):
    pass


class NotFound(EngramError, KeyError, ValueError):
    """Also a ValueError: Mem0 raises ValueError for an unknown id, and code written for it catches that."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else "not found"


class Conflict(EngramError):
    """A write was based on a version of a memory that is no longer the current one."""


class EmbedderError(EngramError):
    pass


class LLMError(EngramError):
    pass


class RerankerError(EngramError):
    pass


class StoreError(EngramError):
    pass


class CorruptStore(StoreError):
    pass


class EmbedderMismatch(StoreError):
    pass
