"""The Qdrant store: a local directory, `:memory:`, or a server / distributed cluster by URL.

Three collections, all state in Qdrant (several engram processes may share a server; none keeps a local file):
`<name>` holds one point per version (`version` == point id, a random 63-bit int) with a dense vector
("dense", dot product on unit vectors = cosine) and a sparse BM25 vector ("words", IDF applied by Qdrant);
`<name>_events` the history; `<name>_journal` the intents that make each `apply` all-or-nothing (see
qdrant_journal). The embedder binding is the memories collection's metadata, fixed when it is created.
Filters are translated to Qdrant filters (qdrant_schema); nothing is filtered in Python.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.http import models

from engram.errors import (
    ConfigError,
    Conflict,
    EmbedderMismatch,
    EngramError,
    NotFound,
    StoreError,
)
from engram.graph import Graph
from engram.stores.base import ChangeSet, Criteria, Store, batch_neighbours
from engram.stores.changes import (
    Checked,
    State,
    TwoCurrent,
    check,
    wanted_ids,
    wanted_twins,
)
from engram.stores.qdrant_collections import create, read_binding
from engram.stores.qdrant_journal import (
    CLIENT_ERRORS,
    Conflict as Clash,
    Journal,
    Names,
    client_errors,
    open_local,
    release_local,
    scroll_all,
)
from engram.stores.qdrant_plan import plan
from engram.stores.qdrant_schema import (
    CLOSED,
    CURRENT,
    PENDING,
    batch_of,
    collection_specs,
    match,
    read_filter,
    scope_key,
    to_event,
    to_record,
    unexpired,
)
from engram.stores.qdrant_sessions import Head, QdrantSessions
from engram.stores.sparse import encode_query
from engram.types import Event, MemoryRecord, Scope, now

__all__ = ["QdrantStore"]

_ATTEMPTS = 6
_RECORD = ["id", "text", "hash", "role", "user_id", "agent_id", "run_id", "categories", "metadata", "metadata_json",
           "source", "created_at", "updated_at", "valid_from", "valid_to", "superseded_by", "status", "txn", "written",
           "batch_id", "position", "expires_at"]
_VISIBLE = models.FieldCondition(key="status", match=models.MatchAny(any=[CURRENT, CLOSED]))
Decided = tuple[Checked, dict[int, int], dict[str, Any] | None]  # the check, who last wrote each version, `saved`


class QdrantStore(Store):
    def __init__(self, *, path: str | Path | None = None, url: str | None = None, api_key: str | None = None,
                 client: QdrantClient | None = None, collection: str = "engram", abandon_after: float = 60.0,
                 shard_number: int | None = None, replication_factor: int | None = None,
                 write_consistency_factor: int | None = None, timeout: int = 30) -> None:
        """`abandon_after`: seconds after which another process's unfinished write counts as crashed (local
        directories are single-process, so there any unfinished write is). The cluster settings apply when
        this store creates its collections."""
        if sum(x is not None for x in (path, url, client)) != 1:
            raise ConfigError("QdrantStore takes exactly one of path= (a directory or ':memory:'), url= or client=")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", collection):
            raise ConfigError(f"Qdrant collection name must be letters, digits, '_' or '-', not {collection!r}")
        self.names = Names.of(collection)
        self._cluster = {k: v for k, v in [("shard_number", shard_number), ("replication_factor", replication_factor),
                                           ("write_consistency_factor", write_consistency_factor)] if v is not None}
        self._key: str | None = None
        self._owned = client is None
        if client is not None:
            self.client, self._lock = client, threading.RLock()
        elif url is not None:
            with client_errors("connect"):  # no request is made until the first call
                self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False)
            self._lock = threading.RLock()
        else:
            self.client, self._lock, self._key = open_local(path)  # type: ignore[arg-type]
        options = self.client.init_options
        self.local = options.get("location") == ":memory:" or options.get("path") is not None
        # A directory or :memory: opened here belongs to this process alone: no other writer can exist.
        exclusive = client is None and url is None
        self.journal = Journal(self.client, self.names, exclusive=exclusive,
                               abandon_after=0.0 if exclusive else abandon_after)
        self._dimension: int | None = None
        self._binding: tuple[str, int] | None = None  # this handle's embedder, once bound
        self.sessions: QdrantSessions = QdrantSessions(self.client, self.names, local=self.local, lock=self._lock,
                                                       reading=self._reading)
        with self._lock:
            self.journal.settle()  # a crashed writer's intent: finish or undo it before anyone reads

    # -- binding and collections ----------------------------------------------------------------------------

    def binding(self) -> tuple[str, int] | None:
        with self._reading():
            return read_binding(self.client, self.names)

    def bind_embedder(self, name: str, dimension: int) -> None:
        with self._lock:
            bound = self.binding()
            if bound is None:
                self._create(name, dimension)
                bound = self.binding()  # another process may have created it first: its binding wins
            held = bound or ("nothing", 0)
            if held != (name, dimension):
                raise EmbedderMismatch(
                    f"Qdrant collection {self.names.memories!r} holds vectors of embedder {held[0]!r} (dimension "
                    f"{held[1]}); this engram is configured with {name!r} (dimension {dimension}). Use the same "
                    "embedder, or another collection (setting qdrant_collection).")
            self._dimension = dimension
            self._binding = (name, dimension)

    def _create(self, name: str, dimension: int) -> None:
        specs = collection_specs(name, dimension, self._cluster)
        kinds = ("events", "journal", "memories")  # memories last: its existence means "bound"
        create(self.client, self.names, {kind: specs[kind] for kind in kinds}, local=self.local)

    def _bound_dimension(self) -> int:
        """The bound dimension, asked of Qdrant on every write: another handle may have reset the store meanwhile
        (then this handle's embedder binds it again) or bound it to another embedder (then nothing is written)."""
        bound = self.binding()
        if bound is None:
            if self._binding is None:
                raise StoreError("no embedder is bound to this Qdrant store yet: call bind_embedder() first")
            self._create(*self._binding)
            bound = self.binding()
        if bound is None or (self._binding is not None and bound != self._binding):
            raise EmbedderMismatch(f"Qdrant collection {self.names.memories!r} is now bound to {bound}, not to "
                                   f"{self._binding}: another handle reset the store and wrote with another embedder")
        self._dimension = bound[1]
        return bound[1]

    # -- writing ---------------------------------------------------------------------------------------------

    def apply(self, changes: ChangeSet) -> list[MemoryRecord]:
        if not changes:
            return []
        with self._lock:
            # before the journal writes them (pending), which a later check would see
            taken = self._taken([record for record, _ in changes.inserts]) if changes.keep_versions else frozenset()
            for attempt in range(_ATTEMPTS):
                self.journal.settle()
                dimension = self._bound_dimension() if changes.inserts else 0
                checked = self._check(changes, dimension, taken)
                written = plan(changes, *checked)
                try:
                    self.journal.run(written, partial(self._unchanged, changes, dimension, taken, checked))
                except Clash:
                    time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # let the other writer finish
                    continue
                inserted, twins = iter(written.inserted), checked[0].twins
                return [twins[i] if i in twins else next(inserted) for i in range(len(changes.inserts))]
        raise StoreError(f"gave up after {_ATTEMPTS} attempts: other writers kept changing the same memories")

    def _unchanged(self, changes: ChangeSet, dimension: int, taken: frozenset[int], checked: Decided) -> bool:
        try:
            return self._check(changes, dimension, taken) == checked
        except (NotFound, Conflict, TwoCurrent):
            return False

    def _check(self, changes: ChangeSet, dimension: int, taken: frozenset[int]) -> Decided:
        """Read what the change set depends on and decide it (engram.stores.changes); with the transaction that last
        wrote each version read, and the `saved` mark for the journal. Writes nothing."""
        at = now()
        reopened = {int(p.id): _payload(p) for p in self._retrieve([v for v in changes.reopens if _is_id(v)], _RECORD)
                    if _payload(p)["status"] != PENDING}
        records = {version: to_record(payload, version) for version, payload in reopened.items()}
        current = self._current(wanted_ids(changes, records))
        twins = {(scope, h): r for scope, hashes in wanted_twins(changes, at).items()
                 for h, r in self._twins(scope, hashes, at).items()}
        head = self._head(changes.saved)
        current_records = {memory_id: to_record(payload, version) for memory_id, (version, payload) in current.items()}
        checked = check(changes, State(current_records, records, twins, at, dimension, taken,
                                       changes.saved is None or head is not None))
        written_by = {version: payload["txn"] for version, payload in [*current.values(), *reopened.items()]}
        saved = None
        if changes.saved is not None and head is not None:
            saved = {"session_id": changes.saved[0], "scope": head.payload["scope"], "legacy": head.legacy,
                     "seq": changes.saved[2]}
        return checked, written_by, saved

    def _head(self, saved: tuple[str, Scope, int] | None) -> Head | None:
        if saved is None:
            return None
        with client_errors("session read"):
            if not self.client.collection_exists(self.names.sessions):
                return None
            return self.sessions.head(saved[0], saved[1])

    def _taken(self, kept: list[MemoryRecord]) -> frozenset[int]:
        """A copy that keeps versions: each must be a valid point id; those a point holds already."""
        wanted = [record.version for record in kept]
        if not all(_is_id(version) for version in wanted):
            raise StoreError(f"cannot keep versions {[v for v in wanted if not _is_id(v)][:3]}: not Qdrant point ids")
        return frozenset(int(p.id) for p in self._retrieve(wanted, ["status"]))  # type: ignore[arg-type]

    # -- reading ---------------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[None]:
        if self.journal.orphans:  # a write of ours was interrupted mid-way: repair it before reading
            with self._lock:
                self.journal.settle()
        # Local mode is not thread-safe; a server client is, and reads need not queue behind each other.
        with self._lock if self.local else nullcontext():
            yield

    def _points(self, flt: models.Filter | None, *, vectors: Any = False, **kwargs: Any) -> list[models.Record]:
        """Every point of the memories collection matching `flt`; none while the collection does not exist."""
        if flt is None:
            return []
        return self._read(self.names.memories, [], lambda: list(scroll_all(
            self.client, self.names.memories, flt, vectors=vectors, payload=_RECORD, **kwargs)))

    def _read(self, collection: str, empty: Any, call: Callable[[], Any]) -> Any:
        """`call()`, or `empty` while `collection` does not exist (not bound yet, or reset)."""
        with self._reading():
            try:
                return call()
            except EngramError:
                raise
            except CLIENT_ERRORS as exc:
                with client_errors("read"):
                    if self.client.collection_exists(collection):
                        raise StoreError(f"Qdrant read from {collection} failed: {exc}") from exc
                return empty

    def _retrieve(self, versions: list[int], fields: list[str], vectors: Any = False) -> list[models.Record]:
        if not versions:
            return []
        return self._read(self.names.memories, [], lambda: self.client.retrieve(
            self.names.memories, versions, with_payload=fields, with_vectors=vectors))

    def _current(self, memory_ids: list[str]) -> dict[str, tuple[int, dict[str, Any]]]:
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        for start in range(0, len(memory_ids), 256):
            chunk = models.MatchAny(any=memory_ids[start:start + 256])
            flt = models.Filter(must=[models.FieldCondition(key="id", match=chunk), match("status", CURRENT)])
            found.update((_payload(p)["id"], (int(p.id), _payload(p))) for p in self._points(flt))
        return found

    def get(self, memory_id: str) -> MemoryRecord | None:
        points = self._points(models.Filter(must=[match("id", memory_id), _VISIBLE]))
        if not points:
            return None
        best = max(points, key=lambda p: (p.payload["status"] == CURRENT, p.payload["written"]))  # type: ignore[index]
        return to_record(best.payload, int(best.id))  # type: ignore[arg-type]

    def find_hashes(self, scope: Scope, hashes: list[str]) -> dict[str, MemoryRecord]:
        return self._twins(scope, hashes, now())

    def _twins(self, scope: Scope, hashes: list[str], at: float) -> dict[str, MemoryRecord]:
        """Current points of exactly `scope` holding these hashes, unexpired at `at`."""
        if not hashes:
            return {}
        flt = models.Filter(must=[match("scope", scope_key(scope)), match("status", CURRENT),
                                  models.FieldCondition(key="hash", match=models.MatchAny(any=list(hashes))),
                                  unexpired(at)])
        return {p.payload["hash"]: to_record(p.payload, int(p.id)) for p in self._points(flt)}  # type: ignore[index, arg-type]

    def select(self, criteria: Criteria, limit: int | None = None) -> list[MemoryRecord]:
        flt = read_filter(criteria)
        if limit is None:
            points = self._points(flt)
        else:  # the newest `limit` by updated_at, plus every tie with the last, so the tie-break is exact
            newest = models.OrderBy(key="updated_at", direction=models.Direction.DESC)
            points = self._page(flt, limit, newest)
            if len(points) == limit:
                edge = points[-1].payload["updated_at"]  # type: ignore[index]
                ties = models.FieldCondition(key="updated_at", range=models.Range(gte=edge, lte=edge))
                points += self._points(models.Filter(must=[flt, ties]))  # type: ignore[list-item]
        unique = {int(p.id): p.payload for p in points}
        ordered = sorted(unique.items(), key=lambda kv: (kv[1]["updated_at"], kv[1]["written"]), reverse=True)  # type: ignore[index]
        records = [to_record(payload, version) for version, payload in ordered]  # type: ignore[arg-type]
        return records if limit is None else records[:limit]

    def _page(self, flt: models.Filter | None, limit: int, order: models.OrderBy) -> list[models.Record]:
        if flt is None or limit <= 0:
            return []
        return self._read(self.names.memories, [], lambda: self.client.scroll(
            self.names.memories, scroll_filter=flt, limit=limit, order_by=order, with_payload=_RECORD)[0])

    def dense(self, vector: np.ndarray, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        return self._query(query, "dense", read_filter(criteria), k)

    def keyword(self, text: str, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        encoded = encode_query(text)
        if encoded is None:
            return []
        words = models.SparseVector(indices=encoded[0], values=encoded[1])
        return self._query(words, "words", read_filter(criteria), k)

    def fused(self, vector: np.ndarray, text: str, criteria: Criteria, k: int,
              pool: int = 50) -> list[tuple[MemoryRecord, float]]:
        """Dense and keyword candidates fused by Qdrant's own reciprocal rank fusion, in one request."""
        flt = read_filter(criteria)
        prefetch = [models.Prefetch(query=np.asarray(vector, dtype=np.float32).reshape(-1).tolist(), using="dense",
                                    filter=flt, limit=max(pool, k))]
        encoded = encode_query(text)
        if encoded is not None:
            prefetch.append(models.Prefetch(query=models.SparseVector(indices=encoded[0], values=encoded[1]),
                                            using="words", filter=flt, limit=max(pool, k)))
        return self._query(models.FusionQuery(fusion=models.Fusion.RRF), None, flt, k, prefetch=prefetch)

    def neighbours(self, versions: list[int], criteria: Criteria,
                   window: int) -> dict[int, list[tuple[MemoryRecord | None, MemoryRecord | None]]]:
        batches: set[str] = {b for p in self._retrieve([v for v in versions if _is_id(v)], ["batch_id", "created_at"])
                             if (b := batch_of(p.payload)) is not None}  # type: ignore[arg-type]
        if not batches or window <= 0:
            return {}
        legacy = [float(b.removeprefix("legacy-")) for b in batches if b.startswith("legacy-")]
        same_batch = models.Filter(should=[
            models.FieldCondition(key="batch_id", match=models.MatchAny(any=sorted(batches))),
            *(models.FieldCondition(key="created_at", range=models.Range(gte=t, lte=t)) for t in legacy)])
        scope = [match(name, value) for name, value in criteria.scope.items()]
        # cheap conditions first (local mode)
        written = self._points(models.Filter(must=[*scope, _VISIBLE, same_batch]))
        flt = read_filter(criteria)  # which of them the criteria admit: asked of Qdrant, like every filter
        others: list[models.ExtendedPointId] = [int(p.id) for p in written]
        among = models.HasIdCondition(has_id=list(others))
        admitted = {int(p.id) for p in self._points(models.Filter(must=[among, flt]))
                    } if flt and len(others) > 1 else set()
        records = [to_record(p.payload, int(p.id)) for p in written]  # type: ignore[arg-type]
        return batch_neighbours(records, lambda r: r.version in admitted, versions, window)

    def _query(self, query: Any, using: str | None, flt: models.Filter | None, k: int,
               **kwargs: Any) -> list[tuple[MemoryRecord, float]]:
        if flt is None or k <= 0:
            return []
        found = self._read(self.names.memories, [], lambda: self.client.query_points(
            self.names.memories, query=query, using=using, query_filter=flt, limit=k, with_payload=_RECORD,
            **kwargs).points)
        return [(to_record(p.payload, int(p.id)), float(p.score)) for p in found]

    keeps_graph = True

    def graph(self, criteria: Criteria) -> list[tuple[MemoryRecord, Graph]]:
        flt = read_filter(criteria)
        if flt is None:
            return []
        flt = models.Filter(must=[flt], must_not=[
            models.IsEmptyCondition(is_empty=models.PayloadField(key="graph.entities"))])
        points = self._read(self.names.memories, [], lambda: list(scroll_all(
            self.client, self.names.memories, flt, payload=[*_RECORD, "graph"])))
        found = [(to_record(_payload(p), int(p.id)), Graph.from_json(_payload(p).get("graph"))) for p in points]
        return sorted(found, key=lambda pair: (pair[0].updated_at, pair[0].version or 0), reverse=True)

    def graphs(self, versions: list[int]) -> dict[int, Graph]:
        points = self._retrieve(sorted({v for v in versions if _is_id(v)}), ["status", "graph"])
        return {int(p.id): Graph.from_json(_payload(p)["graph"]) for p in points
                if _payload(p)["status"] != PENDING and _payload(p).get("graph")}

    def vectors(self, versions: list[int]) -> np.ndarray:
        if not versions:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        points = self._retrieve(sorted({v for v in versions if _is_id(v)}), ["status"], vectors=["dense"])
        found = {int(p.id): p.vector["dense"] for p in points if _payload(p)["status"] != PENDING}  # type: ignore[index, call-overload]
        missing = [v for v in versions if v not in found]
        if missing:
            raise NotFound(f"no stored vector for version(s) {sorted(set(missing), key=str)}")
        return np.asarray([found[v] for v in versions], dtype=np.float32)

    def history(self, memory_id: str) -> list[Event]:
        return self._events(match("memory_id", memory_id))

    def batch(self, batch_id: str) -> list[Event]:
        return self._events(match("batch_id", batch_id))

    def all_events(self) -> list[Event]:
        """Every event, oldest first (one pass, where one history() per memory would scan each time)."""
        return self._events(None)

    def _events(self, condition: models.FieldCondition | None) -> list[Event]:
        flt = models.Filter(must=[*([condition] if condition else []), match("pending", False)])
        points = self._read(self.names.events, [], lambda: list(scroll_all(self.client, self.names.events, flt)))
        return [to_event(p.payload) for p in sorted(points, key=lambda p: p.payload["seq"])]

    def ids_with_prefix(self, prefix: str, *, kind: Literal["memory", "batch"] = "memory",
                        limit: int = 10) -> list[str]:
        # Qdrant has no prefix match on keyword fields: one pass over the ids alone (short ids are typed by people)
        collection, name, flt = {
            "memory": (self.names.memories, "id", models.Filter(must=[_VISIBLE])),
            "batch": (self.names.events, "batch_id", models.Filter(must=[match("pending", False)])),
        }[kind]
        points = self._read(collection, [], lambda: list(scroll_all(self.client, collection, flt, payload=[name])))
        return sorted({p.payload[name] for p in points if p.payload[name].startswith(prefix)})[:limit]

    def dump(self) -> Iterator[tuple[MemoryRecord, np.ndarray]]:
        """Every version in the order written (pages by `written`, so concurrent writes do not shift pages)."""
        last: int | None = None
        seen: set[int] = set()
        while True:
            order = models.OrderBy(key="written", direction=models.Direction.ASC, start_from=last)
            points = self._read(self.names.memories, ([], None), partial(
                self.client.scroll, self.names.memories, scroll_filter=models.Filter(must=[_VISIBLE]), limit=256,
                order_by=order, with_payload=_RECORD, with_vectors=["dense"]))[0]
            fresh = [p for p in points if int(p.id) not in seen]
            if not fresh:
                return
            for point in fresh:
                yield to_record(point.payload, int(point.id)), np.asarray(point.vector["dense"], dtype=np.float32)
            if last != points[-1].payload["written"]:
                seen = set()
            last = points[-1].payload["written"]
            seen |= {int(p.id) for p in points if p.payload["written"] == last}

    def count(self) -> int:
        """Current memories (all scopes)."""
        return self._read(self.names.memories, 0, lambda: self.client.count(
            self.names.memories, count_filter=models.Filter(must=[match("status", CURRENT)])).count)

    def reset(self) -> None:
        with self._lock, client_errors("reset"):
            for collection in (self.names.memories, self.names.events, self.names.journal, self.names.sessions):
                self.client.delete_collection(collection)
            self._dimension = None
            self._binding = None

    def close(self) -> None:
        with self._lock:
            if self._key is not None:
                release_local(self._key)
                self._key = None
            elif self._owned:
                self.client.close()
                self._owned = False


def _payload(point: models.Record) -> dict[str, Any]:
    assert point.payload is not None  # every read asks for the payload
    return point.payload


def _is_id(version: Any) -> bool:
    return isinstance(version, int) and not isinstance(version, bool) and 0 < version < 2**64


