"""`engram migrate`: copy every memory, vector and event between the SQLite, the Qdrant and the files store."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import Home, load_settings
from engram.cli.output import count, progress_bar, stdout, summary
from engram.errors import InvalidInput

if TYPE_CHECKING:
    from engram.config import Settings
    from engram.stores.base import Store

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("migrate", cls=EngramCommand)(migrate_command)


class StoreKind(StrEnum):
    sqlite = "sqlite"
    qdrant = "qdrant"
    files = "files"


def migrate_command(
    ctx: typer.Context,
    to: Annotated[StoreKind, typer.Option("--to", help="The store to copy into.")],
    from_: Annotated[StoreKind | None, typer.Option("--from", help="The store to copy from (default: the "
                                                       "configured store, ENGRAM_STORE).")] = None,
    path: Annotated[Path | None, typer.Option("--path", help="Target SQLite file, local Qdrant directory or files "
                                                 "directory (default: <home>/engram.db, qdrant or memory).")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Target Qdrant server or cluster URL.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="API key of the target Qdrant server.")] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="Target Qdrant collection name.")] = None,
    chunk: Annotated[int, typer.Option(help="Memories per transaction.", min=1)] = 200,
    home: Home = None,
) -> None:
    """Copy every memory (all versions, vectors, history) from one store into another; safe to run again."""
    from engram.components import embedder_from, store_from
    from engram.migrate import migrate

    settings = load_settings(ctx, home)
    source_kind = from_.value if from_ is not None else settings.store
    if url is not None and to is not StoreKind.qdrant:
        raise InvalidInput("--url names a Qdrant server: use it with --to qdrant")
    source = store_from(replace(settings, store=source_kind))
    try:
        target = _target(settings, to, path, url, api_key, collection, source_kind)
        try:
            found = source.binding()
            if found is None:  # the source cannot tell: it must hold the configured embedder's vectors (checked)
                embedder = embedder_from(settings)
                found = (embedder.name, embedder.dimension)
            with progress_bar("migrating") as (bar, task):
                counts = migrate(source, target, lambda done, total: bar.update(task, completed=done, total=total),
                                 embedder=found, chunk=chunk)
        finally:
            target.close()
    finally:
        source.close()
    stdout().print(
        f"{source_kind} → {to.value}: {summary(counts)} verified in the target; copied now: "
        f"[green]{count(counts['copied_versions'], 'version')}, {count(counts['copied_events'], 'event')}, "
        f"{count(counts['copied_turns'], 'chat turn')}[/green], {count(counts['updated_versions'], 'version')} brought "
        "up to date",
        highlight=False)


def _target(settings: Settings, to: StoreKind, path: Path | None, url: str | None, api_key: str | None,
            collection: str | None, source_kind: str) -> Store:
    from engram.stores.qdrant import QdrantStore
    from engram.stores.sqlite import SQLiteStore

    if to is StoreKind.sqlite:
        target_path = (path or settings.database).expanduser()
        if source_kind == "sqlite" and target_path.resolve() == settings.database.resolve():
            raise InvalidInput(f"the source and the target are the same file ({escape(str(target_path))}); give --path")
        return SQLiteStore(target_path, cache_rows=settings.cache_rows)
    if to is StoreKind.files:
        from engram.components import store_from

        configured_dir = (settings.files_dir or settings.home / "memory").expanduser()
        target_dir = (path or configured_dir).expanduser()
        if source_kind == "files" and target_dir.resolve() == configured_dir.resolve():
            raise InvalidInput(f"the source and the target are the same directory ({escape(str(target_dir))}); "
                               "give --path")
        return store_from(replace(settings, store="files", files_dir=target_dir))
    name = collection or settings.qdrant_collection
    if url is not None:
        return QdrantStore(url=url, api_key=api_key, collection=name)
    configured = Path(settings.qdrant_path) if settings.qdrant_path else settings.home / "qdrant"
    target_dir = (path or configured).expanduser()
    same_source = source_kind == "qdrant" and not settings.qdrant_url and name == settings.qdrant_collection
    if same_source and target_dir.resolve() == configured.expanduser().resolve():
        raise InvalidInput("the source and the target are the same Qdrant directory and collection; give --path "
                           "or --collection")
    return QdrantStore(path=target_dir, collection=name)
