"""The CLI's boundary: engram's errors become `error: …` on stderr and an exit code, never a traceback; help
shows a value type only for options that take a value."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from engram.cli.output import stderr
from engram.errors import ConfigError, EngramError, InvalidInput, NotFound

__all__ = ["EngramCommand", "EngramGroup", "exit_code"]


def exit_code(exc: EngramError) -> int:
    """2 for the user's mistakes (bad input, unknown id, bad settings), 1 for anything else."""
    return 2 if isinstance(exc, (InvalidInput, NotFound, ConfigError)) else 1


class EngramGroup(TyperGroup):
    """The root group: turns engram's own errors into `error: ...` on stderr and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EngramError as exc:
            stderr().print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(exit_code(exc)) from None


class EngramCommand(TyperCommand):
    """A command (typer's own)."""
