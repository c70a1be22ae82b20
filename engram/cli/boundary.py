"""The CLI's boundary: engram's errors and the operating system's become `error: …` on stderr and an exit code,
never a traceback; help shows a value type only for options that take a value."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from engram.cli.output import stderr
from engram.errors import ConfigError, EngramError, InvalidInput, NotFound

__all__ = ["EngramCommand", "EngramGroup", "exit_code", "os_error_message"]

# A path that is missing, of the wrong kind or not ours: the user's mistake, like a bad argument
_PATH_MISTAKES = (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError)


def exit_code(exc: Exception) -> int:
    """2 for the user's mistakes (bad input, unknown id, bad settings, a wrong path), 1 for anything else."""
    return 2 if isinstance(exc, (InvalidInput, NotFound, ConfigError, *_PATH_MISTAKES)) else 1


def os_error_message(exc: OSError) -> str:
    """`path: what is wrong` ("/x/y: No such file or directory"), as the shell's own tools say it."""
    where = " -> ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    what = exc.strerror or str(exc)
    return f"{where}: {what}" if where else what


class _PlainFlags:
    """Help without `<bool>` after a flag such as --dry-run: it takes no value."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # what typer's help shows in place of the value's type
        super().format_help(ctx, formatter)  # type: ignore[misc]


class EngramGroup(_PlainFlags, TyperGroup):
    """The root group: turns engram's errors and OSError into `error: ...` on stderr and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (EngramError, OSError) as exc:
            message = os_error_message(exc) if isinstance(exc, OSError) else str(exc)
            stderr().print(f"[red]error:[/red] {escape(message)}", highlight=False)
            raise typer.Exit(exit_code(exc)) from None


class EngramCommand(_PlainFlags, TyperCommand):
    """A command: typer's, with help that shows no type after a flag."""
