"""Each retrieval change's effect on LoCoMo: ingest every conversation once, search with each configuration.

    .venv/bin/python bench/locomo_ablation.py ../shared/data/locomo_dev.json [--tune conv-26,conv-30,conv-41]

Prints a Markdown table (the one in bench/README.md): evidence recall@k on all questions, without category 5,
on the tuning conversations and on the held-out ones, NDCG@10 and search latency. The last row goes through
`Memory.search` itself, exactly as `engram eval locomo` does.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _locomo import ingested, tuning_args

from engram.eval.locomo import KS, QuestionResult, retrieve
from engram.eval.metrics import percentile
from engram.retrieval import SearchConfig

PLAIN = SearchConfig(context=(), time_weight=0.0)
LADDER: list[tuple[str, SearchConfig | None]] = [
    ("MiniLM dense alone", replace(PLAIN, fusion="dense")),
    ("SQLite FTS5 BM25 alone", replace(PLAIN, fusion="keyword")),
    ("RRF k=60 (previous default)", replace(PLAIN, fusion="rrf")),
    ("score fusion (0.5 BM25/max + 0.5 cos/max)", PLAIN),
    ("+ context: neighbour at distance 1 (0.4)", SearchConfig(context=(0.4,), time_weight=0.0)),
    ("+ context: distance 2 (0.4, 0.2)", SearchConfig(time_weight=0.0)),
    ("+ named times (0.2) = default", SearchConfig()),
    ("default, but RRF instead of score fusion", SearchConfig(fusion="rrf")),
    ("default through Memory.search", None),
]


def mean(results: list[QuestionResult], k: int) -> str:
    """As the JSON report rounds it (4 decimals), so both print the same tenth."""
    return f"{100 * round(statistics.mean(r.recall[k] for r in results), 4):.1f}" if results else "–"


def main() -> None:
    path, tune = tuning_args(__doc__, "the weights were")
    rows: dict[str, list[QuestionResult]] = {name: [] for name, _ in LADDER}
    for conv, memory, _ in ingested(path):
        for name, config in LADDER:
            rows[name] += [retrieve(memory, question, max(KS), config) for question in conv.questions]
    print("| retrieval | all R@5 | R@10 | R@25 | R@50 | w/o cat. 5 R@5 | R@10 | R@25 | R@50 | held-out R@5 | R@10 "
          "| R@25 | R@50 | tune R@5 | R@10 | R@25 | R@50 | NDCG@10 | p50 ms | p95 ms |")
    print("|---" * 20 + "|")
    for name, results in rows.items():
        groups = (results, [r for r in results if r.question.category != 5],
                  [r for r in results if r.question.conversation not in tune],
                  [r for r in results if r.question.conversation in tune])
        cells = [mean(group, k) for group in groups for k in KS]
        latency = [r.latency_ms for r in results]
        ndcg = 100 * round(statistics.mean(r.ndcg10 for r in results), 4)
        print(f"| {name} | " + " | ".join(cells) + f" | {ndcg:.1f} | {percentile(latency, 50):.1f} "
              f"| {percentile(latency, 95):.1f} |")


if __name__ == "__main__":
    main()
