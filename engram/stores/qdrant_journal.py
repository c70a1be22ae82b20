"""All-or-nothing writes on Qdrant, which has no multi-point transactions: a write-ahead intent per change set.

One `apply` is one transaction `T`, a random id:

1. an *intent* point (state `open`) in the journal collection names every point T will touch and the state
   each must be in (`expect`: the txn that last wrote it);
2. T's new versions and events are written `pending` (every read filters them out);
3. unless this process owns the storage outright (local mode), T checks that no other open or committed intent
   touches the same memories and that what it read is unchanged, else it aborts and the caller retries;
4. **commit**: one conditional write flips the intent from `open` to `committed` (a repairer that meanwhile
   declared it abandoned wins instead, and T retries);
5. roll forward: closes, then reopens, then the pending versions become current/closed, then the events become
   visible; each write is conditional on the point still being in the state T expected, so replaying it (by T,
   by a later writer, or on the next open) is harmless and never undoes a later transaction;
6. the intent is deleted.

A crash before 4 leaves the old state (pending points are invisible and get deleted); after 4 the next writer
or the next open rolls it forward, and a process whose own write was interrupted repairs it before its next
read. Closes run before anything becomes current, so no memory ever has two current versions. What another
process may see while a write (or a crashed write nobody has repaired yet) is between 5 and 6 is a memory
already closed whose new version is not visible yet.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http import models
from qdrant_client.http.exceptions import ApiException

from engram.errors import CorruptStore, EngramError, StoreError
from engram.stores.qdrant_schema import CLOSED, CURRENT, PENDING, match, session_turns

__all__ = [
    "CLIENT_ERRORS",
    "Conflict",
    "Journal",
    "Names",
    "Plan",
    "client_errors",
    "new_ids",
    "open_local",
    "release_local",
    "scroll_all",
]

try:  # the gRPC transport raises its own errors; qdrant-client depends on grpcio, but stay importable without
    from grpc import RpcError
except ImportError:  # pragma: no cover
    class RpcError(Exception):  # type: ignore[no-redef]
        pass

# Local mode raises ValueError / RuntimeError / OSError; the HTTP and gRPC transports their own exceptions.
CLIENT_ERRORS = (ApiException, QdrantException, RpcError, ValueError, RuntimeError, OSError)
_CHUNK = 256


class Conflict(Exception):
    """Another writer touched the same memories first: abort and plan again."""


@contextmanager
def client_errors(what: str) -> Iterator[None]:
    """Translate qdrant-client's errors into StoreError at the boundary; engram's own errors pass through."""
    try:
        yield
    except EngramError:
        raise
    except CLIENT_ERRORS as exc:
        raise StoreError(f"Qdrant {what} failed: {exc}") from exc


@dataclass(frozen=True)
class Names:
    memories: str
    events: str
    journal: str
    sessions: str

    @classmethod
    def of(cls, collection: str) -> Names:
        return cls(collection, f"{collection}_events", f"{collection}_journal", f"{collection}_sessions")


def scroll_all(client: QdrantClient, collection: str, flt: models.Filter | None, *, vectors: Any = False,
               payload: Any = True, page: int = 1024, **kwargs: Any) -> Iterator[models.Record]:
    offset = None
    while True:
        points, offset = client.scroll(collection, scroll_filter=flt, limit=page, offset=offset,
                                       with_payload=payload, with_vectors=vectors, **kwargs)
        yield from points
        if offset is None or len(points) < page:  # a short page is the last: spare the (scanning) extra call
            return


@dataclass
class Plan:
    """What one change set writes, decided before anything is written."""

    txn: int
    memory_ids: list[str]
    closes: list[dict[str, Any]] = field(default_factory=list)  # {id, v, expect, valid_to, superseded_by}
    reopens: list[dict[str, Any]] = field(default_factory=list)  # {v, expect}; expect None: closed by this txn
    points: list[models.PointStruct] = field(default_factory=list)  # new versions, written pending
    events: list[models.PointStruct] = field(default_factory=list)  # written pending
    inserted: list[Any] = field(default_factory=list)  # the MemoryRecords returned by apply
    # {session_id, scope, legacy, seq}: turns marked as handed to add(), after commit
    saved: dict[str, Any] | None = None

    def intent(self) -> dict[str, Any]:
        final = [(p.id, p.payload["valid_to"] is None) for p in self.points]  # type: ignore[index]
        return {
            "kind": "intent", "state": "open", "started": time.time(), "memory_ids": self.memory_ids,
            "closes": self.closes, "reopens": self.reopens, "events": [int(p.id) for p in self.events],
            "current": [v for v, current in final if current], "closed": [v for v, current in final if not current],
            "saved": self.saved,
        }


class Journal:
    def __init__(self, client: QdrantClient, names: Names, *, exclusive: bool, abandon_after: float) -> None:
        self.client = client
        self.names = names
        self.exclusive = exclusive  # this process owns the storage: no other writer can exist
        self.abandon_after = abandon_after
        self.fault: Callable[[str], None] | None = None  # tests: raise here to simulate a crash at a step
        # This process's writes that were interrupted (KeyboardInterrupt, a crash simulated in tests): settle()
        # treats them as dead whatever their age, and the store settles before its next read.
        self.orphans: set[int] = set()
        # Several writers: journal writes must be durable on a majority and journal reads see them.
        self._write: dict[str, Any] = {} if exclusive else {"ordering": models.WriteOrdering.STRONG}
        self._read: dict[str, Any] = {} if exclusive else {"consistency": models.ReadConsistencyType.MAJORITY}

    def _step(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)

    def run(self, plan: Plan, unchanged: Callable[[], bool]) -> None:
        """Write `plan` all-or-nothing; raise Conflict (having undone its pending writes) to be retried."""
        intent = plan.intent()
        try:
            self._step("planned")
            self._prepare(plan, intent, unchanged)
            self._step("commit")
            with client_errors("write (committed; the next write, read or open completes it)"):
                self._roll_forward(plan.txn, intent)
                self.client.delete(self.names.journal, points_selector=[plan.txn], wait=True, **self._write)
        except BaseException:
            self.orphans.add(plan.txn)  # interrupted or failed: settle() finishes it (if anything is left)
            raise

    def _prepare(self, plan: Plan, intent: dict[str, Any], unchanged: Callable[[], bool]) -> None:
        """Everything up to and including the commit."""
        committed = False
        try:
            with client_errors("write"):
                self._upsert(self.names.journal, [models.PointStruct(id=plan.txn, vector={}, payload=intent)])
                self._step("intent")
                self._upsert(self.names.memories, plan.points)
                self._upsert(self.names.events, plan.events)
                self._step("pending")
                if not self.exclusive and (self._others(plan) or not unchanged()):
                    raise Conflict()
                committed = self._commit(plan.txn)
            if not committed:
                raise Conflict()
        except Exception as exc:  # undo this writer's pending points, then let the error through
            if not committed:
                self._abandon(plan.txn, exc)
            raise

    def settle(self) -> None:
        """Finish what crashed or stalled writers left: roll committed intents forward, abandoned ones back."""
        with client_errors("journal read"):
            if not self.client.collection_exists(self.names.journal):
                self.orphans.clear()
                return  # nothing was ever written (or the store was reset)
            intents = list(scroll_all(self.client, self.names.journal, None, **self._read))
        now = time.time()
        for point in intents:
            state, txn = point.payload["state"], int(point.id)  # type: ignore[index]
            dead = self.exclusive or txn in self.orphans or now - point.payload["started"] > self.abandon_after  # type: ignore[index]
            if state == "open" and not dead:
                continue  # a live writer, probably in another process
            with client_errors("journal repair"):
                if state == "open":
                    state = self._decide(txn, "aborted")
                if state == "committed":
                    self._roll_forward(txn, point.payload)  # type: ignore[arg-type]
                elif state == "aborted":
                    self._clean(txn)
                self.client.delete(self.names.journal, points_selector=[txn], wait=True, **self._write)
        self.orphans.clear()  # all repaired; one that left no intent had written nothing

    # -- steps ----------------------------------------------------------------------------------------------

    def _upsert(self, collection: str, points: list[models.PointStruct]) -> None:
        for start in range(0, len(points), _CHUNK):
            self.client.upsert(collection, points=points[start:start + _CHUNK], wait=True, **self._write)

    def _others(self, plan: Plan) -> bool:
        """Another open or committed intent touches one of these memories."""
        for start in range(0, len(plan.memory_ids), _CHUNK):
            chunk = models.MatchAny(any=plan.memory_ids[start:start + _CHUNK])
            flt = models.Filter(
                must=[models.FieldCondition(key="memory_ids", match=chunk),
                      models.FieldCondition(key="state", match=models.MatchAny(any=["open", "committed"]))],
                must_not=[models.HasIdCondition(has_id=[plan.txn])],
            )
            if self.client.scroll(self.names.journal, scroll_filter=flt, limit=1, **self._read)[0]:
                return True
        return False

    def _commit(self, txn: int) -> bool:
        return self._decide(txn, "committed") == "committed"

    def _decide(self, txn: int, state: str) -> str | None:
        """Move intent `txn` from open to `state` unless someone else moved it first; return its state."""
        only_open = models.Filter(must=[models.HasIdCondition(has_id=[txn]), match("state", "open")])
        self.client.set_payload(self.names.journal, payload={"state": state}, points=only_open, wait=True,
                                **self._write)
        if self.exclusive:
            return state  # nobody else can have moved it
        found = self.client.retrieve(self.names.journal, [txn], with_payload=["state"], **self._read)
        return found[0].payload["state"] if found else None  # type: ignore[index]

    def _abandon(self, txn: int, cause: BaseException) -> None:
        try:
            with client_errors("undoing a failed write"):
                if self._decide(txn, "aborted") == "aborted":
                    self._clean(txn)
                    self.client.delete(self.names.journal, points_selector=[txn], wait=True, **self._write)
        except StoreError as undo:  # the original error is the one to raise; this one is worth knowing about
            cause.add_note(f"and its pending points could not be removed yet ({undo}); the next write will")

    def _clean(self, txn: int) -> None:
        mine = [match("txn", txn)]
        self.client.delete(self.names.memories, wait=True, **self._write, points_selector=models.FilterSelector(
            filter=models.Filter(must=[*mine, match("status", PENDING)])))
        self.client.delete(self.names.events, wait=True, **self._write, points_selector=models.FilterSelector(
            filter=models.Filter(must=[*mine, match("pending", True)])))

    def _roll_forward(self, txn: int, intent: dict[str, Any]) -> None:
        self._batch([self._guarded(txn, c["v"], c["expect"], CURRENT, {
            "status": CLOSED, "valid_to": c["valid_to"], "superseded_by": c["superseded_by"]})
            for c in intent["closes"]])
        self._step("closes")
        self._batch([self._guarded(txn, r["v"], txn if r["expect"] is None else r["expect"], CLOSED, {
            "status": CURRENT, "valid_to": None, "superseded_by": None}) for r in intent["reopens"]])
        self._step("reopens")
        for status in (CURRENT, CLOSED):
            versions = intent[status]
            for start in range(0, len(versions), _CHUNK):
                chunk = versions[start:start + _CHUNK]
                self.client.set_payload(self.names.memories, payload={"status": status}, wait=True, **self._write,
                                        points=self._selector(chunk, match("txn", txn), match("status", PENDING)))
        self._step("inserts")
        events = intent["events"]
        for start in range(0, len(events), _CHUNK):  # events never change once visible: replaying this is harmless
            self.client.set_payload(self.names.events, payload={"pending": False}, points=events[start:start + _CHUNK],
                                    wait=True, **self._write)
        self._step("events")
        saved = intent.get("saved")
        if saved:  # setting a flag: replaying it is harmless
            owned = session_turns(saved["session_id"], saved.get("scope"), saved.get("legacy", False))
            turns = models.Filter(must=[owned, models.FieldCondition(key="seq", range=models.Range(lte=saved["seq"]))])
            self.client.set_payload(self.names.sessions, payload={"saved": True}, points=turns, wait=True,
                                    **self._write)

    def _guarded(self, txn: int, version: int, expect: int, status: str,
                 payload: dict[str, Any]) -> models.SetPayloadOperation:
        only = self._selector([version], match("txn", expect), match("status", status))
        selector = {"points": only} if isinstance(only, list) else {"filter": only}
        return models.SetPayloadOperation(set_payload=models.SetPayload(payload={**payload, "txn": txn}, **selector))

    def _selector(self, ids: list[int], *conditions: models.Condition) -> list[models.ExtendedPointId] | models.Filter:
        """These points, if still in the state the conditions describe. A process that owns the storage is the
        only writer and replays only the last transaction, so the conditions hold and plain ids spare local
        mode a scan of every point per write."""
        points: list[models.ExtendedPointId] = list(ids)
        if self.exclusive:
            return points
        return models.Filter(must=[models.HasIdCondition(has_id=points), *conditions])

    def _batch(self, operations: list[models.SetPayloadOperation]) -> None:
        for start in range(0, len(operations), _CHUNK):
            self.client.batch_update_points(self.names.memories, operations[start:start + _CHUNK], wait=True,
                                            **self._write)


def new_ids(count: int) -> list[int]:
    """Random positive 63-bit point ids: writers in different processes never need to agree on a counter, and
    a collision needs ~3 billion points before it becomes as likely as one in a billion writes."""
    return [secrets.randbits(63) or 1 for _ in range(count)]


_local_lock = threading.Lock()
_local: dict[str, list[Any]] = {}  # resolved path -> [client, lock, users]: one client per directory per process


def open_local(path: str | Path) -> tuple[QdrantClient, threading.RLock, str | None]:
    """A local client; a directory opened twice in one process shares one client (Qdrant locks it per process)."""
    if str(path) == ":memory:":
        return QdrantClient(location=":memory:"), threading.RLock(), None
    key = str(Path(path).expanduser().resolve())
    held = StoreError(f"{key} is open in another process; local Qdrant serves one process only (run a Qdrant "
                      "server to share memories between processes)")
    with _local_lock:
        if key not in _local:
            if _locked_elsewhere(Path(key) / ".lock"):
                raise held
            try:
                client = QdrantClient(path=key, force_disable_check_same_thread=True)
            except RuntimeError as exc:  # lost a race for the lock after all
                raise held from exc
            except CLIENT_ERRORS as exc:
                raise CorruptStore(f"cannot open local Qdrant directory {key}: {exc}") from exc
            _local[key] = [client, threading.RLock(), 0]
        entry = _local[key]
        entry[2] += 1
        return entry[0], entry[1], key


def release_local(key: str) -> None:
    with _local_lock:
        entry = _local[key]
        entry[2] -= 1
        if entry[2] == 0:
            del _local[key]
            with client_errors("close"):
                entry[0].close()


def _locked_elsewhere(lock_file: Path) -> bool:
    """Whether another process holds the directory's lock. Asked first because qdrant-client, when it finds the
    lock taken, raises without closing the lock file it opened."""
    import portalocker  # qdrant-client's own dependency for this lock; it probes the file system on import

    if not lock_file.exists():
        return False
    with open(lock_file, "r+") as probe:
        try:
            portalocker.lock(probe, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            return True
        portalocker.unlock(probe)
        return False
