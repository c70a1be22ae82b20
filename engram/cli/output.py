"""What commands print: consoles, JSON, times, event lines and the memories table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = [
    "SHORT_ID",
    "count",
    "event_line",
    "memories_table",
    "print_json",
    "progress_bar",
    "short_id",
    "short_ids",
    "stderr",
    "stdout",
    "summary",
    "when",
]

SHORT_ID = 8  # characters of an id people see; any unique start this long is accepted back (context.resolve_id)


# soft_wrap: lines are not broken at the console width, so messages stay greppable when piped; tables still fit
def stdout() -> Console:
    return Console(soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@contextmanager
def progress_bar(label: str) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr (stdout stays for results) with the time taken and, from the rate so far, the time
    left: `bar.update(task, completed=, total=)`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                  TimeRemainingColumn(), console=stderr()) as bar:
        yield bar, bar.add_task(label, total=None)


def when(stamp: str | None) -> str:
    return "" if not stamp else stamp[:16].replace("T", " ")


def count(n: int, singular: str, plural: str | None = None) -> str:
    """`1 memory`, `2 memories`."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def summary(counts: dict[str, int]) -> str:
    """`8 memories (9 versions, 13 events, 2 chat sessions)`: what a store, copy or file holds."""
    return (f"{count(counts['memories'], 'memory', 'memories')} ({count(counts['versions'], 'version')}, "
            f"{count(counts['events'], 'event')}, {count(counts['sessions'], 'chat session')})")


def short_id(ident: str) -> str:
    return ident[:SHORT_ID]


def short_ids(idents: list[str]) -> dict[str, str]:
    """Each id's first SHORT_ID characters, or more where two of these ids would otherwise look the same."""
    length = SHORT_ID
    while len({i[:length] for i in idents}) < len(set(idents)):
        length += 1
    return {i: i[:length + (i[length - 1:length] == "-")] for i in idents}  # never ending on a hyphen


def event_line(row: dict[str, Any]) -> str:
    colour = {"ADD": "green", "UPDATE": "yellow", "DELETE": "red", "NOOP": "dim"}.get(row["event"], "white")
    return f"[{colour}]{row['event']:<6}[/{colour}] [dim]{short_id(row['id'])}[/dim]  {escape(row['memory'])}"


def memories_table(rows: list[dict[str, Any]], *, scores: bool) -> Table:
    # valid_from: when the fact became true (add --timestamp, an import's dates), not when it was stored
    table = Table(show_lines=False, header_style="bold")
    if scores:
        table.add_column("score", justify="right", style="cyan", no_wrap=True)
    table.add_column("memory", min_width=20)
    table.add_column("id", style="dim", no_wrap=True)
    table.add_column("valid from", no_wrap=True)
    if not scores:
        table.add_column("categories", overflow="fold")
    shown = short_ids([row["id"] for row in rows])
    for row in rows:
        cells = [escape(row["memory"]), shown[row["id"]], when(row.get("valid_from"))]
        cells = [f"{row['score']:.3f}", *cells] if scores else [*cells, ", ".join(row.get("categories", []))]
        table.add_row(*cells)
    return table
