"""The facade: Mem0's classic API over a store and an embedder. Inputs are checked before anything is written."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from engram.components import check_parts, embedder_from, store_from
from engram.config import Settings
from engram.embed.base import Embedder
from engram.errors import ConfigError, Conflict, InvalidInput, NotFound
from engram.filters import parse_filters
from engram.inputs import (
    MAX_LIST_LIMIT, MAX_SEARCH_LIMIT, Message, check_categories, check_id, check_limit, check_metadata, check_text,
    check_threshold, parse_messages,
)
from engram.pipeline import Pipeline, plan_changes
from engram.retrieval import search, search_config
from engram.revert import plan_revert, revert_batch_id
from engram.stores.base import ChangeSet, Close, Criteria, Store
from engram.types import Event, MemoryRecord, Op, Scope, content_hash, iso, now, to_epoch

__all__ = ["Memory", "AsyncMemory"]

log = logging.getLogger("engram")
_ATTEMPTS = 5  # an inferred add decided on a state another writer changed is decided again (LLM calls too)
_RETRY_FOR = 30.0  # seconds a plain update/delete keeps retrying on the fresh version before raising Conflict


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))


def _known_already(results: list[dict[str, Any]], changes: ChangeSet, stored: list[MemoryRecord]) -> list[dict[str, Any]]:
    """Results as the store applied them: a new memory another writer stored first (the store's dedup) is a
    NOOP naming the memory that holds it."""
    twins = {record.id: held for (record, _), held in zip(changes.inserts, stored) if held.id != record.id}
    return [{"id": twins[r["id"]].id, "memory": twins[r["id"]].text, "event": Op.NOOP.value, "reason": "already known"}
            if r["id"] in twins and r["event"] == Op.ADD.value else r for r in results]


class Memory:
    """Long-term memory for LLM applications. `Memory()` works offline with embedded defaults.

    Parts may be passed in (`store=`, `embedder=`); otherwise they are built from settings (keyword
    arguments, ENGRAM_* environment, config file).
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 embedder: Embedder | None = None, pipeline: Pipeline | None = None, **overrides: Any) -> None:
        if settings is not None and overrides:
            raise ConfigError("pass either a Settings object or keyword settings, not both")
        check_parts(settings, store, embedder)
        self.settings = settings or Settings.load(**overrides)
        self.embedder = embedder or embedder_from(self.settings)
        self.store = store or store_from(self.settings)
        self._search = search_config(self.settings)
        self._pipeline = pipeline
        self._bound = False

    # -- writing -------------------------------------------------------------------------------------------

    def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None, metadata: dict[str, Any] | None = None, infer: bool = True,
            timestamp: Any = None, categories: Any = None, filters: dict[str, Any] | None = None,
            dry_run: bool = False) -> dict[str, Any]:
        """Remember what the messages say. infer=True extracts facts and reconciles them with what is stored
        (with the LLM when one is configured, else offline rules); infer=False stores each message as it is.
        dry_run=True returns the operations that would be applied and writes nothing."""
        scope = Scope.build(user_id, agent_id, run_id, filters)
        # infer=True reads a conversation (bounded as a whole, extracted in pieces); infer=False stores memories
        parsed = parse_messages(messages, self.settings.max_input_chars if infer else self.settings.max_memory_chars,
                                whole=infer)
        meta = check_metadata(metadata)
        cats = check_categories(categories)
        when = now() if timestamp is None else to_epoch(timestamp, "timestamp")
        return self._add(scope, parsed, infer=infer, when=when, metadata=meta, categories=cats, dry_run=dry_run)

    def _add(self, scope: Scope, parsed: list[Message], *, infer: bool, when: float, metadata: dict[str, Any],
             categories: tuple[str, ...], dry_run: bool = False,
             saved: tuple[str, Scope, int] | None = None) -> dict[str, Any]:
        """add() once its arguments are checked. `saved`: a chat session's turns to mark as saved in the same
        write (the agent's background save)."""
        batch = uuid.uuid4().hex
        for attempt in range(_ATTEMPTS):  # another writer changed a memory this add decided on: decide again
            extra: dict[str, Any] = {}
            if infer:
                proposed = self.pipeline.propose(self.store, self._bound_embedder(), scope, parsed, when)
                hashes = [content_hash(d.text) for d in proposed.decisions]
                changes, results = plan_changes(
                    proposed, scope, when=when, stamp=now(), batch=batch, metadata=metadata, categories=categories,
                    known=self.store.find_hashes(scope, hashes) if hashes else {},
                )
                extra = {"usage": proposed.usage.to_dict(), "rejected": [r.to_dict() for r in proposed.rejected]}
            else:
                changes, results = self._raw_changes(scope, parsed, when, batch, metadata, categories)
            changes.saved = saved
            if dry_run or not changes:
                break
            try:
                stored = self.store.apply(changes)
            except Conflict:
                if attempt == _ATTEMPTS - 1:
                    raise
                _backoff(attempt)
                continue
            results = _known_already(results, changes, stored)
            break
        log.info("add %s: %s (%s)", batch, ", ".join(f"{r['event']} {r['memory']!r}" for r in results) or "nothing",
                 extra.get("usage", "infer=False"))
        return {"results": results, "batch_id": batch, **extra, **({"dry_run": True} if dry_run else {})}

    def _raw_changes(self, scope: Scope, parsed: list[Message], when: float, batch: str, meta: dict[str, Any],
                     cats: tuple[str, ...]) -> tuple[ChangeSet, list[dict[str, Any]]]:
        wanted: dict[str, Message] = {}
        for message in parsed:
            if message.role != "system":  # instructions to the model are not facts about anyone
                wanted.setdefault(content_hash(message.content), message)
        known = self.store.find_hashes(scope, list(wanted)) if wanted else {}  # spares embedding them
        fresh = [(digest, m) for digest, m in wanted.items() if digest not in known]
        vectors = self._bound_embedder().embed([m.content for _, m in fresh])
        stamp = now()
        changes = ChangeSet(owner=scope)
        for position, ((digest, message), vector) in enumerate(zip(fresh, vectors)):
            source = (message.id,) if message.id else ()
            record = MemoryRecord(
                id=str(uuid.uuid4()), text=message.content, hash=digest, user_id=scope.user_id,
                agent_id=scope.agent_id, run_id=scope.run_id, role=message.role, categories=cats, metadata=meta,
                source=source, created_at=stamp, updated_at=stamp, valid_from=when, batch_id=batch, position=position,
            )
            changes.inserts.append((record, vector))
            changes.events.append(Event(record.id, Op.ADD, batch, stamp, new_text=record.text, source=source, actor="user"))
        results = [{"id": r.id, "memory": r.text, "event": Op.ADD.value} for r, _ in changes.inserts]
        results += [{"id": known[d].id, "memory": known[d].text, "event": Op.NOOP.value} for d in wanted if d in known]
        return changes, results

    def revert(self, batch_id: str) -> dict[str, Any]:
        """Undo a whole add (or delete_all): what it added is closed, what it superseded is current again."""
        check_id(batch_id, "batch_id")
        if self.store.batch(revert_batch_id(batch_id)):
            raise InvalidInput(f"batch {batch_id} was already reverted")
        changes = plan_revert(batch_id, self.store.batch(batch_id), self.store.get, now())
        self.store.apply(changes)
        return {"message": "Batch reverted", "batch_id": revert_batch_id(batch_id),
                "results": [{"id": e.memory_id, "memory": e.new_text, "previous_memory": e.old_text, "event": "REVERT"}
                            for e in changes.events]}

    @property
    def pipeline(self) -> Pipeline:
        """The add(infer=True) pipeline, built on first use (an LLM client is only made when needed)."""
        if self._pipeline is None:
            self._pipeline = Pipeline.from_settings(self.settings)
        return self._pipeline

    def update(self, memory_id: str, data: str, *, metadata: dict[str, Any] | None = None,
               timestamp: Any = None, expected_version: int | None = None) -> dict[str, Any]:
        """Replace a memory's text; the old version is closed, not destroyed (see history()). The write is
        guarded by the version it replaces: when another writer changed the memory meanwhile, the update is
        made again on the new current version (last writer wins, history names each true old text), or, with
        `expected_version=` (a result's "version"), raises Conflict instead."""
        text = check_text(data, self.settings.max_memory_chars, "data")
        meta = None if metadata is None else check_metadata(metadata)
        when = None if timestamp is None else to_epoch(timestamp, "timestamp")
        digest = content_hash(text)
        vectors: list[Any] = []  # embedded once, whatever the retries

        def write(old: MemoryRecord) -> dict[str, Any]:
            if digest == old.hash and (meta is None or meta == old.metadata):
                return {"message": "Memory unchanged", "id": old.id, "version": old.version}
            if digest != old.hash:
                twin = self.store.find_hashes(old.scope, [digest]).get(digest)
                if twin is not None:
                    raise InvalidInput(f"memory {twin.id} in the same scope already says {text!r}")
            vectors[:] = vectors or [self._bound_embedder().embed([text])[0]]
            stamp, batch = now(), uuid.uuid4().hex
            new = replace(old, text=text, hash=digest, metadata=old.metadata if meta is None else meta, updated_at=stamp,
                          valid_from=max(stamp if when is None else when, old.valid_from), valid_to=None,
                          superseded_by=None, version=None, batch_id=batch, position=0)
            [stored] = self.store.apply(ChangeSet(
                inserts=[(new, vectors[0])], closes=[Close(old.id, new.valid_from, version=old.version)],
                events=[Event(old.id, Op.UPDATE, batch, stamp, old_text=old.text, new_text=text, actor="user")],
            ))
            return {"message": "Memory updated successfully!", "id": old.id, "version": stored.version}

        return self._on_current(memory_id, expected_version, write)

    def delete(self, memory_id: str, *, expected_version: int | None = None) -> dict[str, Any]:
        """Close a memory: it leaves search and listings, and stays in history(). Guarded like update()."""
        def write(old: MemoryRecord) -> dict[str, Any]:
            stamp = now()
            self.store.apply(ChangeSet(
                closes=[Close(old.id, stamp, version=old.version)],
                events=[Event(old.id, Op.DELETE, uuid.uuid4().hex, stamp, old_text=old.text, actor="user")],
            ))
            return {"message": "Memory deleted successfully!", "id": old.id}

        return self._on_current(memory_id, expected_version, write)

    def _on_current(self, memory_id: Any, expected_version: int | None,
                    write: Callable[[MemoryRecord], dict[str, Any]]) -> dict[str, Any]:
        """`write(current version)`, again on the fresh version while other writers win the race (for up to
        _RETRY_FOR seconds); with `expected_version`, Conflict at once when it is not (or no longer) current."""
        deadline = time.monotonic() + _RETRY_FOR
        for attempt in itertools.count():
            old = self._current(memory_id)
            if expected_version is not None and old.version != expected_version:
                raise Conflict(f"memory {old.id} is at version {old.version}, not {expected_version}")
            try:
                return write(old)
            except Conflict:
                if expected_version is not None or time.monotonic() > deadline:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                   filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close every current memory of a scope (and matching `filters`), in one transaction."""
        criteria = Criteria(Scope.build(user_id, agent_id, run_id, filters), parse_filters(filters))
        records = self.store.select(criteria)
        stamp, batch = now(), uuid.uuid4().hex
        self.store.apply(ChangeSet(  # closing only the versions listed: a memory changed meanwhile is a Conflict
            closes=[Close(r.id, stamp, version=r.version) for r in records],
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
        count = check_limit(self.settings.search_limit if limit is None else limit, maximum=MAX_SEARCH_LIMIT)
        vector = self._bound_embedder().embed([text])[0]
        hits = search(self.store, vector, text, criteria, count, threshold=check_threshold(threshold),
                      config=self._search)
        return {"results": [hit.to_dict() for hit in hits]}

    def get(self, memory_id: str) -> dict[str, Any]:
        return self._current(memory_id).to_dict()

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: dict[str, Any] | None = None, limit: int = 100, categories: Any = None,
                as_of: Any = None) -> dict[str, Any]:
        criteria = self._criteria(user_id, agent_id, run_id, filters, categories, as_of)
        records = self.store.select(criteria, check_limit(limit, maximum=MAX_LIST_LIMIT))
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

    def _bound_embedder(self) -> Embedder:
        """The embedder, once the store has accepted it (vectors of two embedders never mix)."""
        if not self._bound:
            self.store.bind_embedder(self.embedder.name, self.embedder.dimension)
            self._bound = True
        return self.embedder


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


for _name in ("add", "search", "get", "get_all", "update", "delete", "delete_all", "history", "revert", "reset", "close"):
    setattr(AsyncMemory, _name, _in_thread(_name))
