"""Turning setting names into parts: the one place a provider name becomes an object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engram.config import Settings
from engram.embed.base import Embedder
from engram.errors import ConfigError
from engram.private import make_dirs
from engram.stores.base import Store

if TYPE_CHECKING:
    from engram.rerank import Reranker

__all__ = ["check_parts", "embedder_from", "reranker_from", "store_from"]
RERANKERS = ("http", "llm")


def check_parts(settings: Any, store: Any, embedder: Any, reranker: Any = None) -> None:
    """Parts handed to Memory(...) are objects of the right kind: a name given where an object belongs is a
    ConfigError now, not an AttributeError at the first call."""
    if settings is not None and not isinstance(settings, Settings):
        raise ConfigError(f"settings must be an engram.config.Settings, not {type(settings).__name__}; "
                          "use Memory(Settings.load(...)) or keyword settings such as Memory(home=...)")
    parts: list[tuple[str, Any, type]] = [("store", store, Store), ("embedder", embedder, Embedder)]
    if reranker is not None:  # imported only when given: httpx stays out of a plain start
        from engram.rerank import Reranker

        parts.append(("reranker", reranker, Reranker))
    for what, part, kind in parts:
        if part is not None and not isinstance(part, kind):
            raise ConfigError(f"{what}= takes a {kind.__name__} object, not {type(part).__name__}; to choose "
                              f"one by name, use Memory(Settings.load({what}=...)) or ENGRAM_{what.upper()}")


def embedder_from(settings: Settings) -> Embedder:
    if settings.embedder == "local":
        from engram.embed.local import MiniLMEmbedder

        return MiniLMEmbedder(settings.home / "models", backend=settings.embedder_backend,
                              threads=settings.embedder_threads, device=settings.embedder_device,
                              precision=settings.embedder_precision, batch_size=settings.embedder_batch_size)
    if settings.embedder == "openai":
        from engram.embed.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            model=settings.embedder_model or "text-embedding-3-small",
            base_url=settings.embedder_base_url,
            api_key=settings.embedder_api_key,
            dimensions=settings.embedder_dimensions,
        )
    raise ConfigError(f"unknown embedder {settings.embedder!r}; known: local, openai")


def store_from(settings: Settings, embedder: Embedder | None = None) -> Store:
    """The configured store. `embedder`: what the files store embeds memories written by hand with (default: the
    configured one, made only when such a memory is found)."""
    if settings.store == "files":
        from engram.stores.files import FilesStore

        directory = settings.files_dir or settings.home / "memory"
        return FilesStore(directory, embed=_embed_with(settings, embedder), git=settings.files_git,
                          cache_rows=settings.cache_rows)
    if settings.store == "sqlite":
        from engram.stores.sqlite import SQLiteStore

        return SQLiteStore(settings.database, cache_rows=settings.cache_rows, vector_storage=settings.vector_storage)
    if settings.store == "qdrant":
        from engram.stores.qdrant import QdrantStore

        if settings.qdrant_url and settings.qdrant_path:
            raise ConfigError("set either qdrant_url (a server or cluster) or qdrant_path (a local directory), "
                              "not both")
        if settings.qdrant_url:
            return QdrantStore(url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                               collection=settings.qdrant_collection)
        path = settings.qdrant_path or settings.home / "qdrant"
        if str(path) != ":memory:":
            make_dirs(path)  # 0700: qdrant-client writes its files with the umask's mode
        return QdrantStore(path=path, collection=settings.qdrant_collection)
    raise ConfigError(f"unknown store {settings.store!r}; known: sqlite, qdrant, files")


def _embed_with(settings: Settings, embedder: Embedder | None) -> Callable[[list[str]], Any]:
    made = [embedder] if embedder is not None else []

    def embed(texts: list[str]) -> Any:
        if not made:
            made.append(embedder_from(settings))
        return made[0].embed(texts)

    return embed


def reranker_from(settings: Settings) -> Reranker | None:
    """The reranker search(rerank=True) uses; None when none is configured. Nothing is called here."""
    if settings.reranker is None:
        return None
    from engram.rerank import HTTPReranker, LLMReranker

    if settings.reranker == "http":
        if not settings.reranker_model or not settings.reranker_base_url:
            raise ConfigError("reranker = http needs reranker_model and reranker_base_url (e.g. https://api.cohere.com/v2)")
        return HTTPReranker(settings.reranker_model, settings.reranker_base_url, settings.reranker_api_key)
    if settings.reranker == "llm":
        return LLMReranker(replace(settings, llm_model=settings.reranker_model or settings.llm_model,
                                   llm_api_base=settings.reranker_base_url or settings.llm_api_base,
                                   llm_api_key=settings.reranker_api_key or settings.llm_api_key))
    raise ConfigError(f"unknown reranker {settings.reranker!r}; known: {', '.join(RERANKERS)}")
