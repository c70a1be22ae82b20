"""Reconciliation: new facts + similar current memories -> one validated operation per fact.

The LLM sees candidates under small integer ids, never store ids, and `decide` (pure) checks every id it
returns: an operation naming anything outside the candidate set is rejected, never guessed, and its fact is
added instead so that nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engram.extract import Fact
from engram.inputs import text_problem
from engram.llm import LLM, Usage
from engram.ownership import may_change
from engram.types import MemoryRecord, Op, Scope

__all__ = ["Candidate", "Proposal", "Decision", "Rejection", "decide", "LLMReconciler", "ReActReconciler"]


@dataclass(frozen=True)
class Candidate:
    record: MemoryRecord
    similarity: float  # best cosine to any of the new facts


@dataclass(frozen=True)
class Proposal:
    """What a reconciler proposes for fact `fact`; `target` is a candidate's integer id."""

    op: Op
    fact: int
    target: int | None = None
    text: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    op: Op
    fact: Fact
    text: str  # the memory text to store (ADD, UPDATE, DELETE's replacement) or the known one (NOOP)
    target: MemoryRecord | None
    reason: str


@dataclass(frozen=True)
class Rejection:
    proposal: Proposal
    why: str

    def to_dict(self) -> dict[str, Any]:
        p = self.proposal
        out = {"op": p.op.value, "fact": p.fact, "memory_id": p.target, "reason": p.reason,
               "rejected_because": self.why}
        if p.text:
            out["text"] = p.text if len(p.text) <= 200 else p.text[:200] + "…"
        return out


def decide(facts: list[Fact], candidates: list[Candidate], proposals: list[Proposal], writer: Scope | None = None,
           max_chars: int | None = None) -> tuple[list[Decision], list[Rejection]]:
    """Validate proposals: one per fact, targets inside the candidate set and owned by `writer` (see
    engram.ownership), no memory changed twice, an UPDATE's text within the limits of user input."""
    chosen: dict[int, Proposal] = {}
    rejected: list[Rejection] = []
    changed: set[int] = set()
    for p in proposals:
        why = _problem(p, len(facts), len(candidates), chosen, changed)
        if (not why and p.target is not None and writer is not None
                and not may_change(writer, candidates[p.target].record)):
            why = f"memory id {p.target} belongs to another owner than this add's scope"
        if not why and p.op is Op.UPDATE and max_chars is not None:
            why = text_problem(p.text or "", max_chars)
        if why:
            rejected.append(Rejection(p, why))
            continue
        chosen[p.fact] = p
        if p.op in (Op.UPDATE, Op.DELETE):
            changed.add(p.target)  # type: ignore[arg-type]
    decisions = []
    for i, fact in enumerate(facts):
        p = chosen.get(i) or Proposal(Op.ADD, i,
                                      reason="no valid operation was proposed for this fact; added so it is not lost")
        target = candidates[p.target].record if p.target is not None and p.op is not Op.ADD else None
        text = (p.text or "").strip() if p.op is Op.UPDATE else ""
        if p.op is Op.NOOP:
            text = target.text  # type: ignore[union-attr]
        decisions.append(Decision(p.op, fact, text or fact.text, target, p.reason))
    return decisions, rejected


def _problem(p: Proposal, n_facts: int, n_candidates: int, chosen: dict[int, Proposal],
             changed: set[int]) -> str | None:
    if not 0 <= p.fact < n_facts:
        return f"fact {p.fact} does not exist (there are {n_facts})"
    if p.fact in chosen:
        return f"fact {p.fact} already has an operation"
    if p.op in (Op.UPDATE, Op.DELETE, Op.NOOP):
        if p.target is None or not 0 <= p.target < n_candidates:
            return f"memory id {p.target} is not among the {n_candidates} memories shown"
        if p.op is not Op.NOOP and p.target in changed:
            return f"memory id {p.target} is already changed by another fact"
    elif p.op is not Op.ADD:
        return f"unknown operation {p.op}"
    return None


def _shown(candidates: list[Candidate]) -> list[dict[str, Any]]:
    return [{"id": i, "text": c.record.text,
             "since": datetime.fromtimestamp(c.record.valid_from, tz=UTC).strftime("%Y-%m-%d")}
            for i, c in enumerate(candidates)]


class LLMReconciler:
    """One LLM call (two if the first answer could not be parsed) that proposes every operation at once."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        from engram.signatures import Reconcile

        self.program = llm.dspy.Predict(Reconcile)

    def reconcile(self, facts: list[Fact], candidates: list[Candidate], similarity: list[list[float]],
                  usage: Usage) -> list[Proposal]:
        prediction = self.llm.run(self.program, usage, new_facts=[f.text for f in facts],
                                  existing_memories=_shown(candidates))
        return [Proposal(Op(o.op), o.fact, o.memory_id, o.text, o.reason or "") for o in prediction.operations]


class ReActReconciler:
    """The design's original form: an agent that calls add / update / delete / noop tools, one per fact.

    The tools only record proposals; `decide` validates them exactly as for the one-call reconciler."""

    def __init__(self, llm: LLM, max_iters: int = 12) -> None:
        self.llm = llm
        self.max_iters = max_iters

    def reconcile(self, facts: list[Fact], candidates: list[Candidate], similarity: list[list[float]],
                  usage: Usage) -> list[Proposal]:
        dspy = self.llm.dspy
        proposals: list[Proposal] = []

        def propose(op: Op, fact: int, memory_id: int | None = None, text: str | None = None, reason: str = "") -> str:
            proposal = Proposal(op, int(fact), None if memory_id is None else int(memory_id), text, reason)
            _, rejected = decide(facts, candidates, [*proposals, proposal])
            if any(r.proposal is proposal for r in rejected):
                return "rejected: " + next(r.why for r in rejected if r.proposal is proposal)
            proposals.append(proposal)
            return f"recorded {op.value} for fact {fact}"

        def add_memory(fact: int, reason: str) -> str:
            """Store new fact `fact` as a new memory."""
            return propose(Op.ADD, fact, reason=reason)

        def update_memory(fact: int, memory_id: int, text: str, reason: str) -> str:
            """Replace memory `memory_id` with the merged `text`, because new fact `fact` refines it."""
            return propose(Op.UPDATE, fact, memory_id, text, reason)

        def delete_memory(fact: int, memory_id: int, reason: str) -> str:
            """Supersede memory `memory_id`, which new fact `fact` contradicts; the fact replaces it."""
            return propose(Op.DELETE, fact, memory_id, reason=reason)

        def noop(fact: int, memory_id: int, reason: str) -> str:
            """Record that memory `memory_id` already says what new fact `fact` says."""
            return propose(Op.NOOP, fact, memory_id, reason=reason)

        from engram.signatures import ReconcileWithTools

        agent = dspy.ReAct(ReconcileWithTools, tools=[add_memory, update_memory, delete_memory, noop],
                           max_iters=self.max_iters)
        self.llm.run(agent, usage, new_facts=[f.text for f in facts], existing_memories=_shown(candidates))
        return proposals
