"""Figure 2: no write crosses an owner. Adds through every scope shape with a reconciler that proposes UPDATE or
DELETE of every candidate (also with a candidate search that shows it other owners' memories), change sets
handed straight to the store, and update/delete/revert by the ids of other owners' memories."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _fakes import EveryCandidate, Verbatim, open_memory

from engram import EngramError, InvalidInput, Memory
from engram.ownership import may_change
from engram.pipeline import Pipeline
from engram.reconcile import Candidate
from engram.stores.base import ChangeSet, Close, Store
from engram.types import Event, MemoryRecord, Op, Scope, content_hash

__all__ = ["Writes", "allowed", "run_writes"]

USERS = ["ann", "Ann", "ann ", "a%", None]
AGENTS = ["a1", "A1", "a_", None]
RUNS = ["r1", "r1 ", None]
SHAPES = [Scope(*s) for s in itertools.product(USERS, AGENTS, RUNS) if any(s)]


def allowed(writer: Scope, record: Scope) -> bool:
    """The ownership rule as README states it, written here again so the bench does not grade engram by itself."""
    return all(getattr(record, n) == v for n, v in writer.items()) and record.user_id == writer.user_id


class Greedy(Pipeline):
    """A pipeline whose candidate search ignores scopes: the reconciler is shown other owners' memories too
    (as a buggy retriever or an index without scope filters would), so decide() and the store must refuse."""

    def _candidates(self, store: Store, scope: Scope, vectors: np.ndarray) -> tuple[list[Candidate], list[list[float]]]:
        every = [r for r, _ in store.dump() if r.is_current][-self.candidates_per_fact:]
        if not every:
            return [], [[] for _ in vectors]
        similarity = vectors @ store.vectors([r.version for r in every]).T  # type: ignore[misc]
        return [Candidate(r, float(similarity[:, i].max())) for i, r in enumerate(every)], similarity.tolist()


@dataclass
class Writes:
    store: str
    adds: int = 0
    changed: int = 0  # memories an add changed (all of them must be allowed)
    violations: list[str] = field(default_factory=list)
    direct: int = 0  # change sets breaking the rule handed straight to the store
    direct_accepted: list[str] = field(default_factory=list)
    by_id: Counter = field(default_factory=Counter)  # attempted / changed another owner's memory / moved
    rule_disagreements: int = 0
    rejected: int = 0  # proposals decide() refused


def _current(store: Store) -> dict[str, MemoryRecord]:
    return {r.id: r for r, _ in store.dump() if r.is_current}


def _add_through(m: Memory, writer: Scope, n: int, out: Writes) -> None:
    before = _current(m.store)
    result = m.add(f"new fact {n} about tea", user_id=writer.user_id, agent_id=writer.agent_id, run_id=writer.run_id)
    out.adds += 1
    out.rejected += len(result.get("rejected", []))
    after = _current(m.store)
    for mid, old in before.items():
        new = after.get(mid)
        if new is not None and new.version == old.version:
            continue
        out.changed += 1
        out.rule_disagreements += allowed(writer, old.scope) != may_change(writer, old)
        if not allowed(writer, old.scope) or (new is not None and new.scope != old.scope):
            out.violations.append(f"add through {writer} changed {old.scope}'s memory {mid}")
    for mid in set(after) - set(before):
        if after[mid].scope != writer:
            out.violations.append(f"add through {writer} created {mid} in {after[mid].scope}")


def _direct(store: Store, rng: random.Random, vector: np.ndarray, out: Writes) -> None:
    """A change set that closes, moves or creates another owner's memory must raise InvalidInput, write nothing."""
    current = list(_current(store).values())
    writer = rng.choice(SHAPES)
    foreign = [r for r in current if not allowed(writer, r.scope)]
    if not foreign:
        return
    victim = rng.choice(foreign)
    now, batch = time.time(), uuid.uuid4().hex
    text = f"forged {uuid.uuid4().hex[:8]}"
    other = rng.choice([s for s in SHAPES if s != writer])  # a new memory in a scope that is not the writer's
    fresh = MemoryRecord(id=str(uuid.uuid4()), text=text, hash=content_hash(text), user_id=other.user_id,
                         agent_id=other.agent_id, run_id=other.run_id, valid_from=now, batch_id=batch, position=0)
    other = rng.choice([s for s in SHAPES if s != victim.scope])  # a new version under another owner
    moved = MemoryRecord(id=victim.id, text=text, hash=content_hash(text), user_id=other.user_id,
                         agent_id=other.agent_id, run_id=other.run_id, valid_from=now, batch_id=batch, position=0)
    forged = [
        ChangeSet(closes=[Close(victim.id, now, version=victim.version)], owner=writer,
                  events=[Event(victim.id, Op.DELETE, batch, now, old_text=victim.text)]),
        ChangeSet(inserts=[(fresh, vector)], owner=writer, events=[Event(fresh.id, Op.ADD, batch, now, new_text=text)]),
        ChangeSet(inserts=[(moved, vector)], closes=[Close(victim.id, now, version=victim.version)],
                  owner=rng.choice([None, victim.scope]),
                  events=[Event(victim.id, Op.UPDATE, batch, now, new_text=text)]),
    ]
    changes = rng.choice(forged)
    out.direct += 1
    try:
        store.apply(changes)
    except InvalidInput:
        return
    out.direct_accepted.append(f"the store accepted {changes}")


def _by_id(m: Memory, rng: random.Random, batches: dict[str, str], out: Writes) -> None:
    """update / delete / revert naming a memory (or batch) of an owner the caller's scope may not change. The API
    has no scope argument on these calls: any holder of an id reaches its memory. Counted, not judged."""
    writer = rng.choice(SHAPES)
    foreign = [r for r in _current(m.store).values() if not allowed(writer, r.scope)]
    victim = rng.choice(foreign)
    op = rng.choice(["update", "delete", "revert"])
    out.by_id[op + " attempted"] += 1
    try:
        if op == "update":
            m.update(victim.id, f"overwritten by {writer} {uuid.uuid4().hex[:6]}")
        elif op == "delete":
            m.delete(victim.id)
        else:
            m.revert(victim.batch_id or "")
    except EngramError:
        return
    out.by_id[op + " changed another owner's memory"] += 1
    after = m.store.get(victim.id)
    if after is not None and after.scope != victim.scope:
        out.by_id["owner fields moved"] += 1


def _populate(m: Memory, batches: dict[str, str]) -> None:
    for n, shape in enumerate(SHAPES):
        out = m.add([{"role": "user", "content": f"stored fact {n} about tea"},
                     {"role": "user", "content": f"stored fact {n} about green tea"}], user_id=shape.user_id,
                    agent_id=shape.agent_id, run_id=shape.run_id, infer=False)
        batches.update((r["id"], out["batch_id"]) for r in out["results"])


def run_writes(kind: str, home: Path, seed: int, adds: int) -> Writes:
    rng = random.Random(seed)
    out = Writes(kind)
    batches: dict[str, str] = {}
    with open_memory(kind, home, pipeline=Pipeline(Verbatim(), EveryCandidate(rng), candidates_per_fact=20)) as m:
        greedy = Memory(m.settings, store=m.store, embedder=m.embedder,
                        pipeline=Greedy(Verbatim(), EveryCandidate(rng), candidates_per_fact=20))
        _populate(m, batches)
        vector = m.embedder.embed(["forged"])[0]
        for n in range(adds):
            _add_through(rng.choice([m, greedy]), rng.choice(SHAPES), n, out)
            _direct(m.store, rng, vector, out)
            if n % 4 == 0:
                _by_id(m, rng, batches, out)
            if n % 20 == 19:
                _populate(m, batches)  # by-id deletes and reverts thin the population out
    return out
