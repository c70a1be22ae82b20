"""`engram import` and `engram export`: a store's contents in and out of files."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import (
    Agent,
    Home,
    Run,
    User,
    check_directory,
    check_file_target,
    open_memory,
)
from engram.cli.output import count, progress_bar, stderr, stdout, summary
from engram.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from engram.memory import Memory
    from engram.types import Scope

__all__ = ["register"]


class ImportFormat(StrEnum):
    auto = "auto"
    full = "full"
    jsonl = "jsonl"
    locomo = "locomo"


class ExportFormat(StrEnum):
    full = "full"
    jsonl = "jsonl"
    markdown = "markdown"


def register(app: typer.Typer) -> None:
    app.command("import", cls=EngramCommand)(import_)
    app.command("export", cls=EngramCommand)(export)


def import_(ctx: typer.Context,
            path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="PATH", help="File to import.")],
            format_: Annotated[ImportFormat, typer.Option("--format", "-f", help="File format (auto: by content).")
                               ] = ImportFormat.auto,
            user: Annotated[str | None, typer.Option("--user", "-u", help="Import everything as this user "
                                                     "(not with a full export, which keeps every id).")] = None,
            chunk: Annotated[int, typer.Option(help="Memories per transaction.", min=1)] = 64,
            workers: Annotated[int | None, typer.Option(
                help="Processes finding the graph rules and keyword terms of the texts ahead of the writes "
                     "(default: none below 5,000 items, else one fewer than the cores, at most 2).", min=0)] = None,
            home: Home = None) -> None:
    """Import engram's full export (ids, versions, history and chat sessions kept), lines with
    memory/text/content, or LoCoMo JSON. Safe to run again: only what is missing is added."""
    from engram import transfer
    from engram.ahead import auto_workers

    kind = transfer.detect_format(path) if format_ is ImportFormat.auto else format_.value
    if kind == "full":
        _import_full(ctx, path, user, chunk, home)
        return
    items = transfer.read_jsonl(path, user) if kind == "jsonl" else transfer.read_locomo(path, user)
    with open_memory(ctx, home, embeds=True) as memory, progress_bar("importing") as (bar, task):
        bar.update(task, total=len(items))
        counts = transfer.import_items(memory, items, chunk=chunk, progress=lambda n: bar.advance(task, n),
                                       workers=auto_workers(len(items)) if workers is None else workers)
    stdout().print(f"imported {count(len(items), 'item')} ({kind}) from {escape(str(path))}: "
                   f"[green]{counts['ADD']} added[/green], {counts['NOOP']} already known", highlight=False)


def _import_full(ctx: typer.Context, path: Path, user: str | None, chunk: int, home: Path | None) -> None:
    """A full export, copied in with engram.migrate keeping ids, versions and history places."""
    from engram.archive import read_archive
    from engram.migrate import migrate

    if user is not None:
        raise InvalidInput("a full export keeps every memory's id and owner: import it without --user")
    source = read_archive(path)  # checked whole before anything is written
    with open_memory(ctx, home) as memory:
        if source.embedder is not None and source.embedder[0] != memory.embedder.name:
            raise ConfigError(f"{path} holds vectors of embedder {source.embedder[0]!r}; this engram is configured "
                              f"with {memory.embedder.name!r}. Import with that embedder configured, then change "
                              "embedders with `engram reembed`.")
        binding = source.embedder or (memory.embedder.name, memory.embedder.dimension)
        with progress_bar("importing") as (bar, task):
            counts = migrate(source, memory.store, lambda done, total: bar.update(task, completed=done, total=total),
                             embedder=binding, chunk=chunk, keep_ids=True)
    stdout().print(
        f"imported {summary(counts)} from {escape(str(path))}, verified; copied now: "
        f"[green]{count(counts['copied_versions'], 'version')}, {count(counts['copied_events'], 'event')}, "
        f"{count(counts['copied_turns'], 'chat turn')}[/green]",
        highlight=False)


def export(ctx: typer.Context,
           out: Annotated[Path, typer.Option("--out", "-o", help="File (- for stdout), or a directory for markdown.")],
           format_: Annotated[ExportFormat, typer.Option("--format", "-f", help="full: everything, to back up or "
                              "move (import takes it back); jsonl: current memories; markdown: one file per user.")
                              ] = ExportFormat.full,
           user: User = None, agent: Agent = None, run: Run = None, home: Home = None) -> None:
    """Export the store (every scope unless one is given): in full by default, or the current memories."""
    from engram import transfer
    from engram.types import Scope

    if format_ is ExportFormat.markdown and (agent or run):
        raise InvalidInput("the markdown export is per user: use --user (or no scope)")
    _check_out(out, directory=format_ is ExportFormat.markdown)
    scope = Scope(user, agent, run)
    with open_memory(ctx, home) as memory:
        if format_ is ExportFormat.markdown:
            files = transfer.export_markdown(memory, out, user_id=user)
            stderr().print(f"wrote {count(len(files), 'Markdown file')} to {escape(str(out))}", highlight=False)
            return
        write = _full(memory, scope) if format_ is ExportFormat.full else _current(memory, scope)
        said = write(sys.stdout) if str(out) == "-" else _write_file(out, write)
    stderr().print(f"exported {said} to {escape(str(out))}", highlight=False)


def _full(memory: Memory, scope: Scope) -> Callable[[TextIO], str]:
    from engram.archive import export_archive

    def write(fh: TextIO) -> str:
        return summary(export_archive(memory.store, fh, scope=None if scope.is_empty() else scope))

    return write


def _current(memory: Memory, scope: Scope) -> Callable[[TextIO], str]:
    from engram.transfer import export_jsonl

    def write(fh: TextIO) -> str:
        written = export_jsonl(memory, fh, user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id)
        return count(written, 'memory', 'memories')

    return write


def _check_out(out: Path, *, directory: bool) -> None:
    """--out names something this export can write: checked before anything is read."""
    if directory:
        if out.exists() and not out.is_dir():
            raise InvalidInput(f"--out {out} is a file: the markdown export writes one file per user into a directory")
        check_directory(out, "--out")
    elif str(out) != "-":
        check_file_target(out, "--out", "(the markdown export writes a directory)")


def _write_file(out: Path, write: Callable[[TextIO], str]) -> str:
    """Write to a temporary name and rename, so an interrupted export never looks like a complete one."""
    from engram import private

    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "w", encoding="utf-8", opener=private.opener) as fh:  # 0600: memories are personal
            said = write(fh)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return said
