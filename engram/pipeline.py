"""add(infer=True): extract facts, find similar memories, reconcile, and turn decisions into one ChangeSet.

I/O (LLM, embedder, store reads) happens in `Pipeline.propose`; `plan_changes` is a pure function of the
decisions; the caller applies the ChangeSet in one store transaction (or, for a dry run, does not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from engram.config import Settings
from engram.embed.base import Embedder
from engram.extract import DEFAULT_CATEGORIES, PIECE_CHARS, Fact, pieces
from engram.inputs import Message, text_problem
from engram.llm import Usage
from engram.ownership import writable
from engram.reconcile import Candidate, Decision, Proposal, Rejection, decide
from engram.stores.base import ChangeSet, Close, Criteria, Store
from engram.types import Event, MemoryRecord, Op, Scope, content_hash, new_id

__all__ = ["Pipeline", "Proposed", "plan_changes"]

log = logging.getLogger("engram.pipeline")


class Extractor(Protocol):
    def extract(self, messages: list[Message], when: float, categories: tuple[str, ...],
                usage: Usage) -> list[Fact]: ...


class Reconciler(Protocol):
    def reconcile(self, facts: list[Fact], candidates: list[Candidate], similarity: list[list[float]],
                  usage: Usage) -> list[Proposal]: ...


@dataclass
class Proposed:
    """Everything an inferred add would do, before it is written."""

    decisions: list[Decision] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # by text
    rejected: list[Rejection] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    known: list[MemoryRecord] = field(default_factory=list)  # messages stored already, word for word: NOOP


class Pipeline:
    def __init__(self, extractor: Extractor, reconciler: Reconciler, *,
                 categories: tuple[str, ...] = DEFAULT_CATEGORIES, candidates_per_fact: int = 5, max_facts: int = 50,
                 max_chars: int = 4000, piece_chars: int = PIECE_CHARS) -> None:
        self.extractor = extractor
        self.piece_chars = piece_chars
        self.reconciler = reconciler
        self.categories = categories
        self.candidates_per_fact = candidates_per_fact
        self.max_facts = max_facts
        self.max_chars = max_chars

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        """The LLM pipeline when an llm_model is configured, else the offline rules."""
        categories = tuple(c.strip().lower() for c in settings.categories.split(",") if c.strip()) \
            if settings.categories else DEFAULT_CATEGORIES
        limits = {"categories": categories, "candidates_per_fact": settings.reconcile_candidates,
                  "max_facts": settings.max_facts, "max_chars": settings.max_memory_chars}
        if not settings.llm_model:
            from engram.offline import OfflineExtractor, OfflineReconciler

            log.info("no LLM configured: inferring with the offline rules-based pipeline")
            return cls(OfflineExtractor(), OfflineReconciler(), **limits)  # type: ignore[arg-type]
        from engram.extract import LLMExtractor
        from engram.llm import LLM
        from engram.reconcile import LLMReconciler, ReActReconciler

        llm = LLM(settings)
        reconciler = ReActReconciler(llm) if settings.reconcile_mode == "react" else LLMReconciler(llm)
        return cls(LLMExtractor(llm), reconciler, **limits)  # type: ignore[arg-type]

    def propose(self, store: Store, embedder: Embedder, scope: Scope, messages: list[Message], when: float) -> Proposed:
        out = Proposed()
        said = [m for m in messages if m.role == "user"]
        known = store.find_hashes(scope, [content_hash(m.content) for m in said]) if said else {}
        if all(content_hash(m.content) in known for m in said):  # nothing new was said: no LLM call at all
            out.known = list({record.id: record for record in known.values()}.values())
            return out
        extracted = [fact for piece in pieces(messages, self.piece_chars)  # one call per piece of a long input
                     for fact in self.extractor.extract(piece, when, self.categories, out.usage)]
        facts = self._checked(_unique(extracted), out)
        if not facts:
            return out
        twins = store.find_hashes(scope, [content_hash(f.text) for f in facts])
        new = [f for f in facts if content_hash(f.text) not in twins]
        out.decisions = [Decision(Op.NOOP, f, twin.text, twin, "already known")
                         for f in facts if (twin := twins.get(content_hash(f.text))) is not None]
        if not new:  # every fact is stored already: no reconcile call
            return out
        vectors = embedder.embed([f.text for f in new])
        out.vectors.update(zip((f.text for f in new), vectors, strict=True))
        candidates, similarity = self._candidates(store, scope, vectors)
        if candidates:
            proposals = self.reconciler.reconcile(new, candidates, similarity, out.usage)
        else:  # nothing similar is stored: no call needed to know every fact is new
            proposals = [Proposal(Op.ADD, i, reason="nothing similar is stored yet") for i in range(len(new))]
        decisions, rejected = decide(new, candidates, proposals, scope, self.max_chars)
        order = {id(f): i for i, f in enumerate(facts)}  # results follow the extracted facts' order
        out.decisions = sorted(out.decisions + decisions, key=lambda d: order[id(d.fact)])
        out.rejected += rejected
        fresh = [d.text for d in decisions if d.op is Op.UPDATE and d.text not in out.vectors]
        out.vectors.update(zip(fresh, embedder.embed(fresh), strict=True))
        if out.rejected:  # all of them are in the result; the log says how many and why the first was
            log.warning("rejected %d proposed operation(s), the first: %s", len(out.rejected),
                        out.rejected[0].to_dict())
        return out

    def _checked(self, facts: list[Fact], out: Proposed) -> list[Fact]:
        """The extracted facts that pass the checks user input passes, at most `max_facts`; the rest is
        reported in `out.rejected`, never stored."""
        kept: list[Fact] = []
        for i, fact in enumerate(facts):
            why = text_problem(fact.text, self.max_chars)
            if why is None and len(kept) == self.max_facts:
                why = f"an add keeps at most {self.max_facts} facts (setting max_facts)"
            if why is None:
                kept.append(fact)
            else:
                proposal = Proposal(Op.ADD, i, text=fact.text, reason="extracted fact")
                out.rejected.append(Rejection(proposal, f"the fact {why}"))
        return kept

    def _candidates(self, store: Store, scope: Scope, vectors: np.ndarray) -> tuple[list[Candidate], list[list[float]]]:
        """The current memories this add may change (engram.ownership) most similar to any new fact (top-k per
        fact, merged), with all cosines."""
        best: dict[int, Candidate] = {}
        mine = Criteria(scope, writable(scope))
        for vector in vectors:
            for record, score in store.dense(vector, mine, self.candidates_per_fact):
                if record.version not in best or best[record.version].similarity < score:
                    best[record.version] = Candidate(record, score)  # type: ignore[index]
        candidates = sorted(best.values(), key=lambda c: -c.similarity)
        if not candidates:
            return [], [[] for _ in vectors]
        matrix = vectors @ store.vectors([c.record.version for c in candidates]).T  # type: ignore[misc]
        return candidates, matrix.tolist()


def _unique(facts: list[Fact]) -> list[Fact]:
    """One fact per text, in first-seen order; a fact said again (in another piece) adds its sources."""
    seen: dict[str, int] = {}
    out: list[Fact] = []
    for fact in facts:
        digest = content_hash(fact.text)
        if digest not in seen:
            seen[digest] = len(out)
            out.append(fact)
        else:
            first = out[seen[digest]]
            out[seen[digest]] = replace(first, source=tuple(dict.fromkeys((*first.source, *fact.source))))
    return out


def plan_changes(proposed: Proposed, scope: Scope, *, when: float, stamp: float, batch: str,
                 metadata: dict[str, Any], categories: tuple[str, ...],
                 known: dict[str, MemoryRecord]) -> tuple[ChangeSet, list[dict[str, Any]]]:
    """Pure: decisions -> the ChangeSet to apply and Mem0-shaped results. `known` maps content hashes to
    current memories of the scope, so an ADD of something already stored becomes a NOOP. A new version keeps
    its memory's owner fields; a new memory gets the add's scope."""
    changes, results = ChangeSet(owner=scope), []
    results += [{"id": r.id, "memory": r.text, "event": "NOOP", "reason": "already known"} for r in proposed.known]
    for d in proposed.decisions:
        digest = content_hash(d.text)
        twin = known.get(digest)
        if d.op is Op.NOOP or (twin is not None and (d.target is None or twin.id != d.target.id)):
            same = d.target if d.op is Op.NOOP else twin
            results.append({"id": same.id, "memory": same.text, "event": "NOOP", "reason": d.reason or "already known"})  # type: ignore[union-attr]
            continue
        extra = {k: v for k, v in (("happened_at", d.fact.happened_at), ("about", d.fact.about)) if v and v != "user"}
        cats = tuple(dict.fromkeys((d.fact.category, *categories)))
        base = d.target if d.op is Op.UPDATE else None
        owner = base.scope if base else scope
        source = tuple(dict.fromkeys((*base.source, *d.fact.source))) if base else d.fact.source
        record = MemoryRecord(
            id=base.id if base else new_id(), text=d.text, hash=digest, user_id=owner.user_id,
            agent_id=owner.agent_id, run_id=owner.run_id, role="user", categories=cats, metadata={**metadata, **extra},
            source=source, created_at=base.created_at if base else stamp, updated_at=stamp,
            valid_from=max(when, base.valid_from) if base else when, batch_id=batch, position=len(changes.inserts),
        )
        changes.inserts.append((record, proposed.vectors[d.text]))
        known[digest] = record
        if d.target is not None:
            changes.closes.append(Close(d.target.id, record.valid_from, None if base else record.id, d.target.version))
            changes.events.append(Event(d.target.id, d.op, batch, stamp, old_text=d.target.text,
                                        new_text=d.text if base else None, reason=d.reason, source=d.fact.source,
                                        actor="engram", old_version=d.target.version))
            if d.op is Op.DELETE:  # Mem0 reports the superseded memory as deleted; engram also names its successor
                results.append({"id": d.target.id, "memory": d.target.text, "event": "DELETE", "reason": d.reason,
                                "superseded_by": record.id})
        if base is None:
            changes.events.append(Event(record.id, Op.ADD, batch, stamp, new_text=d.text, reason=d.reason,
                                        source=d.fact.source, actor="engram"))
        results.append({"id": record.id, "memory": d.text, "event": Op.UPDATE.value if base else Op.ADD.value,
                        **({"previous_memory": base.text} if base else {}), "reason": d.reason})
    return changes, results
