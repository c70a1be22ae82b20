"""The facade: Mem0's classic API over a store and an embedder. Inputs are checked before anything is written."""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Self, overload

from engram.compat import UNSET, pick_limit, pick_text, refuse_unsupported
from engram.components import check_parts, embedder_from, reranker_from, store_from
from engram.config import Settings
from engram.embed.base import Embedder
from engram.errors import ConfigError, Conflict, InvalidInput, NotFound
from engram.filters import parse_filters
from engram.graph_alias import AliasMatcher, NameVectors
from engram.graph_memory import add_graph, entities, related, scope_graph
from engram.inputs import (
    MAX_LIST_LIMIT,
    MAX_SEARCH_LIMIT,
    Message,
    check_categories,
    check_id,
    check_limit,
    check_metadata,
    check_text,
    check_threshold,
    parse_messages,
)
from engram.pipeline import Pipeline, plan_changes
from engram.raw import Lookahead, RawBatch, raw_changes
from engram.retrieval import search, search_config
from engram.revert import plan_revert, revert_batch_id
from engram.stores.base import ChangeSet, Close, Criteria, Store
from engram.types import Event, MemoryRecord, Op, Scope, content_hash, iso, new_batch_id, now, to_epoch, to_expiry

if TYPE_CHECKING:
    from engram.rerank import Reranker

__all__ = ["Memory"]

log = logging.getLogger("engram")
_ATTEMPTS = 5  # an inferred add decided on a state another writer changed is decided again (LLM calls too)
_RETRY_FOR = 30.0  # seconds a plain update/delete keeps retrying on the fresh version before raising Conflict


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))


def _held_by_others(changes: ChangeSet, stored: list[MemoryRecord]) -> dict[str, MemoryRecord]:
    """New memories another writer stored first (the store's dedup), by id: the memory that holds each."""
    return {record.id: held for (record, _), held in zip(changes.inserts, stored, strict=True) if held.id != record.id}


def _known_already(results: list[dict[str, Any]], twins: dict[str, MemoryRecord]) -> list[dict[str, Any]]:
    """Results as the store applied them: a new memory in `twins` (_held_by_others) is a NOOP naming the memory
    that holds it."""
    return [{"id": twins[r["id"]].id, "memory": twins[r["id"]].text, "event": Op.NOOP.value, "reason": "already known"}
            if r["id"] in twins and r["event"] == Op.ADD.value else r for r in results]


def _set_expiry(changes: ChangeSet, expires_at: float | None, replaced: dict[str, MemoryRecord]) -> None:
    """Every version an add writes expires at the add's expiration_date; without one, a new version of a memory
    (`replaced`: the versions it replaces, by id) keeps its predecessor's."""
    changes.inserts = [
        (replace(r, expires_at=replaced[r.id].expires_at if expires_at is None and r.id in replaced else expires_at), v)
        for r, v in changes.inserts]


@dataclass
class _Change:
    """What update() was asked to change (None / UNSET: keep), and the vector of its text once embedded."""

    text: str | None
    metadata: dict[str, Any] | None
    expires_at: Any
    when: float | None
    vector: tuple[str, Any] | None = None

    def applied_to(self, old: MemoryRecord) -> MemoryRecord:
        """The new version of `old` (its times and batch still to be set)."""
        text = old.text if self.text is None else self.text
        return replace(old, text=text, hash=content_hash(text),
                       metadata=(old.metadata if self.metadata is None
                                 else check_metadata({**old.metadata, **self.metadata})),
                       expires_at=old.expires_at if self.expires_at is UNSET else self.expires_at,
                       valid_to=None, superseded_by=None, version=None, position=0)


class Memory:
    """Long-term memory for LLM applications. `Memory()` works offline with embedded defaults.

    Parts may be passed in (`store=`, `embedder=`, `reranker=`); otherwise they are built from settings
    (keyword arguments, ENGRAM_* environment, config file).
    """

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 embedder: Embedder | None = None, pipeline: Pipeline | None = None, reranker: Reranker | None = None,
                 **overrides: Any) -> None:
        if settings is not None and overrides:
            raise ConfigError("pass either a Settings object or keyword settings, not both")
        check_parts(settings, store, embedder, reranker)
        self.settings = settings or Settings.load(**overrides)
        self.reranker = reranker or reranker_from(self.settings)
        self.embedder = embedder or embedder_from(self.settings)
        self.store = store or store_from(self.settings, self.embedder)
        self._search = search_config(self.settings)
        self._pipeline = pipeline
        self._bound = False
        # graph memory: names resolve by similarity too, embedded with this memory's embedder
        self._aliases = AliasMatcher(NameVectors(lambda names: self._bound_embedder().embed(names)),
                                     self.settings.graph_alias_similarity, self.settings.graph_alias_spelling)
        self._told_no_reranker = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **settings: Any) -> Memory:
        """Mem0's `Memory.from_config`: a Mem0 config dict (vector_store, embedder, llm, reranker; see
        engram.mem0_config) read into engram's settings. Keyword `settings` (engram's, e.g. home=) override it;
        what neither names comes from ENGRAM_* and the config file, as for Memory()."""
        from engram.mem0_config import load

        loaded, store = load(config, settings)
        return cls(loaded, store=store)

    # -- writing -------------------------------------------------------------------------------------------

    def add(self, messages: Any, *, user_id: str | None = None, agent_id: str | None = None,
            run_id: str | None = None, metadata: dict[str, Any] | None = None, infer: bool = True,
            timestamp: Any = None, expiration_date: Any = None, memory_type: str | None = None,
            prompt: str | None = None, categories: Any = None, filters: dict[str, Any] | None = None,
            dry_run: bool = False) -> dict[str, Any]:
        """Remember what the messages say. infer=True extracts facts and reconciles them with what is stored
        (with the LLM when one is configured, else offline rules); infer=False stores each message as it is.
        `expiration_date`: what this add writes leaves search and listings from then on (a date: after that
        day). dry_run=True returns the operations that would be applied and writes nothing. Mem0's
        `memory_type` and `prompt` are refused (InvalidInput): engram has neither procedural memories nor
        custom prompts."""
        refuse_unsupported(memory_type, prompt)
        scope = Scope.build(user_id, agent_id, run_id, filters)
        # infer=True reads a conversation (bounded as a whole, extracted in pieces); infer=False stores memories
        parsed = parse_messages(messages, self.settings.max_input_chars if infer else self.settings.max_memory_chars,
                                whole=infer)
        meta = check_metadata(metadata)
        cats = check_categories(categories)
        when = now() if timestamp is None else to_epoch(timestamp, "timestamp")
        return self._add(scope, parsed, infer=infer, when=when, metadata=meta, categories=cats, dry_run=dry_run,
                         expires_at=to_expiry(expiration_date))

    def _add(self, scope: Scope, parsed: list[Message], *, infer: bool, when: float, metadata: dict[str, Any],
             categories: tuple[str, ...], dry_run: bool = False, saved: tuple[str, Scope, int] | None = None,
             expires_at: float | None = None) -> dict[str, Any]:
        """add() once its arguments are checked. `saved`: a chat session's turns to mark as saved in the same
        write (the agent's background save)."""
        batch = new_batch_id()
        for attempt in range(_ATTEMPTS):  # another writer changed a memory this add decided on: decide again
            extra: dict[str, Any] = {}
            if infer:
                proposed = self.pipeline.propose(self.store, self._bound_embedder(), scope, parsed, when)
                hashes = [content_hash(d.text) for d in proposed.decisions]
                changes, results = plan_changes(
                    proposed, scope, when=when, stamp=now(), batch=batch, metadata=metadata, categories=categories,
                    known=self.store.find_hashes(scope, hashes) if hashes else {},
                )
                _set_expiry(changes, expires_at, {d.target.id: d.target for d in proposed.decisions if d.target})
                add_graph(changes, self.store, scope, {d.text: d.fact.triplets for d in proposed.decisions},
                          self._aliases)
                extra = {"usage": proposed.usage.to_dict(), "rejected": [r.to_dict() for r in proposed.rejected]}
            else:
                changes, [results] = raw_changes(self.store, self._bound_embedder(), scope,
                                                 [RawBatch(parsed, when, batch, metadata, categories, expires_at)])
                add_graph(changes, self.store, scope, aliases=self._aliases)
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
            results = _known_already(results, _held_by_others(changes, stored))
            break
        log.info("add %s: %s (%s)", batch, ", ".join(f"{r['event']} {r['memory']!r}" for r in results) or "nothing",
                 extra.get("usage", "infer=False"))
        return {"results": results, "batch_id": batch, **extra, **({"dry_run": True} if dry_run else {})}

    def _add_raw(self, scope: Scope, batches: list[RawBatch],
                 ahead: Lookahead | None = None) -> list[list[dict[str, Any]]]:
        """Several add(infer=False) batches of one scope in one write (an import); each batch's results. `ahead`:
        what an import found and embedded ahead (raw.Lookahead)."""
        changes, results = raw_changes(self.store, self._bound_embedder(), scope, batches, ahead)
        add_graph(changes, self.store, scope, aliases=self._aliases, rules=ahead.found.graphs if ahead else None)
        if changes:
            stored = self.store.apply(changes)
            twins = _held_by_others(changes, stored)  # once: an import's write holds many batches
            results = [_known_already(r, twins) for r in results]
        return results

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

    def update(self, memory_id: str, text: str | None = None, metadata: dict[str, Any] | None = None,
               expiration_date: Any = UNSET, data: str | None = None, *, timestamp: Any = None,
               expected_version: int | None = None) -> dict[str, Any]:
        """Change a memory's text, metadata (the keys given are set, the others kept, as in Mem0) and/or
        expiration date (None: never). `data` is Mem0's older name of `text`. The old version is closed, not
        destroyed (see history()). The write is guarded by the version it replaces: when another writer changed
        the memory meanwhile, the update is made again on the new current version (last writer wins, history
        names each true old text), or, with `expected_version=` (a result's "version"), raises Conflict."""
        wanted = pick_text(text, data)
        if wanted is None and metadata is None and expiration_date is UNSET:
            raise InvalidInput("update needs text (or data), metadata and/or expiration_date")
        change = _Change(
            text=None if wanted is None else check_text(wanted, self.settings.max_memory_chars, "text"),
            metadata=None if metadata is None else check_metadata(metadata),
            expires_at=UNSET if expiration_date is UNSET else to_expiry(expiration_date),
            when=None if timestamp is None else to_epoch(timestamp, "timestamp"),
        )
        return self._on_current(memory_id, expected_version, lambda old: self._write_update(old, change))

    def _write_update(self, old: MemoryRecord, change: _Change) -> dict[str, Any]:
        """One attempt of update() on the version `old`."""
        new = change.applied_to(old)
        if new.hash == old.hash and new.metadata == old.metadata and new.expires_at == old.expires_at:
            return {"message": "Memory unchanged", "id": old.id, "version": old.version}
        stamp = now()
        if new.hash != old.hash or (old.expired_by(stamp) and not new.expired_by(stamp)):  # a text shown anew
            twin = self.store.find_hashes(old.scope, [new.hash]).get(new.hash)
            if twin is not None and twin.id != old.id:
                raise InvalidInput(f"memory {twin.id} in the same scope already says {new.text!r}")
        if change.vector is None or change.vector[0] != new.text:  # embedded once per text, whatever the retries
            change.vector = (new.text, self._vector_of(new.text, old))
        batch = new_batch_id()
        valid_from = max(stamp if change.when is None else change.when, old.valid_from)
        new = replace(new, updated_at=stamp, valid_from=valid_from, batch_id=batch)
        changes = ChangeSet(
            inserts=[(new, change.vector[1])], closes=[Close(old.id, new.valid_from, version=old.version)],
            events=[Event(old.id, Op.UPDATE, batch, stamp, old_text=old.text, new_text=new.text, actor="user")],
        )
        add_graph(changes, self.store, old.scope, aliases=self._aliases)
        [stored] = self.store.apply(changes)
        return {"message": "Memory updated successfully!", "id": old.id, "version": stored.version}

    def delete(self, memory_id: str, *, expected_version: int | None = None) -> dict[str, Any]:
        """Close a memory: it leaves search and listings, and stays in history(). Guarded like update()."""
        def write(old: MemoryRecord) -> dict[str, Any]:
            stamp = now()
            self.store.apply(ChangeSet(
                closes=[Close(old.id, stamp, version=old.version)],
                events=[Event(old.id, Op.DELETE, new_batch_id(), stamp, old_text=old.text, actor="user")],
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
        """Close every current memory of a scope (and matching `filters`), expired ones too, in one transaction."""
        criteria = Criteria(Scope.build(user_id, agent_id, run_id, filters), parse_filters(filters), show_expired=True)
        records = self.store.select(criteria)
        stamp, batch = now(), new_batch_id()
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
               threshold: float | None = None, categories: Any = None, as_of: Any = None,
               top_k: int | None = None, show_expired: bool = False, rerank: bool = False,
               explain: bool = False, graph: bool | None = None) -> dict[str, Any]:
        """Memories relevant to `query`, best first. `score` is fused relevance in [0, 1]; `threshold` is the
        minimum cosine similarity (`similarity` in results) a memory needs to be returned. `top_k` is Mem0's
        name of `limit`. Expired memories are left out unless `show_expired`. `rerank=True` has the reranker
        reorder the best candidates (`rerank_score` in results); without one configured it changes nothing.
        `explain=True` adds each hit's score taken apart (`explain`: cosine, keyword, fused, time, context).
        `graph=True` also ranks higher the memories naming the entities the query names (graph memory;
        `explain` then has a `graph` part); None: as the setting search_graph says (off)."""
        text = check_text(query, self.settings.max_memory_chars, "query")
        criteria = self._criteria(user_id, agent_id, run_id, filters, categories, as_of, show_expired)
        limit = pick_limit(limit, top_k)
        count = check_limit(self.settings.search_limit if limit is None else limit, maximum=MAX_SEARCH_LIMIT)
        reranker = self._reranker_for(rerank)
        vector = self._bound_embedder().embed([text])[0]
        pool = count if reranker is None else max(count, reranker.candidates)
        hits = search(self.store, vector, text, criteria, pool, threshold=check_threshold(threshold),
                      config=self._search, explain=explain,
                      graph=self.settings.search_graph if graph is None else graph is True)
        if reranker is not None and hits:
            hits = reranker.rerank(text, hits)[:count]
        return {"results": [hit.to_dict() for hit in hits]}

    def entities(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                 as_of: Any = None) -> dict[str, Any]:
        """The people, places, organisations and dates the scope's memories name (graph memory): each with its
        kind, aliases and how many memories name it, most named first. `as_of`: as the memories stood then."""
        return {"results": entities(self.store, self._criteria(user_id, agent_id, run_id, None, None, as_of, False))}

    def related(self, name: str, *, user_id: str | None = None, agent_id: str | None = None,
                run_id: str | None = None, hops: int = 2, as_of: Any = None) -> dict[str, Any]:
        """The entity `name` names (by name, alias or short form), the entities within `hops` relations of it,
        the relations between them and the memories they come from. NotFound when the scope names no such entity."""
        check_text(name, 100, "name")
        if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
            raise InvalidInput(f"hops must be an integer from 0 to 5, got {hops!r}")
        return related(self.store, self._criteria(user_id, agent_id, run_id, None, None, as_of, False), name, hops)

    def graph(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
              as_of: Any = None) -> dict[str, Any]:
        """The scope's whole graph: `entities` as entities() gives them, and every relation (subject, relation,
        object) with the memory it comes from (`memory_id`, `memory`). `as_of`: as the memories stood then."""
        return scope_graph(self.store, self._criteria(user_id, agent_id, run_id, None, None, as_of, False))

    @overload
    def get(self, memory_id: str, *, strict: Literal[True]) -> dict[str, Any]: ...

    @overload
    def get(self, memory_id: str, *, strict: bool = False) -> dict[str, Any] | None: ...

    def get(self, memory_id: str, *, strict: bool = False) -> dict[str, Any] | None:
        """The memory's current version; None when the id is unknown or the memory was deleted (as in Mem0),
        or with `strict=True` NotFound saying which."""
        try:
            return self._current(memory_id).to_dict()
        except NotFound:
            if strict:
                raise
            return None

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                filters: dict[str, Any] | None = None, limit: int | None = None, categories: Any = None,
                as_of: Any = None, top_k: int | None = None, show_expired: bool = False) -> dict[str, Any]:
        """The scope's memories, newest first: at most `limit` (default 100; `top_k` is Mem0's name of it).
        Expired memories are left out unless `show_expired`."""
        criteria = self._criteria(user_id, agent_id, run_id, filters, categories, as_of, show_expired)
        limit = pick_limit(limit, top_k)
        records = self.store.select(criteria, check_limit(100 if limit is None else limit, maximum=MAX_LIST_LIMIT))
        return {"results": [record.to_dict() for record in records]}

    def grep(self, pattern: str, *, user_id: str | None = None, agent_id: str | None = None,
             run_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        """Current memories whose text the regular expression `pattern` matches, with file and line (store = files)."""
        from engram.stores.files import grep

        scope = Scope.build(user_id, agent_id, run_id)
        return {"results": grep(self.store, pattern, scope, check_limit(limit, maximum=MAX_LIST_LIMIT))}

    def history(self, memory_id: str, *, strict: bool = False) -> list[dict[str, Any]]:
        """Every change of a memory, oldest first, deleted memories included; [] for an unknown id (as in
        Mem0), or with `strict=True` NotFound."""
        check_id(memory_id)
        events = self.store.history(memory_id)
        if not events and strict:
            raise NotFound(f"no memory with id {memory_id!r}")
        record = self.store.get(memory_id) if events else None
        return [event.to_dict(role=record.role if record else None) for event in events]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------------------------------

    def _criteria(self, user_id: Any, agent_id: Any, run_id: Any, filters: Any, categories: Any,
                  as_of: Any, show_expired: Any = False) -> Criteria:
        if not isinstance(show_expired, bool):
            raise InvalidInput(f"show_expired must be True or False, not {type(show_expired).__name__}")
        return Criteria(
            scope=Scope.build(user_id, agent_id, run_id, filters if isinstance(filters, dict) else None),
            where=parse_filters(filters),
            categories=check_categories(categories),
            as_of=None if as_of is None else to_epoch(as_of, "as_of"),
            show_expired=show_expired,
        )

    def _current(self, memory_id: Any) -> MemoryRecord:
        check_id(memory_id)
        record = self.store.get(memory_id)
        if record is None:
            raise NotFound(f"no memory with id {memory_id!r}")
        if not record.is_current:
            raise NotFound(f"memory {memory_id} was deleted at {iso(record.valid_to)}; its history() remains")
        return record

    def _vector_of(self, text: str, old: MemoryRecord) -> Any:
        """The vector of `text`: the stored one when it is the old version's text (a metadata-only update)."""
        if text == old.text and old.version is not None:
            return self.store.vectors([old.version])[0]
        return self._bound_embedder().embed([text])[0]

    def _reranker_for(self, rerank: Any) -> Reranker | None:
        """The reranker a search with `rerank` uses: none unless asked, and none configured is noted once (Mem0
        also carries on without one)."""
        if not isinstance(rerank, bool):
            raise InvalidInput(f"rerank must be True or False, not {type(rerank).__name__}")
        if rerank and self.reranker is None and not self._told_no_reranker:
            self._told_no_reranker = True
            log.warning("search(rerank=True): no reranker is configured (setting reranker), so results keep "
                        "search's own order")
        return self.reranker if rerank else None

    def _bound_embedder(self) -> Embedder:
        """The embedder, once the store has accepted it (vectors of two embedders never mix)."""
        if not self._bound:
            self.store.bind_embedder(self.embedder.name, self.embedder.dimension)
            self._bound = True
        return self.embedder
