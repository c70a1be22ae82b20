"""`engram import` and `engram export`: memories in and out of files."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import Agent, Home, Run, User, check_directory, open_memory
from engram.cli.output import count, stderr, stdout
from engram.errors import InvalidInput

if TYPE_CHECKING:
    from engram.memory import Memory

__all__ = ["register"]


class ImportFormat(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    locomo = "locomo"


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    markdown = "markdown"


def register(app: typer.Typer) -> None:
    app.command("import", cls=EngramCommand)(import_)
    app.command("export", cls=EngramCommand)(export)


def import_(ctx: typer.Context,
            path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="PATH", help="File to import.")],
            format_: Annotated[ImportFormat, typer.Option("--format", "-f", help="File format.")] = ImportFormat.auto,
            user: Annotated[str | None, typer.Option("--user", "-u", help="Import everything as this user.")] = None,
            chunk: Annotated[int, typer.Option(help="Memories per transaction.", min=1)] = 64,
            home: Home = None) -> None:
    """Import memories from JSONL (engram's export, or lines with memory/text/content) or LoCoMo JSON."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from engram import transfer

    kind = transfer.detect_format(path) if format_ is ImportFormat.auto else format_.value
    items = transfer.read_jsonl(path, user) if kind == "jsonl" else transfer.read_locomo(path, user)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with open_memory(ctx, home, embeds=True) as memory, Progress(*columns, console=stderr()) as bar:
        task = bar.add_task("import", total=len(items))
        counts = transfer.import_items(memory, items, chunk=chunk, progress=lambda n: bar.advance(task, n))
    stdout().print(f"imported {count(len(items), 'item')} ({kind}) from {escape(str(path))}: "
                   f"[green]{counts['ADD']} added[/green], {counts['NOOP']} already known", highlight=False)


def export(ctx: typer.Context,
           out: Annotated[Path, typer.Option("--out", "-o", help="File (jsonl, - for stdout) or directory.")],
           format_: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = ExportFormat.jsonl,
           user: User = None, agent: Agent = None, run: Run = None, home: Home = None) -> None:
    """Export current memories (every scope unless one is given)."""
    from engram import transfer

    if format_ is ExportFormat.markdown and (agent or run):
        raise InvalidInput("the markdown export is per user: use --user (or no scope)")
    _check_out(out, directory=format_ is ExportFormat.markdown)
    with open_memory(ctx, home) as memory:
        if format_ is ExportFormat.markdown:
            files = transfer.export_markdown(memory, out, user_id=user)
            return stderr().print(f"wrote {count(len(files), 'Markdown file')} to {escape(str(out))}", highlight=False)
        if str(out) == "-":
            written = transfer.export_jsonl(memory, sys.stdout, user_id=user, agent_id=agent, run_id=run)
        else:
            written = _export_file(memory, out, user, agent, run)
    stderr().print(f"exported {count(written, 'memory', 'memories')} to {escape(str(out))}", highlight=False)


def _check_out(out: Path, *, directory: bool) -> None:
    """--out names something this export can write: checked before anything is read."""
    if directory:
        if out.exists() and not out.is_dir():
            raise InvalidInput(f"--out {out} is a file: the markdown export writes one file per user into a directory")
        check_directory(out, "--out")
    elif str(out) != "-":
        if out.is_dir():
            raise InvalidInput(f"--out {out} is a directory: give a file name (the markdown export writes a directory)")
        if not out.parent.is_dir():
            raise InvalidInput(f"--out {out}: the directory {out.parent} does not exist")


def _export_file(memory: Memory, out: Path, user: str | None, agent: str | None, run: str | None) -> int:
    """Write to a temporary name and rename, so an interrupted export never looks like a complete one."""
    from engram import private, transfer

    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "w", encoding="utf-8", opener=private.opener) as fh:  # 0600: memories are personal
            written = transfer.export_jsonl(memory, fh, user_id=user, agent_id=agent, run_id=run)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written
