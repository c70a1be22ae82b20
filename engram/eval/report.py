"""A run's results summarised: per category and overall, as a dict (the JSON report), a rich table and a plot."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engram.eval.locomo import CATEGORIES, KS, ConversationResult, QuestionResult
from engram.eval.metrics import percentile

__all__ = ["summarise", "write_report", "table", "usage_table", "plot"]


def _in_category(category: int) -> Callable[[QuestionResult], bool]:
    return lambda r: r.question.category == category


GROUPS: tuple[tuple[str, Callable[[QuestionResult], bool]], ...] = (
    *((f"{c} {name}", _in_category(c)) for c, name in CATEGORIES.items()),
    ("all", lambda r: True),
    ("all without 5", lambda r: r.question.category != 5),
)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.mean(values), 4) if values else None


def _scores(results: list[QuestionResult]) -> dict[str, Any]:
    out: dict[str, Any] = {"questions": len(results)}
    out["recall"] = {str(k): _mean(r.recall[k] for r in results) for k in KS}
    out["ndcg@10"] = _mean(r.ndcg10 for r in results)
    answered = [r for r in results if r.prediction is not None]
    if answered:
        out["answered"] = len(answered)
        out["judge"] = _mean(float(bool(r.judgement)) for r in answered)
        out["f1"] = _mean(r.f1 or 0.0 for r in answered)
        out["bleu1"] = _mean(r.bleu1 or 0.0 for r in answered)
    return out


def summarise(conversations: list[ConversationResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: scores per category group, per conversation, latency, cost, and every question."""
    results = [r for conv in conversations for r in conv.questions]
    latencies = [r.latency_ms for r in results]
    usage: dict[str, dict[str, float]] = {}
    for conv in conversations:
        for stage, spent in conv.usage.items():
            for key, value in spent.items():
                usage.setdefault(stage, {})[key] = round(usage.get(stage, {}).get(key, 0) + value, 3)
    memories = sum(conv.memories for conv in conversations)
    return {
        **meta,
        "memories": memories,
        "sources_per_memory": round(sum(c.sources_per_memory * c.memories for c in conversations) / memories, 2)
        if memories else 0.0,
        "usage": usage,
        "groups": {name: _scores([r for r in results if keep(r)]) for name, keep in GROUPS},
        "latency_ms": {"p50": round(percentile(latencies, 50), 3), "p95": round(percentile(latencies, 95), 3),
                       "mean": round(statistics.mean(latencies), 3) if latencies else 0.0},
        "conversations": {
            conv.sample_id: {"turns": conv.turns, "memories": conv.memories,
                             "sources_per_memory": round(conv.sources_per_memory, 2),
                             "ingest_seconds": round(conv.ingest_seconds, 3), "usage": conv.usage,
                             **_scores(conv.questions)}
            for conv in conversations
        },
        "questions": [r.to_dict() for r in results],
    }


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_report(report: dict[str, Any], out: Path, *, home: Path) -> dict[str, Path]:
    """report.json and recall.png in `out` (created if needed); `home` is the data directory (matplotlib's cache)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "plot": out / "recall.png"}
    paths["json"].write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    plot(report, paths["plot"], home=home)
    return paths


def table(report: dict[str, Any]) -> Any:
    """A rich Table of the report's groups."""
    from rich.table import Table

    answers = any("judge" in group for group in report["groups"].values())
    grid = Table(title=f"LoCoMo {report.get('mode', '')}: evidence recall@k (%)", header_style="bold")
    grid.add_column("category", no_wrap=True)
    grid.add_column("n", justify="right")
    for k in KS:
        grid.add_column(f"R@{k}", justify="right")
    grid.add_column("NDCG@10", justify="right")
    if answers:
        for name in ("judge", "F1", "BLEU-1"):
            grid.add_column(name, justify="right")
    for name, group in report["groups"].items():
        row = [name, str(group["questions"])] + [_pct(group["recall"][str(k)]) for k in KS] + [_pct(group["ndcg@10"])]
        if answers:
            row += [_pct(group.get(key)) for key in ("judge", "f1", "bleu1")]
        grid.add_row(*row, style="bold" if name.startswith("all") else None,
                     end_section=name.startswith("5 "))
    latency = report["latency_ms"]
    lines = [f"search latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms (query embedding included)",
             f"{report['memories']} memories, each credited with {report['sources_per_memory']:g} turn(s) on average"]
    for stage, spent in report["usage"].items():
        if spent.get("calls"):
            lines.append(f"{stage}: {spent['calls']:.0f} LLM calls, {spent['prompt_tokens']:.0f} prompt + "
                         f"{spent['completion_tokens']:.0f} completion tokens, {spent.get('seconds', 0):.0f} s")
    grid.caption = "\n".join(lines)
    return grid


def usage_table(report: dict[str, Any]) -> Any | None:
    """What the LLM spent per conversation and stage (calls, tokens, seconds); None when no LLM was used."""
    from rich.table import Table

    stages = [stage for stage, spent in report["usage"].items() if spent.get("calls")]
    if not stages:
        return None
    grid = Table(title="LLM usage per conversation: calls / prompt+completion tokens / seconds", header_style="bold")
    grid.add_column("conversation", no_wrap=True)
    grid.add_column("turns → memories", justify="right")
    for stage in stages:
        grid.add_column(stage, justify="right")
    for sample_id, conv in report["conversations"].items():
        cells = []
        for stage in stages:
            spent = conv["usage"].get(stage) or {}
            tokens = spent.get("prompt_tokens", 0) + spent.get("completion_tokens", 0)
            cells.append(f"{spent.get('calls', 0):.0f} / {tokens:.0f} / {spent.get('seconds', 0):.1f}")
        grid.add_row(sample_id, f"{conv['turns']} → {conv['memories']}", *cells)
    return grid


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def plot(report: dict[str, Any], path: Path, *, home: Path) -> None:
    """Recall@k per category group as lines over k, written as a PNG (matplotlib, no display needed)."""
    from engram.offline_env import import_pyplot

    plt = import_pyplot(home)

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, group in report["groups"].items():
        if not group["questions"]:
            continue
        values = [100 * (group["recall"][str(k)] or 0.0) for k in KS]
        axes.plot(KS, values, marker="o", linewidth=2.5 if name.startswith("all") else 1.2,
                  linestyle="-" if name.startswith("all") else "--", label=f"{name} (n={group['questions']})")
    axes.set_xscale("log")
    axes.minorticks_off()
    axes.set_xticks(KS, [str(k) for k in KS])
    axes.set_xlabel("k (memories retrieved)")
    axes.set_ylabel("evidence recall@k (%)")
    axes.set_ylim(0, 100)
    axes.grid(True, alpha=0.3)
    axes.set_title(f"LoCoMo {report.get('mode', '')} — {report.get('data_name', '')}")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
