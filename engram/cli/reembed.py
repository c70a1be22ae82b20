"""`engram reembed`: every version embedded again by another embedder, into a new binding."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import Home, load_settings, note_first_run
from engram.cli.output import count, progress_bar, stdout, summary

if TYPE_CHECKING:
    from engram.config import Settings

__all__ = ["register"]


class EmbedderKind(StrEnum):
    local = "local"
    openai = "openai"


def register(app: typer.Typer) -> None:
    app.command("reembed", cls=EngramCommand)(reembed)


def reembed(
    ctx: typer.Context,
    embedder: Annotated[EmbedderKind, typer.Option("--embedder", help="The embedder to change to.")],
    model: Annotated[str | None, typer.Option("--model", help="openai: the model (default "
                                              "text-embedding-3-small).")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="openai: the endpoint (default the "
                                                 "configured embedder_base_url).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="openai: the key (default the configured one, "
                                                "or $OPENAI_API_KEY).")] = None,
    dimensions: Annotated[int | None, typer.Option("--dimensions", help="openai: the vector size to ask for.",
                                                   min=1)] = None,
    chunk: Annotated[int, typer.Option(help="Memories per transaction.", min=1)] = 200,
    collection: Annotated[str | None, typer.Option("--collection", help="Qdrant: the new collection (default "
                                                   "<collection>-<embedder>).")] = None,
    home: Home = None,
) -> None:
    """Embed every version of every memory again with another embedder (resumable: run it again after an
    interruption; verified); then configure engram with that embedder."""
    from engram.components import embedder_from
    from engram.reembed import reembed as run

    settings = load_settings(ctx, home)
    wanted = replace(settings, embedder=embedder.value, embedder_model=model or settings.embedder_model,
                     embedder_base_url=base_url or settings.embedder_base_url,
                     embedder_api_key=api_key or settings.embedder_api_key,
                     embedder_dimensions=dimensions or settings.embedder_dimensions)
    note_first_run(wanted)
    new = embedder_from(wanted)
    with progress_bar("re-embedding") as (bar, task):
        counts = run(settings, new, lambda done, total: bar.update(task, completed=done, total=total), chunk=chunk,
                     collection=collection)
    where = (f"; {count(counts['embedded_at_swap'], 'version')} written meanwhile embedded at the swap"
             if "embedded_at_swap" in counts else f" into collection {escape(counts['collection'])}")
    stdout().print(f"re-embedded {summary(counts)} with {escape(new.name)} ({new.dimension} dimensions), "
                   f"verified{where}", highlight=False)
    stdout().print(f"now configure engram with it: {escape(_how(wanted, counts.get('collection')))}", highlight=False)


def _how(wanted: Settings, collection: str | None) -> str:
    """The environment that selects the new embedder (the same keys go in config.toml)."""
    pairs: list[tuple[str, str]] = [("ENGRAM_EMBEDDER", wanted.embedder)]
    if wanted.embedder == "openai":
        pairs += [("ENGRAM_EMBEDDER_MODEL", wanted.embedder_model or "text-embedding-3-small"),
                  ("ENGRAM_EMBEDDER_BASE_URL", wanted.embedder_base_url)]
        if wanted.embedder_dimensions:
            pairs.append(("ENGRAM_EMBEDDER_DIMENSIONS", str(wanted.embedder_dimensions)))
    if collection:
        pairs.append(("ENGRAM_QDRANT_COLLECTION", collection))
    return " ".join(f"{name}={value}" for name, value in pairs)
