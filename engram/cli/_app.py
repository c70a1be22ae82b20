"""The `engram` app: the root options (--home, --version) and every command module's `register(app)`."""

from __future__ import annotations

from typing import Annotated

import typer

from engram.cli import (
    backup,
    chat,
    demo,
    evaluate,
    graph,
    keys,
    memories,
    migrate,
    reembed,
    serve,
    transfer,
)
from engram.cli.boundary import EngramGroup
from engram.cli.context import Home

__all__ = ["COMMAND_MODULES", "app", "main"]

# The order of `engram --help`: everyday commands first
COMMAND_MODULES = (memories, graph, transfer, backup, migrate, reembed, chat, serve, keys, demo, evaluate)


def _version(value: bool) -> None:
    if value:
        from engram import __version__

        typer.echo(f"engram {__version__}")
        raise typer.Exit()


def _root(ctx: typer.Context, home: Home = None,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    ctx.obj = {"home": home}


def build() -> typer.Typer:
    """A new app with every command registered."""
    root = typer.Typer(cls=EngramGroup, help="engram: long-term memory for LLM apps.", add_completion=False,
                       no_args_is_help=True, pretty_exceptions_show_locals=False)
    root.callback()(_root)
    for module in COMMAND_MODULES:
        module.register(root)
    return root


app = build()


def main() -> None:
    app()

