"""The LoCoMo harness: each conversation goes into a fresh store, then every question is searched and scored.

Retrieval mode stores each turn as it was said (`add(..., infer=False)`, the turn's `dia_id` as its source,
the session's date as its time) and scores the retrieved turns against the question's evidence. Memory mode
(`infer=True`) stores what the LLM extracts from each session; a memory's sources are the turns it came from.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engram.errors import ConfigError, InvalidInput
from engram.eval.metrics import ndcg_at_k, parse_evidence, recall_at_k
from engram.retrieval import SearchConfig, search
from engram.stores.base import Criteria
from engram.transfer import Item, import_items, read_locomo
from engram.types import Scope

if TYPE_CHECKING:
    from engram.config import Settings
    from engram.embed.base import Embedder
    from engram.memory import Memory

__all__ = [
    "CATEGORIES", "KS", "Question", "Conversation", "QuestionResult", "ConversationResult", "Progress",
    "Answer", "load_locomo", "fresh_memory", "ingest", "retrieve", "run_conversation",
]

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
KS = (5, 10, 25, 50)


@dataclass(frozen=True)
class Question:
    conversation: str
    index: int
    text: str
    answer: str | None  # None for adversarial questions, which have only a tempting wrong answer
    evidence: tuple[str, ...]
    category: int


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: list[Item]
    questions: list[Question]


@dataclass
class QuestionResult:
    question: Question
    retrieved: list[tuple[str, ...]]  # sources of each retrieved memory, best first
    memories: list[str]  # their texts (what an answer is given)
    latency_ms: float
    recall: dict[int, float] = field(default_factory=dict)
    ndcg10: float = 0.0
    prediction: str | None = None
    judgement: bool | None = None
    f1: float | None = None
    bleu1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        q = self.question
        out: dict[str, Any] = {
            "conversation": q.conversation, "index": q.index, "category": q.category, "question": q.text,
            "answer": q.answer, "evidence": list(q.evidence), "retrieved": [list(s) for s in self.retrieved[:10]],
            "recall": {str(k): round(v, 4) for k, v in self.recall.items()}, "ndcg@10": round(self.ndcg10, 4),
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.prediction is not None:
            out.update(prediction=self.prediction, correct=self.judgement, f1=self.f1, bleu1=self.bleu1)
        return out


@dataclass
class ConversationResult:
    sample_id: str
    turns: int
    memories: int
    ingest_seconds: float
    questions: list[QuestionResult]
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # per stage: calls, tokens, seconds
    sources_per_memory: float = 1.0  # turns a memory is credited with (1 for raw turns)


class Progress(Protocol):
    """Where a run reports what it is doing (the CLI draws bars; tests pass nothing)."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


# -- data ------------------------------------------------------------------------------------------------------

def load_locomo(path: str | Path, only: Sequence[str] | None = None) -> list[Conversation]:
    """The conversations of a LoCoMo file (all, or those whose sample_id is in `only`), checked first."""
    turns = read_locomo(path)
    data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    data = data if isinstance(data, list) else [data]
    by_owner: dict[str, list[Item]] = {}
    for item in turns:
        by_owner.setdefault(item.scope.user_id or "", []).append(item)
    wanted = set(only or ())
    unknown = wanted - {str(conv.get("sample_id")) for conv in data}
    if unknown:
        raise InvalidInput(f"{path}: no conversation(s) {', '.join(sorted(unknown))}")
    conversations = []
    for conv in data:
        sample_id = str(conv["sample_id"])
        if wanted and sample_id not in wanted:
            continue
        questions = [_question(sample_id, i, qa) for i, qa in enumerate(conv.get("qa") or [])]
        conversations.append(Conversation(sample_id, by_owner.get(sample_id, []), questions))
    return conversations


def _question(sample_id: str, index: int, qa: Any) -> Question:
    where = f"{sample_id} qa[{index}]"
    if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
        raise InvalidInput(f"{where}: expected an object with a 'question' string")
    category = qa.get("category")
    if category not in CATEGORIES:
        raise InvalidInput(f"{where}: category must be one of {sorted(CATEGORIES)}, not {category!r}")
    evidence = qa.get("evidence") or []
    if not isinstance(evidence, list):
        raise InvalidInput(f"{where}: evidence must be a list of dia_ids")
    answer = qa.get("answer")
    return Question(sample_id, index, qa["question"], None if answer is None else str(answer),
                    parse_evidence(evidence), category)


# -- running ---------------------------------------------------------------------------------------------------

def fresh_memory(settings: Settings, directory: Path, embedder: Embedder) -> Memory:
    """A Memory over an empty store in `directory`, sharing one loaded embedder across conversations."""
    from engram.memory import Memory

    if settings.qdrant_url:
        raise ConfigError("the benchmark writes into a fresh store per conversation; unset qdrant_url to run it")
    isolated = replace(settings, db_path=directory / "eval.db", qdrant_path=str(directory / "qdrant"))
    return Memory(isolated, embedder=embedder)


def ingest(memory: Memory, conv: Conversation, *, infer: bool = False, progress: Progress | None = None,
           chunk: int | None = None) -> dict[str, float]:
    """Store a conversation's turns; returns what the LLM spent, when it was used. With `infer`, each add()
    gets one session (or `chunk` turns of it): an inferred memory's sources are the turns its fact cites."""
    progress = progress or _Silent()
    progress.start(f"{conv.sample_id} ingest", len(conv.turns))
    if not infer:
        import_items(memory, conv.turns, progress=progress.advance)
        return {}
    usage = {"calls": 0.0, "prompt_tokens": 0.0, "completion_tokens": 0.0}
    for session in _sessions(conv.turns, chunk):
        first = session[0]
        result = memory.add([item.message() for item in session], user_id=first.scope.user_id, infer=True,
                            timestamp=first.timestamp)
        spent = result.get("usage") or {}
        usage["calls"] += spent.get("llm_calls", 0)
        usage["prompt_tokens"] += spent.get("prompt_tokens", 0)
        usage["completion_tokens"] += spent.get("completion_tokens", 0)
        progress.advance(len(session))
    return usage


def _sessions(turns: list[Item], chunk: int | None = None) -> list[list[Item]]:
    """Consecutive turns sharing a timestamp (one LoCoMo session), at most `chunk` of them per group."""
    sessions: list[list[Item]] = []
    for item in turns:
        if sessions and sessions[-1][0].timestamp == item.timestamp and (not chunk or len(sessions[-1]) < chunk):
            sessions[-1].append(item)
        else:
            sessions.append([item])
    return sessions


def retrieve(memory: Memory, question: Question, limit: int, config: SearchConfig | None = None) -> QuestionResult:
    """Search one question: through `Memory.search`, or with `config` through the same retrieval function
    with other search settings (for comparisons); the graph channel as the setting search_graph says."""
    start = time.perf_counter()
    if config is None:
        found = memory.search(question.text, user_id=question.conversation, limit=limit)["results"]
    else:
        vector = memory.embedder.embed([question.text])[0]
        criteria = Criteria(Scope(user_id=question.conversation))
        found = [hit.to_dict() for hit in search(memory.store, vector, question.text, criteria, limit, config=config,
                                                 graph=memory.settings.search_graph)]
    latency = (time.perf_counter() - start) * 1000
    retrieved = [tuple(hit.get("source") or ()) for hit in found]
    result = QuestionResult(question, retrieved, [_dated(hit) for hit in found], latency)
    result.recall = {k: recall_at_k(question.evidence, retrieved, k) for k in KS}
    result.ndcg10 = ndcg_at_k(question.evidence, retrieved, 10)
    return result


def _dated(hit: dict[str, Any]) -> str:
    """A memory as an answerer sees it: when it was said, then what."""
    when = (hit.get("valid_from") or "")[:10]
    return f"[{when}] {hit['memory']}" if when else hit["memory"]


Answer = Callable[[list[QuestionResult], Progress], dict[str, dict[str, float]]]


def run_conversation(conv: Conversation, settings: Settings, embedder: Embedder, *, infer: bool = False,
                     limit: int = max(KS), progress: Progress | None = None, answer: Answer | None = None,
                     config: SearchConfig | None = None, chunk: int | None = None) -> ConversationResult:
    """Ingest one conversation into a throwaway store, search every question, and (optionally) answer them."""
    progress = progress or _Silent()
    with tempfile.TemporaryDirectory(prefix="engram-eval-") as directory, \
            fresh_memory(settings, Path(directory), embedder) as memory:
        start = time.perf_counter()
        usage = {"ingest": ingest(memory, conv, infer=infer, progress=progress, chunk=chunk)}
        ingest_seconds = time.perf_counter() - start
        usage["ingest"]["seconds"] = ingest_seconds
        stored = memory.store.select(Criteria(Scope(user_id=conv.sample_id)))
        progress.start(f"{conv.sample_id} search", len(conv.questions))
        results = []
        for question in conv.questions:
            results.append(retrieve(memory, question, limit, config))
            progress.advance()
    if answer is not None:
        answerable = sum(q.category != 5 and q.answer is not None for q in conv.questions)
        progress.start(f"{conv.sample_id} answer", answerable)
        usage.update(answer(results, progress))
    sources = sum(len(record.source) for record in stored) / len(stored) if stored else 0.0
    return ConversationResult(conv.sample_id, len(conv.turns), len(stored), ingest_seconds, results, usage, sources)
