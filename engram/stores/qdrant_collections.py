"""The Qdrant store's collections: each made once, by whichever process gets there first (with its payload
indexes on a server; local mode has none), and the embedder binding kept in the memories collection's metadata."""

from __future__ import annotations

from typing import Any

from qdrant_client import QdrantClient

from engram.errors import CorruptStore
from engram.stores.qdrant_journal import CLIENT_ERRORS, Names, client_errors
from engram.stores.qdrant_schema import INDEXES

__all__ = ["create", "read_binding"]


def read_binding(client: QdrantClient, names: Names) -> tuple[str, int] | None:
    """(embedder name, dimension) of the memories collection, or None while it does not exist (unbound)."""
    with client_errors("read"):
        if not client.collection_exists(names.memories):
            return None
        info = client.get_collection(names.memories)
    meta = info.config.metadata or {}
    if meta.get("engram") != 1:
        raise CorruptStore(f"Qdrant collection {names.memories!r} exists but was not created by engram")
    return str(meta["embedder"]), int(meta["dimension"])


def create(client: QdrantClient, names: Names, specs: dict[str, dict[str, Any]], *, local: bool) -> None:
    """Each collection of `specs` (kind -> create_collection arguments; in order) that does not exist yet."""
    for kind, spec in specs.items():
        collection = getattr(names, kind)
        with client_errors(f"create collection {collection}"):
            if client.collection_exists(collection):
                continue
            try:
                client.create_collection(collection, **spec)
            except CLIENT_ERRORS:
                if client.collection_exists(collection):
                    continue  # created by another process meanwhile
                raise
            if not local:
                for field_name, schema in INDEXES[kind].items():
                    client.create_payload_index(collection, field_name, field_schema=schema, wait=True)
