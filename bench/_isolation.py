"""Figure 1: no read crosses a scope. A population of owners whose ids differ only by case, Unicode form,
wildcards, quotes and FTS syntax; then random reads (and delete_all + revert) through hostile scopes, queries,
filters and ids. A leak is any result, or any closed memory, of an owner the caller's scope does not name."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _fakes import open_memory
from _hostile import AGENTS, RUNS, WORDS, escape, id_variants, query, user_ids

from engram import EngramError, Memory, NotFound, StoreError
from engram.types import SCOPE_FIELDS, Scope

__all__ = ["Trials", "World", "populate", "run_reads"]


@dataclass
class World:
    """What the bench wrote, kept independently of the store: each memory's owner and every text it had."""

    owner: dict[str, Scope] = field(default_factory=dict)
    texts: dict[str, set[str]] = field(default_factory=dict)
    alive: set[str] = field(default_factory=set)  # picked from in `owner`'s order: seeded choices stay reproducible
    batches: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    mid_time: float = 0.0  # between the first texts and their updates: an as_of that sees closed versions

    def current(self) -> list[str]:
        return [mid for mid in self.owner if mid in self.alive]

    def add(self, m: Memory, rng: random.Random, scope: Scope, n: int) -> None:
        label = "|".join(v for _, v in scope.items())
        texts = [f"{label} {rng.choice(WORDS)} {rng.choice(WORDS)} note {len(self.owner) + i}" for i in range(n)]
        out = m.add([{"role": "user", "content": t} for t in texts], user_id=scope.user_id, agent_id=scope.agent_id,
                    run_id=scope.run_id, infer=False,
                    metadata={"owner": label, "note": rng.choice(self.users)},
                    categories=rng.sample(["health", "work", "secret"], rng.randrange(3)))
        self.batches.append(out["batch_id"])
        for r in out["results"]:
            self.owner[r["id"]] = scope
            self.texts.setdefault(r["id"], set()).add(r["memory"])
            self.alive.add(r["id"])
            self.hashes[r["id"]] = m.get(r["id"])["hash"]


def _scopes(rng: random.Random, users: list[str]) -> list[Scope]:
    scopes = [Scope(u) for u in users]
    for u in users:
        for agent, run, p in ((rng.choice(AGENTS), None, 0.3), (None, rng.choice(RUNS), 0.2),
                              (rng.choice(AGENTS), rng.choice(RUNS), 0.1)):
            if rng.random() < p:
                scopes.append(Scope(u, agent, run))
    scopes += [Scope(None, a) for a in AGENTS] + [Scope(None, None, r) for r in RUNS]
    scopes += [Scope(None, rng.choice(AGENTS), rng.choice(RUNS)) for _ in range(4)]
    return list(dict.fromkeys(scopes))


def populate(m: Memory, rng: random.Random) -> World:
    """Every owner's memories, then some updated (closed versions to read with as_of) and some deleted."""
    world = World(users=user_ids(rng))
    for scope in _scopes(rng, world.users):
        world.add(m, rng, scope, rng.randint(1, 3))
    world.mid_time = time.time()
    time.sleep(0.01)
    for mid in rng.sample(world.current(), len(world.alive) // 5):
        label = "|".join(v for _, v in world.owner[mid].items())
        text = f"{label} {rng.choice(WORDS)} changed {mid[:8]}"
        m.update(mid, text)
        world.texts[mid].add(m.get(mid)["memory"])  # as stored (engram trims the text)
    for mid in rng.sample(world.current(), len(world.alive) // 20):
        m.delete(mid)
        world.alive.discard(mid)
    return world


_WEIGHTS = {"search": 40, "get_all": 20, "get": 10, "history": 10, "delete_all": 12, "revert": 8}


def _expected(kwargs: dict[str, Any], filters: dict[str, Any] | None) -> tuple[Scope | None, bool]:
    """The scope a read may see, worked out here (not by engram), and whether the call must fail instead."""
    fields, must_fail = dict(kwargs), False
    for name in SCOPE_FIELDS:
        given = (filters or {}).get(name)
        if given is None:
            continue
        if fields.get(name) is None and isinstance(given, str) and given.strip() and len(given) <= 256:
            fields[name] = given
        elif fields.get(name) != given:
            must_fail = True
    values = [fields.get(n) for n in SCOPE_FIELDS]
    return (Scope(*values) if any(values) else None), must_fail or not any(values)


def _admits(scope: Scope | None, owner: Scope) -> bool:
    return scope is not None and all(getattr(owner, n) == v for n, v in scope.items())


@dataclass
class Trials:
    store: str
    count: int = 0
    owners: int = 0  # distinct owner scopes in the population
    with_results: int = 0
    leaks: list[str] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    untyped: list[str] = field(default_factory=list)
    drift: int = 0
    checks: int = 0
    ops: Counter = field(default_factory=Counter)


class _Run:
    def __init__(self, m: Memory, world: World, rng: random.Random, trials: Trials, tokens: list[str]) -> None:
        self.m, self.world, self.rng, self.t, self.tokens = m, world, rng, trials, tokens

    def leak(self, what: str) -> None:
        self.t.leaks.append(f"trial {self.t.count}: {what}")

    def prober(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        rng, world = self.rng, self.world
        if rng.random() < 0.6:
            owner = world.owner[rng.choice(world.current())]
            named = [(n, v) for n, v in owner.items() if rng.random() < 0.7] or owner.items()[:1]
        else:
            named = [("user_id", rng.choice(world.users))]
            named += [(n, rng.choice(pool)) for n, pool in (("agent_id", AGENTS), ("run_id", RUNS))
                      if rng.random() < 0.2]
        kwargs: dict[str, Any] = {}
        filters: dict[str, Any] = {}
        for name, value in named:
            (filters if rng.random() < 0.15 else kwargs)[name] = value
        if rng.random() < 0.6:
            foreign = rng.sample(list(world.owner), 3)
            filters.update(escape(rng, kwargs.get("user_id"), rng.choice(world.users), foreign,
                                  world.hashes[foreign[0]]))
        return kwargs, filters or None

    def check_records(self, results: list[dict[str, Any]], scope: Scope | None, what: str) -> None:
        self.t.with_results += bool(results)
        for r in results:
            owner = self.world.owner.get(r["id"])
            if owner is None or not _admits(scope, owner):
                self.leak(f"{what} through {scope} returned {r['id']} of {owner}")
            elif r["memory"] not in self.world.texts[r["id"]] or any(r.get(n) != getattr(owner, n)
                                                                      for n in SCOPE_FIELDS):
                self.leak(f"{what} through {scope} returned {r['id']} with foreign fields or text {r['memory']!r}")

    def read(self, op: str) -> None:
        kwargs, filters = self.prober()
        scope, must_fail = _expected(kwargs, filters)
        extra: dict[str, Any] = {"limit": self.rng.choice([1, 5, 10, 50, 100]), "filters": filters}
        if self.rng.random() < 0.2:
            extra["as_of"] = self.rng.choice([self.world.mid_time, time.time()])
        if self.rng.random() < 0.1:
            extra["categories"] = ["secret"]
        if op == "search":
            text = query(self.rng, self.world.users, self.tokens)
            out = self.m.search(text, **kwargs, **extra)["results"]
        else:
            out = self.m.get_all(**kwargs, **extra)["results"]
        self.check_records(out, None if must_fail else scope, op)

    def by_id(self, op: str) -> None:
        mid = self.rng.choice(list(self.world.owner))
        target = mid if self.rng.random() < 0.4 else self.rng.choice(id_variants(mid))
        try:
            out: Any = self.m.get(target, strict=True) if op == "get" else self.m.history(target, strict=True)
        except NotFound:
            if target == mid and (op == "history" or mid in self.world.alive):
                self.leak(f"{op}({mid}) of an existing memory raised NotFound")
            return
        if target != mid:
            self.leak(f"{op}({target!r}) found something for an id that does not exist: {out}")
        elif op == "get":
            self.check_records([out], self.world.owner[mid], "get")
        elif any(e["memory_id"] != mid or (e["new_memory"] or e["old_memory"]) not in self.world.texts[mid]
                 for e in out):
            self.leak(f"history({mid}) holds another memory's event: {out}")
        self.t.with_results += target == mid

    def delete_all(self) -> None:
        kwargs, filters = self.prober()
        scope, must_fail = _expected(kwargs, filters)
        out = self.m.delete_all(**kwargs, filters=filters)
        closed = {e.memory_id for e in self.m.store.batch(out["batch_id"])}
        for mid in closed:
            if must_fail or not _admits(scope, self.world.owner.get(mid, Scope("?"))):
                self.leak(f"delete_all through {scope} / {filters} closed {mid} of {self.world.owner.get(mid)}")
        self.t.with_results += bool(closed)
        if out["count"]:
            self.t.ops["revert"] += 1
            self.t.count += 1
            back = self.m.revert(out["batch_id"])["results"]
            if {r["id"] for r in back} - closed:
                self.leak(f"revert of {out['batch_id']} touched {sorted({r['id'] for r in back} - closed)}")

    def revert_variant(self) -> None:
        real = self.rng.choice(self.world.batches)
        target = self.rng.choice(id_variants(real))
        out = self.m.revert(target)  # NotFound, unless it leaked (then the next state check counts the drift)
        self.leak(f"revert({target!r}) of a batch that does not exist reverted {out['results']}")

    def state(self) -> None:
        """The store's current memories are exactly the ones the bench left current, with their owners."""
        self.t.checks += 1
        current = {r.id: r.scope for r, _ in self.m.store.dump() if r.is_current}
        drift = set(current) ^ self.world.alive
        drift |= {mid for mid, scope in current.items() if self.world.owner.get(mid) != scope}
        self.t.drift += len(drift)
        self.world.alive = set(current)

    def one(self) -> None:
        op = self.rng.choices(list(_WEIGHTS), list(_WEIGHTS.values()))[0]
        self.t.ops[op] += 1
        self.t.count += 1
        calls = {"search": lambda: self.read("search"), "get_all": lambda: self.read("get_all"),
                 "get": lambda: self.by_id("get"), "history": lambda: self.by_id("history"),
                 "delete_all": self.delete_all, "revert": self.revert_variant}
        try:
            calls[op]()
        except StoreError as exc:
            self.t.errors[type(exc).__name__] += 1
            self.t.untyped.append(f"{op}: {type(exc).__name__}: {exc}"[:300])
        except EngramError as exc:
            self.t.errors[type(exc).__name__] += 1
        except Exception as exc:  # noqa: BLE001 - an untyped exception is a finding, reported with the trial
            self.t.untyped.append(f"{op}: {type(exc).__name__}: {exc}"[:300])


def run_reads(kind: str, home: Path, seed: int, count: int) -> Trials:
    """`count` random read trials on a fresh store of `kind`, seeded with `seed`."""
    rng = random.Random(seed)
    trials = Trials(kind)
    with open_memory(kind, home) as m:
        world = populate(m, rng)
        trials.owners = len(set(world.owner.values()))
        tokens = []
        if kind == "sqlite":
            from engram.stores.sqlite_rows import (
                scope_token,  # a query naming another user's FTS scope token
            )

            tokens = [scope_token("user_id", u) + c for u in rng.sample(world.users, 8) for c in ("", "c")]
        run = _Run(m, world, rng, trials, tokens)
        run.state()
        checked = 0
        while trials.count < count:
            run.one()
            if trials.count - checked >= 1000:
                run.state()
                checked = trials.count
        run.state()
    return trials
