"""Changing embedders: every version of every memory embedded again, by another embedder, into a new binding.

engram.migrate copies the store into one bound to the new embedder, making each version's vector with it from the
version's text (each distinct text once): resumable (run it again after an interruption and only what is missing
is embedded) and verified (every version, event and chat turn). For the SQLite store that copy is a work file
beside the database, whose vectors then replace the store's in one write transaction
(sqlite_maintenance.swap_vectors): the store keeps its file, ids, versions and history, and a write made while
the copy was being made is embedded inside that transaction, so none is lost. A Qdrant collection fixes its
vector size, so there the copy is a new collection that engram is then pointed at (setting qdrant_collection).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from engram.components import store_from
from engram.config import Settings
from engram.embed.base import Embedder
from engram.errors import InvalidInput
from engram.migrate import migrate
from engram.stores.base import Store
from engram.transfer import safe_filename

__all__ = ["reembed", "work_path"]

Progress = Callable[[int, int], None]


def work_path(settings: Settings, embedder: Embedder) -> Path:
    """Where the SQLite store's copy for `embedder` is made (kept until the swap, so a rerun resumes it)."""
    database = settings.database
    return database.with_name(f"{database.name}.reembed-{safe_filename(embedder.name)}")


def reembed(settings: Settings, embedder: Embedder, progress: Progress | None = None, *, chunk: int = 200,
            collection: str | None = None) -> dict[str, Any]:
    """Re-embed the store `settings` name with `embedder`; return migrate's counts plus `embedded_at_swap`
    (SQLite: versions written during the copy) or `collection` (Qdrant: the new collection)."""
    live = store_from(settings)
    try:
        binding = _binding(live, embedder)
        if settings.store == "sqlite":
            counts: dict[str, Any] = _copy(live, _sqlite_copy(settings, embedder), binding, embedder, progress, chunk)
        else:
            slug = re.sub(r"[^A-Za-z0-9_-]+", "_", embedder.name)  # a mix-up would still be an EmbedderMismatch
            name = collection or f"{settings.qdrant_collection}-{slug}"[:200]
            target = store_from(replace(settings, qdrant_collection=name))
            counts = _copy(live, target, binding, embedder, progress, chunk)
            counts["collection"] = name
    finally:
        live.close()
    if settings.store == "sqlite":
        from engram.stores.sqlite_maintenance import swap_vectors

        work = work_path(settings, embedder)
        counts["embedded_at_swap"] = swap_vectors(settings.database, work, (embedder.name, embedder.dimension),
                                                  embedder.embed)
        for leftover in (work, work.with_name(work.name + "-wal"), work.with_name(work.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return counts


def _binding(live: Store, embedder: Embedder) -> tuple[str, int]:
    binding = live.binding()
    if binding is None:
        raise InvalidInput("the store holds no vectors yet: there is nothing to re-embed (it takes the embedder "
                           "that writes first)")
    if binding[0] == embedder.name:
        raise InvalidInput(f"the store already holds vectors of {embedder.name!r}")
    return binding


def _sqlite_copy(settings: Settings, embedder: Embedder) -> Store:
    from engram.stores.sqlite import SQLiteStore

    return SQLiteStore(work_path(settings, embedder), cache_rows=1)  # written once, never searched


def _copy(live: Store, copy: Store, binding: tuple[str, int], embedder: Embedder, progress: Progress | None,
          chunk: int) -> dict[str, Any]:
    try:
        return dict(migrate(live, copy, progress, embedder=binding, chunk=chunk, keep_ids=True, reembed=embedder))
    finally:
        copy.close()
