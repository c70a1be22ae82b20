"""`engram backup` and `engram restore`: the SQLite store copied whole while in use, and put back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import Home, check_file_target, load_settings
from engram.cli.output import stdout, summary
from engram.errors import InvalidInput

if TYPE_CHECKING:
    from engram.config import Settings

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("backup", cls=EngramCommand)(backup)
    app.command("restore", cls=EngramCommand)(restore)


def backup(ctx: typer.Context, path: Annotated[Path, typer.Argument(metavar="PATH", help="The backup file to write.")],
           force: Annotated[bool, typer.Option("--force", help="Replace an existing file at PATH.")] = False,
           home: Home = None) -> None:
    """Copy the SQLite store into one file while it is in use (a consistent snapshot, 0600)."""
    from engram.stores.sqlite_maintenance import backup as copy

    settings = _sqlite(ctx, home, "backup")
    check_file_target(path, "PATH")
    if not settings.database.is_file():
        raise InvalidInput(f"there is no database at {settings.database} to back up")
    held = copy(settings.database, path, force=force)
    stdout().print(f"backed up {summary(held)} from {escape(str(settings.database))} to {escape(str(path))}",
                   highlight=False)


def restore(ctx: typer.Context,
            path: Annotated[Path, typer.Argument(metavar="PATH", help="A file engram backup wrote.")],
            force: Annotated[bool, typer.Option("--force", help="Replace a store that holds memories.")] = False,
            home: Home = None) -> None:
    """Put a backup in place of the SQLite store; one that holds anything is replaced only with --force."""
    from engram.stores.sqlite_maintenance import restore as put_back

    settings = _sqlite(ctx, home, "restore")
    held = put_back(path, settings.database, force=force)
    stdout().print(f"restored {summary(held)} from {escape(str(path))} into {escape(str(settings.database))}",
                   highlight=False)


def _sqlite(ctx: typer.Context, home: Path | None, what: str) -> Settings:
    settings = load_settings(ctx, home)
    if settings.store != "sqlite":
        raise InvalidInput(f"engram {what} copies the SQLite store; for {settings.store}, use engram export and "
                           "engram import (they keep every id and version too)")
    return settings
