"""The graph channel on LoCoMo: evidence recall@10 per category with search(graph=True) at several weights.

    .venv/bin/python bench/locomo_graph.py ../shared/data/locomo_dev.json [--tune conv-26,conv-30,conv-41]

Each conversation is imported once (raw turns, with the graph the rules give them), then every question is
searched with each variant. Prints a Markdown table: R@10 of each category and R@5/10/25/50 of all questions,
on all conversations, on the tuning ones and on the held-out ones, and search latency (query embedding not
included). The weight is chosen on the tuning conversations only.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _locomo import ingested, tuning_args

from engram.eval.locomo import CATEGORIES, KS, Question
from engram.eval.metrics import percentile, recall_at_k
from engram.retrieval import SearchConfig, search
from engram.stores.base import Criteria
from engram.types import Scope

VARIANTS: list[tuple[str, SearchConfig, bool]] = [
    ("graph off (default)", SearchConfig(), False),
    *[(f"graph on, weight {w}", SearchConfig(graph_weight=w), True) for w in (0.05, 0.1, 0.2, 0.3)],  # 0 hops
    ("graph on, weight 0.05, 1 hop", SearchConfig(graph_weight=0.05, graph_hops=1), True),
]

Row = tuple[Question, dict[int, float], float]  # question, recall at each k, latency in ms


def mean(rows: list[Row], k: int = 10, category: int | None = None) -> str:
    wanted = [recall[k] for question, recall, _ in rows if category in (None, question.category)]
    return f"{100 * statistics.mean(wanted):.1f}" if wanted else "–"


def cells(rows: list[Row]) -> list[str]:
    return [mean(rows, 10, c) for c in CATEGORIES] + [mean(rows, k) for k in KS]


def main() -> None:
    path, tune = tuning_args(__doc__, "the weight is")
    rows: dict[str, list[Row]] = {name: [] for name, _, _ in VARIANTS}
    for conv, memory, embedder in ingested(path):
        criteria = Criteria(Scope(user_id=conv.sample_id))
        vectors = embedder.embed([q.text for q in conv.questions])
        for name, config, graph in VARIANTS:
            for question, vector in zip(conv.questions, vectors, strict=True):
                start = time.perf_counter()
                hits = search(memory.store, vector, question.text, criteria, max(KS), config=config, graph=graph)
                took = (time.perf_counter() - start) * 1000
                retrieved = [tuple(hit.record.source) for hit in hits]
                rows[name].append((question, {k: recall_at_k(question.evidence, retrieved, k) for k in KS}, took))
    names = [f"{n} {c}" for c, n in CATEGORIES.items()]
    head = [*names, *(f"all R@{k}" for k in KS)]
    print("| variant | split | " + " | ".join(head) + " | p50 ms | p95 ms |")
    print("|---" * (len(head) + 4) + "|")
    for name, found in rows.items():
        latency = [took for _, _, took in found]
        timing = f" | {percentile(latency, 50):.1f} | {percentile(latency, 95):.1f} |"
        for split, part in (("all", found), ("tune", [r for r in found if r[0].conversation in tune]),
                            ("held-out", [r for r in found if r[0].conversation not in tune])):
            print(f"| {name} | {split} | " + " | ".join(cells(part)) + (timing if split == "all" else " | | |"))


if __name__ == "__main__":
    main()
