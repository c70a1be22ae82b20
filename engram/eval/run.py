"""`engram eval locomo`: run the harness over a LoCoMo file and build its report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engram.errors import ConfigError
from engram.eval.locomo import Progress, load_locomo, run_conversation
from engram.eval.report import file_digest, summarise
from engram.retrieval import SearchConfig, search_config

if TYPE_CHECKING:
    from engram.config import Settings
    from engram.embed.base import Embedder

__all__ = ["evaluate_locomo"]


def evaluate_locomo(path: str | Path, settings: Settings, *, infer: bool = False, answer: bool | None = None,
                    conversations: Sequence[str] | None = None, config: SearchConfig | None = None,
                    answer_k: int = 10, judge_model: str | None = None, chunk: int | None = None,
                    embedder: Embedder | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate engram on a LoCoMo file; returns the report (see `engram.eval.report.summarise`).

    `infer` stores what the extraction pipeline makes of each session (or of each `chunk` turns of it)
    instead of the raw turns. `answer`
    (default: when `infer` and an LLM is configured) answers and judges every non-adversarial question with
    the LLM from the top `answer_k` memories. `config` replaces the search settings, for comparisons."""
    from engram import __version__
    from engram.components import embedder_from

    answer = bool(infer and settings.llm_model) if answer is None else answer
    if answer and not settings.llm_model:
        raise ConfigError("answering needs an LLM: set llm_model (ENGRAM_LLM_MODEL), "
                          "and llm_api_base for a local server")
    convs = load_locomo(path, conversations)
    embedder = embedder or embedder_from(settings)
    answerer = None
    if answer:
        from engram.eval.answer import Answerer

        judge = replace(settings, llm_model=judge_model) if judge_model else None
        answerer = Answerer(settings, top_k=answer_k, judge_settings=judge)
    start = time.perf_counter()
    results = [run_conversation(conv, settings, embedder, infer=infer, progress=progress, answer=answerer,
                                config=config, chunk=chunk) for conv in convs]
    search = config or search_config(settings)  # exactly what Memory.search used
    meta = {
        "benchmark": "LoCoMo", "mode": "memory" if infer else "retrieval", "data_name": Path(path).name,
        "data_sha256": file_digest(path), "engram": __version__, "embedder": embedder.name,
        "store": settings.store,
        "search": {**asdict(search), "graph": settings.search_graph, "source": "given" if config else "settings"},
        "llm": {"model": settings.llm_model, "judge": judge_model or settings.llm_model, "answer_k": answer_k,
                "infer_chunk": chunk} if answer or infer else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return summarise(results, meta)
