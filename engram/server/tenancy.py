"""One store per tenant: the tenant is a property of where data lives, so no query can cross it.

A tenant's memories live in `<home>/tenants/<tenant>/engram.db` (SQLite), or in the Qdrant collection
`<qdrant_collection>_<tenant>` (a server or cluster) or `<home>/tenants/<tenant>/qdrant` (local Qdrant). The
caller without a tenant (no keys, or a local stdio connection) uses the home's own store, the one the CLI uses.
One embedder serves every tenant; each tenant's Memory (and chat Agent) is opened on first use and kept.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from engram.components import embedder_from
from engram.config import Settings
from engram.embed.coalescing import CoalescingEmbedder
from engram.server.keys import check_tenant

if TYPE_CHECKING:
    from engram.agent import Agent
    from engram.embed.base import Embedder
    from engram.memory import Memory

__all__ = ["Tenants", "tenant_settings"]


def tenant_settings(base: Settings, tenant: str | None) -> Settings:
    """The settings of `tenant`'s store: `base` with its database (or collection) moved to the tenant's own."""
    if tenant is None:
        return base
    check_tenant(tenant)  # it becomes a path: nothing but a checked name may get here
    root = base.home / "tenants" / tenant
    if base.store == "qdrant":
        local = None if base.qdrant_url or base.qdrant_path == ":memory:" else str(root / "qdrant")
        return replace(base, qdrant_collection=f"{base.qdrant_collection}_{tenant}",
                       qdrant_path=base.qdrant_path if local is None else local)
    return replace(base, db_path=root / "engram.db")


class Tenants:
    """The open Memory (and Agent) of each tenant, made on first use, closed together."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = None if embedder is None else CoalescingEmbedder(embedder)
        self._memories: dict[str | None, Memory] = {}
        self._agents: dict[str | None, Agent] = {}
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:  # concurrent requests' queries are embedded together
            self._embedder = CoalescingEmbedder(embedder_from(self.settings))
        return self._embedder

    def memory(self, tenant: str | None) -> Memory:
        found = self._memories.get(tenant)
        if found is not None:
            return found
        with self._lock:
            if tenant not in self._memories:
                from engram.memory import Memory

                self._memories[tenant] = Memory(tenant_settings(self.settings, tenant), embedder=self.embedder)
            return self._memories[tenant]

    def agent(self, tenant: str | None) -> Agent:
        found = self._agents.get(tenant)
        if found is not None:
            return found
        memory = self.memory(tenant)
        with self._lock:
            if tenant not in self._agents:
                from engram.agent import Agent

                self._agents[tenant] = Agent(memory)
            return self._agents[tenant]

    def database(self, tenant: str | None) -> Path:
        return tenant_settings(self.settings, tenant).database

    def close(self) -> None:
        """Finish every chat agent's background saves, then close every store."""
        with self._lock:
            agents, memories = list(self._agents.values()), list(self._memories.values())
            self._agents, self._memories = {}, {}
        try:
            for agent in agents:
                agent.close()
        finally:
            for memory in memories:
                memory.close()
            if isinstance(self._embedder, CoalescingEmbedder):
                self._embedder.close()
                self._embedder = None
