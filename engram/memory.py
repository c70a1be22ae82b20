"""The facade: Mem0's classic API over a store and an embedder. Inputs are checked before anything is written."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from engram.components import embedder_from, store_from
from engram.config import Settings
from engram.embed.base import Embedder
from engram.errors import ConfigError, InvalidInput, NotFound
from engram.filters import parse_filters
from engram.inputs import (
    check_categories, check_limit, check_metadata, check_text, check_threshold, parse_messages,
)
from engram.retrieval import SearchConfig, search
from engram.stores.base import ChangeSet, Close, Criteria, Store
from engram.types import Event, MemoryRecord, Op, Scope, content_hash, iso, now, to_epoch

__all__ = ["Memory", "AsyncMemory"]

log = logging.getLogger("engram")


class Memory:
    """Long-term memory for LLM applications. `Memory()` works offline with embedded defaults.

    Parts may be passed in (`store=`, `embedder=`); otherwise they are built from settings (keyword
    arguments, ENGRAM_* environment, config file).
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 embedder: Embedder | None = None, **overrides: Any) -> None:
        if settings is not None and overrides:
            raise ConfigError("pass either a Settings object or keyword settings, not both")
        self.settings = settings or Settings.load(**overrides)
        self.embedder = embedder or embedder_from(self.settings)
        self.store = store or store_from(self.settings)
        self._search = SearchConfig(pool=self.settings.search_pool, rrf_k=self.settings.rrf_k)
        self._bound = False

    # -- writing -------------------------------------------------------------------------------------------

    def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None, metadata: dict[str, Any] | None = None, infer: bool = True,
            timestamp: Any = None, categories: Any = None, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store what the messages say. With infer=False each message's content becomes one memory."""
        scope = Scope.build(user_id, agent_id, run_id, filters)
        parsed = parse_messages(messages, self.settings.max_memory_chars)
        meta = check_metadata(metadata)
        cats = check_categories(categories)
        when = now() if timestamp is None else to_epoch(timestamp, "timestamp")
        if infer:
            raise ConfigError(
                "add(..., infer=True) needs the LLM extraction pipeline, which this version of engram does not "
                "have yet; pass infer=False to store each message as a memory"
            )
        batch = uuid.uuid4().hex
        wanted: dict[str, tuple[str, str | None, tuple[str, ...]]] = {}
        for message in parsed:
            if message.role == "system":
                continue  # instructions to the model are not facts about anyone
            digest = content_hash(message.content)
            if digest not in wanted:
                wanted[digest] = (message.content, message.role, (message.id,) if message.id else ())
        known = self.store.find_hashes(scope, list(wanted)) if wanted else {}
        fresh = [(digest, *spec) for digest, spec in wanted.items() if digest not in known]
        vectors = self._embed([text for _, text, _, _ in fresh])
        stamp = now()
        changes = ChangeSet()
        for (digest, text, role, source), vector in zip(fresh, vectors):
            record = MemoryRecord(
                id=str(uuid.uuid4()), text=text, hash=digest, user_id=scope.user_id, agent_id=scope.agent_id,
                run_id=scope.run_id, role=role, categories=cats, metadata=meta, source=source,
                created_at=stamp, updated_at=stamp, valid_from=when,
            )
            changes.inserts.append((record, vector))
            changes.events.append(Event(record.id, Op.ADD, batch, stamp, new_text=text, source=source, actor="user"))
        inserted = self.store.apply(changes) if changes else []
        results = [{"id": r.id, "memory": r.text, "event": Op.ADD.value} for r in inserted]
        results += [{"id": known[d].id, "memory": known[d].text, "event": Op.NOOP.value} for d in wanted if d in known]
        log.info("add: %d added, %d already known (batch %s)", len(inserted), len(results) - len(inserted), batch)
        return {"results": results, "batch_id": batch}

    def update(self, memory_id: str, data: str, *, metadata: dict[str, Any] | None = None,
               timestamp: Any = None) -> dict[str, Any]:
        """Replace a memory's text; the old version is closed, not destroyed (see history())."""
        text = check_text(data, self.settings.max_memory_chars, "data")
        meta = None if metadata is None else check_metadata(metadata)
        old = self._current(memory_id)
        when = now() if timestamp is None else to_epoch(timestamp, "timestamp")
        digest = content_hash(text)
        if digest == old.hash and (meta is None or meta == old.metadata):
            return {"message": "Memory unchanged", "id": old.id}
        if digest != old.hash:
            twin = self.store.find_hashes(old.scope, [digest]).get(digest)
            if twin is not None:
                raise InvalidInput(f"memory {twin.id} in the same scope already says {text!r}")
        vector = self._embed([text])[0]
        stamp = now()
        new = MemoryRecord(
            id=old.id, text=text, hash=digest, user_id=old.user_id, agent_id=old.agent_id, run_id=old.run_id,
            role=old.role, categories=old.categories, metadata=old.metadata if meta is None else meta,
            source=old.source, created_at=old.created_at, updated_at=stamp, valid_from=max(when, old.valid_from),
        )
        changes = ChangeSet(
            inserts=[(new, vector)], closes=[Close(old.id, new.valid_from)],
            events=[Event(old.id, Op.UPDATE, uuid.uuid4().hex, stamp, old_text=old.text, new_text=text, actor="user")],
        )
        self.store.apply(changes)
        return {"message": "Memory updated successfully!", "id": old.id}

    def delete(self, memory_id: str) -> dict[str, Any]:
        """Close a memory: it leaves search and listings, and stays in history()."""
        old = self._current(memory_id)
        stamp = now()
        self.store.apply(ChangeSet(
            closes=[Close(old.id, stamp)],
            events=[Event(old.id, Op.DELETE, uuid.uuid4().hex, stamp, old_text=old.text, actor="user")],
        ))
        return {"message": "Memory deleted successfully!", "id": old.id}

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                   filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close every current memory of a scope (and matching `filters`), in one transaction."""
        criteria = Criteria(Scope.build(user_id, agent_id, run_id, filters), parse_filters(filters))
        records = self.store.select(criteria)
        stamp, batch = now(), uuid.uuid4().hex
        self.store.apply(ChangeSet(
            closes=[Close(r.id, stamp) for r in records],
            events=[Event(r.id, Op.DELETE, batch, stamp, old_text=r.text, actor="user") for r in records],
        ))
        return {"message": "Memories deleted successfully!", "count": len(records), "batch_id": batch}

    def reset(self) -> None:
        """Erase everything in the store, history included. Unlike delete(), this destroys."""
        self.store.reset()
        self._bound = False

    # -- reading -------------------------------------------------------------------------------------------

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, limit: int | None = None, filters: dict[str, Any] | None = None,
               threshold: float | None = None, categories: Any = None, as_of: Any = None) -> dict[str, Any]:
        """Memories relevant to `query`, best first. `score` is fused relevance in [0, 1]; `threshold` is the
        minimum cosine similarity (`similarity` in results) a memory needs to be returned."""
        text = check_text(query, self.settings.max_memory_chars, "query")
        criteria = self._criteria(user_id, agent_id, run_id, filters, categories, as_of)
        count = check_limit(self.settings.search_limit if limit is None else limit)
        vector = self._embed([text])[0]
        hits = search(self.store, vector, text, criteria, count, threshold=check_threshold(threshold),
                      config=self._search)
        return {"results": [hit.to_dict() for hit in hits]}

    def get(self, memory_id: str) -> dict[str, Any]:
        return self._current(memory_id).to_dict()

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: dict[str, Any] | None = None, limit: int = 100, categories: Any = None,
                as_of: Any = None) -> dict[str, Any]:
        criteria = self._criteria(user_id, agent_id, run_id, filters, categories, as_of)
        records = self.store.select(criteria, check_limit(limit))
        return {"results": [record.to_dict() for record in records]}

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        check_id(memory_id)
        events = self.store.history(memory_id)
        if not events:
            raise NotFound(f"no memory with id {memory_id!r}")
        return [event.to_dict() for event in events]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------------------------

    def _criteria(self, user_id: Any, agent_id: Any, run_id: Any, filters: Any, categories: Any,
                  as_of: Any) -> Criteria:
        return Criteria(
            scope=Scope.build(user_id, agent_id, run_id, filters if isinstance(filters, dict) else None),
            where=parse_filters(filters),
            categories=check_categories(categories),
            as_of=None if as_of is None else to_epoch(as_of, "as_of"),
        )

    def _current(self, memory_id: Any) -> MemoryRecord:
        check_id(memory_id)
        record = self.store.get(memory_id)
        if record is None:
            raise NotFound(f"no memory with id {memory_id!r}")
        if not record.is_current:
            raise NotFound(f"memory {memory_id} was deleted at {iso(record.valid_to)}; its history() remains")
        return record

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not self._bound:
            self.store.bind_embedder(self.embedder.name, self.embedder.dimension)
            self._bound = True
        return self.embedder.embed(texts)


def check_id(memory_id: Any) -> None:
    if not isinstance(memory_id, str) or not memory_id.strip() or len(memory_id) > 128:
        raise InvalidInput(f"memory_id must be a non-empty string, got {memory_id!r}")


class AsyncMemory:
    """Memory's methods as coroutines: each runs the same synchronous code in a worker thread."""

    def __init__(self, settings: Settings | None = None, *, memory: Memory | None = None, **kwargs: Any) -> None:
        self.sync = memory or Memory(settings, **kwargs)

    async def __aenter__(self) -> "AsyncMemory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _in_thread(name: str) -> Callable[..., Any]:
    method = getattr(Memory, name)

    @functools.wraps(method)
    async def call(self: AsyncMemory, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(method, self.sync, *args, **kwargs)

    return call


for _name in ("add", "search", "get", "get_all", "update", "delete", "delete_all", "history", "reset", "close"):
    setattr(AsyncMemory, _name, _in_thread(_name))
