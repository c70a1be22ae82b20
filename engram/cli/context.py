"""What every command shares: the common options, the settings, the Memory, and arguments given as JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from engram.cli.output import SHORT_ID, stderr
from engram.errors import ConfigError, InvalidInput, NotFound

if TYPE_CHECKING:
    from engram.config import Settings
    from engram.memory import Memory

__all__ = ["Agent", "AsJson", "Categories", "Home", "Run", "User", "check_directory", "check_file_target", "json_arg",
           "load_settings", "note_first_run", "note_new_store", "open_memory", "resolve_id", "scope_text"]

Home = Annotated[Path | None, typer.Option("--home", help="Data directory (default: $ENGRAM_HOME or ~/.engram).")]
User = Annotated[str | None, typer.Option("--user", "-u", help="User id.")]
Agent = Annotated[str | None, typer.Option("--agent", "-a", help="Agent id.")]
Run = Annotated[str | None, typer.Option("--run", "-r", help="Run (session) id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Categories = Annotated[list[str] | None, typer.Option("--category", "-c", help="Category (repeatable).")]


def load_settings(ctx: typer.Context, home: Path | None) -> Settings:
    """The settings for this command (`--home` after the command wins over `--home` before it), with their
    paths checked: a file where a directory belongs is the user's mistake, reported before anything opens."""
    from engram.config import Settings

    chosen = Settings.load(home=home or (ctx.obj or {}).get("home"))
    check_directory(chosen.home, "the data directory")
    if chosen.store == "sqlite":
        if chosen.database.is_dir():
            raise ConfigError(f"the database {chosen.database} is a directory; db_path (ENGRAM_DB_PATH) names a file")
        check_directory(chosen.database.parent, "the database's directory")
    return chosen


def check_file_target(path: Path, what: str, hint: str = "") -> None:
    """InvalidInput unless `path` can be a file this command writes: not a directory, in one that exists."""
    if path.is_dir():
        raise InvalidInput(f"{what} {path} is a directory: give a file name {hint}".rstrip())
    if not path.parent.is_dir():
        raise InvalidInput(f"{what} {path}: the directory {path.parent} does not exist")


def check_directory(path: Path, what: str) -> None:
    """ConfigError when `path`, or the nearest part of it that exists, is not a directory."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "" if probe == path else f" ({probe} is a file)"
        raise ConfigError(f"{what} {path} is not a directory{where}")


def open_memory(ctx: typer.Context, home: Path | None, *, embeds: bool = False, db_path: Path | None = None) -> Memory:
    """The Memory for this command."""
    from engram.memory import Memory

    chosen = load_settings(ctx, home)
    if db_path is not None:
        chosen = replace(chosen, db_path=db_path)
    else:
        note_new_store(chosen)
    if embeds:
        note_first_run(chosen)
    return Memory(chosen)


def note_new_store(chosen: Settings) -> None:
    """Say so when this command is about to make a new store: a mistyped --home must not pass unnoticed."""
    if not chosen.home.exists():
        stderr().print(f"note: {escape(str(chosen.home))} does not exist: making a new, empty data directory there",
                       highlight=False)


def note_first_run(chosen: Settings) -> None:
    from engram.embed.local import MODEL_NAME

    if chosen.embedder == "local" and not (chosen.home / "models" / MODEL_NAME / "model.onnx").exists():
        stderr().print(f"[dim]preparing the embedding model in {escape(str(chosen.home / 'models'))} "
                       "(first run only)…[/dim]", highlight=False)


def resolve_id(memory: Memory, given: str, kind: Literal["memory", "batch"] = "memory") -> str:
    """The whole id that `given` names: itself, or the one id of that kind it is the start of (at least
    SHORT_ID characters, as tables and messages show ids). NotFound when none is, InvalidInput when several."""
    from engram.inputs import check_id

    check_id(given, f"{kind} id")
    found = memory.store.ids_with_prefix(given, kind=kind, limit=6)
    if found and found[0] == given:  # an id sorts before every longer id it is the start of
        return given
    if not found:
        raise NotFound(f"no {kind} with id {given!r}")
    if len(given) < SHORT_ID:
        raise InvalidInput(f"{given!r} is too short: give the whole {kind} id or at least {SHORT_ID} characters of it")
    if len(found) > 1:
        many = "more than 5" if len(found) > 5 else str(len(found))
        raise InvalidInput(f"{given!r} is the start of {many} {kind} ids ({', '.join(found[:5])}): give more of it")
    return found[0]


def json_arg(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option} is not valid JSON: {exc.msg}") from None


def scope_text(user: str | None, agent: str | None, run: str | None) -> str:
    given = [f"{name}={value}" for name, value in (("user", user), ("agent", agent), ("run", run)) if value]
    return ", ".join(given) or "no scope"
