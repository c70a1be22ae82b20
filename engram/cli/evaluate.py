"""`engram eval locomo PATH`: the LoCoMo benchmark from the terminal (the harness is engram.eval)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from engram.cli.boundary import EngramCommand, EngramGroup
from engram.cli.context import Home, load_settings, note_first_run
from engram.cli.output import stderr, stdout

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

    from engram.config import Settings
    from engram.retrieval import SearchConfig

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    evaluation = typer.Typer(cls=EngramGroup, help="Benchmarks: how well engram finds what was said.",
                             no_args_is_help=True)
    evaluation.command("locomo", cls=EngramCommand)(locomo)
    app.add_typer(evaluation, name="eval")


class _Bars:
    """The harness's progress as rich bars, one per stage of each conversation."""

    def __init__(self, bars: RichProgress) -> None:
        self.bars = bars
        self.task: Any = None

    def start(self, label: str, total: int) -> None:
        self.task = self.bars.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        self.bars.advance(self.task, n)


def locomo(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="PATH", help="LoCoMo JSON file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for report.json and recall.png.")
                   ] = Path("eval-out"),
    infer: Annotated[bool, typer.Option("--infer", help="Memory mode: store what add(infer=True) extracts.")] = False,
    answer: Annotated[bool | None, typer.Option("--answer/--no-answer", help="Answer and judge with the LLM "
                      "(default: with --infer when an LLM is configured).")] = None,
    conversation: Annotated[list[str] | None, typer.Option("--conversation", "-c",
                            help="Only this sample_id (repeatable).")] = None,
    answer_k: Annotated[int, typer.Option(help="Memories given to the answerer.", min=1)] = 10,
    infer_chunk: Annotated[int | None, typer.Option(help="With --infer: turns per add() call "
                           "(default: a whole session).", min=1)] = None,
    judge_model: Annotated[str | None, typer.Option(help="LLM for the judge (default: llm_model).")] = None,
    fusion: Annotated[str | None, typer.Option(help="Search override: score, rrf, dense or keyword.")] = None,
    keyword_weight: Annotated[float | None, typer.Option(help="Search override: keyword share, 0..1.")] = None,
    context: Annotated[str | None, typer.Option(help='Search override: neighbour weights, e.g. "0.4,0.2"; '
                                                '"0" for none.')] = None,
    time_weight: Annotated[float | None, typer.Option(help="Search override: bonus for named times; "
                                                      "0 for none.")] = None,
    pool: Annotated[int | None, typer.Option(help="Search override: candidates per list.", min=1)] = None,
    graph: Annotated[bool | None, typer.Option("--graph/--no-graph", help="Search with the graph channel "
                     "(default: the setting search_graph).")] = None,
    graph_weight: Annotated[float | None, typer.Option(help="Search override: how much a memory naming an entity "
                            "the query names gains (with --graph).", min=0)] = None,
    home: Home = None,
) -> None:
    """Benchmark engram on LoCoMo: evidence recall@k per category, latency, and (with an LLM) answer accuracy."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from engram.eval.report import table, usage_table, write_report
    from engram.eval.run import evaluate_locomo

    settings = load_settings(ctx, home)
    note_first_run(settings)
    if graph is not None:
        settings = replace(settings, search_graph=graph)
    overrides = {"fusion": fusion, "keyword_weight": keyword_weight, "time_weight": time_weight, "pool": pool,
                 "context": context, "graph_weight": graph_weight}
    config = _search_config(settings, {k: v for k, v in overrides.items() if v is not None})
    columns = (TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr()) as bars:
        report = evaluate_locomo(path, settings, infer=infer, answer=answer, conversations=conversation,
                                 config=config, answer_k=answer_k, judge_model=judge_model, chunk=infer_chunk,
                                 progress=_Bars(bars))
    paths = write_report(report, out, home=settings.home)
    stdout().print(table(report))
    spent = usage_table(report)
    if spent is not None:
        stdout().print(spent)
    stderr().print(f"[dim]{report['seconds']:.0f} s; wrote {escape(str(paths['json']))} and "
                   f"{escape(str(paths['plot']))}[/dim]", highlight=False)


def _search_config(settings: Settings, given: dict[str, Any]) -> SearchConfig | None:
    """None when nothing is overridden: then the benchmark goes through Memory.search itself."""
    if not given:
        return None
    from engram.retrieval import parse_weights, search_config

    if "context" in given:
        given["context"] = parse_weights(given["context"])
    return replace(search_config(settings), **given)
