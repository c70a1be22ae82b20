"""AsyncMemory: Memory's methods as coroutines. Each one runs the synchronous method in a worker thread
(asyncio.to_thread), so the logic lives once, in Memory; the methods are written out so that IDEs and type
checkers see them with Memory's own signatures (tests/test_mem0_compat.py checks that they stay equal)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal, Self, overload

from engram.compat import UNSET
from engram.config import Settings
from engram.memory import Memory

__all__ = ["AsyncMemory"]


class AsyncMemory:
    """`await`-able Memory. `memory=` wraps an existing Memory; otherwise one is made from the same arguments."""

    def __init__(self, settings: Settings | None = None, *, memory: Memory | None = None, **kwargs: Any) -> None:
        self.sync = memory or Memory(settings, **kwargs)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **settings: Any) -> AsyncMemory:
        """Mem0's `AsyncMemory.from_config`; see Memory.from_config."""
        return cls(memory=Memory.from_config(config, **settings))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing -------------------------------------------------------------------------------------------

    async def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None,
                  run_id: str | None = None, metadata: dict[str, Any] | None = None, infer: bool = True,
                  timestamp: Any = None, expiration_date: Any = None, memory_type: str | None = None,
                  prompt: str | None = None, categories: Any = None, filters: dict[str, Any] | None = None,
                  dry_run: bool = False) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.sync.add, messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=metadata,
            infer=infer, timestamp=timestamp, expiration_date=expiration_date, memory_type=memory_type, prompt=prompt,
            categories=categories, filters=filters, dry_run=dry_run)

    async def revert(self, batch_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.revert, batch_id)

    async def update(self, memory_id: str, text: str | None = None, metadata: dict[str, Any] | None = None,
                     expiration_date: Any = UNSET, data: str | None = None, *, timestamp: Any = None,
                     expected_version: int | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.update, memory_id, text, metadata, expiration_date, data,
                                       timestamp=timestamp, expected_version=expected_version)

    async def delete(self, memory_id: str, *, expected_version: int | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.delete, memory_id, expected_version=expected_version)

    async def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None,
                         run_id: str | None = None, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.delete_all, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       filters=filters)

    async def reset(self) -> None:
        await asyncio.to_thread(self.sync.reset)

    # -- reading -------------------------------------------------------------------------------------------

    async def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
                     run_id: str | None = None, limit: int | None = None, filters: dict[str, Any] | None = None,
                     threshold: float | None = None, categories: Any = None, as_of: Any = None,
                     top_k: int | None = None, show_expired: bool = False, rerank: bool = False,
                     explain: bool = False, graph: bool | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.sync.search, query, user_id=user_id, agent_id=agent_id, run_id=run_id, limit=limit, filters=filters,
            threshold=threshold, categories=categories, as_of=as_of, top_k=top_k, show_expired=show_expired,
            rerank=rerank, explain=explain, graph=graph)

    async def grep(self, pattern: str, *, user_id: str | None = None, agent_id: str | None = None,
                   run_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.grep, pattern, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       limit=limit)

    async def entities(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                       as_of: Any = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.entities, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       as_of=as_of)

    async def related(self, name: str, *, user_id: str | None = None, agent_id: str | None = None,
                      run_id: str | None = None, hops: int = 2, as_of: Any = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.related, name, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                       hops=hops, as_of=as_of)

    async def graph(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                    as_of: Any = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.graph, user_id=user_id, agent_id=agent_id, run_id=run_id, as_of=as_of)

    @overload
    async def get(self, memory_id: str, *, strict: Literal[True]) -> dict[str, Any]: ...

    @overload
    async def get(self, memory_id: str, *, strict: bool = False) -> dict[str, Any] | None: ...

    async def get(self, memory_id: str, *, strict: bool = False) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.sync.get, memory_id, strict=strict)

    async def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                      filters: dict[str, Any] | None = None, limit: int | None = None, categories: Any = None,
                      as_of: Any = None, top_k: int | None = None, show_expired: bool = False) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.sync.get_all, user_id=user_id, agent_id=agent_id, run_id=run_id, filters=filters, limit=limit,
            categories=categories, as_of=as_of, top_k=top_k, show_expired=show_expired)

    async def history(self, memory_id: str, *, strict: bool = False) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.sync.history, memory_id, strict=strict)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)
