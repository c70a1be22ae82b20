"""Mem0's configuration dict, as `Memory.from_config` takes it, read into engram's settings.

Mem0 names a provider and its options for each part:

    {"vector_store": {"provider": "qdrant", "config": {"path": "/data/qdrant"}},
     "embedder": {"provider": "ollama", "config": {"model": "nomic-embed-text"}},
     "llm": {"provider": "openai", "config": {"model": "gpt-4o-mini", "temperature": 0.1}},
     "reranker": {"provider": "cohere", "config": {"api_key": "..."}}}

The providers engram has become Settings fields (pure: `translate` does no I/O). Another provider, or an option
engram would have to drop while it changes what is stored or where data goes, is a ConfigError naming it;
options that only tune sampling are ignored. A part the dict leaves out keeps engram's own default (SQLite, the
packaged MiniLM, no LLM), where Mem0 would use Qdrant in /tmp and OpenAI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engram.config import Settings
from engram.errors import ConfigError

if TYPE_CHECKING:
    from engram.stores.base import Store

__all__ = ["Translated", "load", "translate"]

LOCAL_MODELS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
COHERE_URL = "https://api.cohere.com/v2"
OLLAMA_URL = "http://localhost:11434"
_SAMPLING = {"top_p", "top_k", "vision_details", "reasoning_effort", "is_reasoning_model", "store"}  # ignored


@dataclass(frozen=True)
class Translated:
    """engram settings (keyword arguments of Settings.load) and a Qdrant client the config handed over."""

    settings: dict[str, Any] = field(default_factory=dict)
    qdrant_client: Any = None


def load(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> tuple[Settings, Store | None]:
    """The settings a Mem0 config dict asks for (engram settings in `overrides` win), and the store made on the
    Qdrant client it handed over, if any."""
    translated = translate(config)
    settings = Settings.load(**{**translated.settings, **overrides})
    if translated.qdrant_client is None:
        return settings, None
    from engram.stores.qdrant import QdrantStore

    return settings, QdrantStore(client=translated.qdrant_client, collection=settings.qdrant_collection)


def translate(config: Mapping[str, Any]) -> Translated:
    """A Mem0 config dict -> engram settings, or ConfigError naming what engram does not have."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"Memory.from_config takes a dict, not {type(config).__name__}")
    for key, value in config.items():
        if key in ("history_db_path", "version"):
            continue  # engram keeps history in its own store; there is one API version
        if key == "custom_instructions" and value is None:
            continue
        if key == "custom_instructions":
            raise ConfigError("custom_instructions: engram's extraction prompt is fixed; choose what is kept with the "
                              "categories setting")
        if key not in _PARTS:
            raise ConfigError(f"{key!r}: engram has no such part; a Mem0 config it reads holds "
                              f"{', '.join(sorted(_PARTS))} (graph memory lives in engram's own store)")
    settings: dict[str, Any] = {}
    client = None
    for part, readers in _PARTS.items():
        if config.get(part) is None:
            continue
        provider, options = _section(part, config[part])
        if provider not in readers:
            raise ConfigError(f"{part} provider {provider!r} is not available in engram; it has: "
                              f"{', '.join(sorted(readers))}{_HINTS.get(part, '')}")
        found = readers[provider](_Options(f"{part}.config", options))
        client = found.pop("client", None) or client
        settings.update(found)
    return Translated(settings, client)


class _Options:
    """One part's options, each taken at most once; what is left at the end is refused by name."""

    def __init__(self, where: str, options: dict[str, Any]) -> None:
        self.where = where
        self.left = dict(options)

    def take(self, key: str, default: Any = None) -> Any:
        value = self.left.pop(key, None)
        return default if value is None else value

    def ignore(self, *keys: str) -> None:
        for key in keys:
            self.left.pop(key, None)

    def done(self, found: dict[str, Any]) -> dict[str, Any]:
        if self.left:
            raise ConfigError(f"{self.where}: engram does not support {', '.join(sorted(map(repr, self.left)))}")
        return found


def _section(part: str, section: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(section, Mapping) or not isinstance(section.get("provider"), str):
        raise ConfigError(f"{part} must be a dict with a 'provider' string and a 'config' dict")
    unknown = set(section) - {"provider", "config"}
    if unknown:
        raise ConfigError(f"{part}: unknown key(s) {', '.join(sorted(map(repr, unknown)))}; give provider and config")
    options = section.get("config") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"{part}.config must be a dict, not {type(options).__name__}")
    return section["provider"], dict(options)


# -- vector store -------------------------------------------------------------------------------------------

def _qdrant(o: _Options) -> dict[str, Any]:
    o.ignore("embedding_model_dims", "on_disk")  # engram learns the size from the embedder; it never deletes data
    found: dict[str, Any] = {"store": "qdrant", "qdrant_collection": o.take("collection_name"),
                             "qdrant_api_key": o.take("api_key"), "client": o.take("client")}
    url, host, port, https, path = o.take("url"), o.take("host"), o.take("port"), o.take("https"), o.take("path")
    if url is None and host is not None:  # as Mem0 does: a URL first, then host and port, else the local path
        url = f"{'https' if https else 'http'}://{host}:{port or 6333}"
    if url is not None:
        found["qdrant_url"] = url
    elif found["client"] is None:
        found["qdrant_path"] = path  # None: engram's <home>/qdrant rather than Mem0's /tmp/qdrant
    return o.done(found)


# -- embedder -------------------------------------------------------------------------------------------------

def _openai_embedder(o: _Options) -> dict[str, Any]:
    return o.done({"embedder": "openai", "embedder_model": o.take("model", "text-embedding-3-small"),
                   "embedder_api_key": o.take("api_key"), "embedder_base_url": o.take("openai_base_url"),
                   "embedder_dimensions": o.take("embedding_dims")})


def _ollama_embedder(o: _Options) -> dict[str, Any]:
    o.ignore("embedding_dims")  # the model decides; Mem0 does not send it to Ollama either
    base = str(o.take("ollama_base_url", OLLAMA_URL)).rstrip("/")
    return o.done({"embedder": "openai", "embedder_model": o.take("model", "nomic-embed-text"),
                   "embedder_base_url": f"{base}/v1", "embedder_api_key": o.take("api_key")})


def _huggingface_embedder(o: _Options) -> dict[str, Any]:
    if o.take("model_kwargs"):
        raise ConfigError(f"{o.where}: engram does not support 'model_kwargs'")
    base, model, dims = o.take("huggingface_base_url"), o.take("model"), o.take("embedding_dims")
    if base is not None:  # Text Embeddings Inference and the like speak OpenAI's /v1/embeddings
        return o.done({"embedder": "openai", "embedder_base_url": base, "embedder_model": model or "tei",
                       "embedder_api_key": o.take("api_key", "hf"), "embedder_dimensions": dims})
    if model is not None and model not in LOCAL_MODELS:
        raise ConfigError(f"{o.where}: engram runs one model locally, all-MiniLM-L6-v2 (its weights ship in a "
                          f"package); serve {model!r} with Text Embeddings Inference and set huggingface_base_url")
    if dims is not None and dims != 384:
        raise ConfigError(f"{o.where}: all-MiniLM-L6-v2 makes 384 dimensions, not {dims}")
    return o.done({"embedder": "local"})


# -- LLM ------------------------------------------------------------------------------------------------------

def _llm(prefix: str, base_key: str, default_model: str, default_base: str | None = None) -> Callable[[_Options], dict]:
    def read(o: _Options) -> dict[str, Any]:
        o.ignore(*_SAMPLING)
        if o.take("enable_vision"):
            raise ConfigError(f"{o.where}: engram reads text only (enable_vision)")
        model = str(o.take("model", default_model))
        return o.done({"llm_model": model if prefix == "" else f"{prefix}/{model}",
                       "llm_api_base": o.take(base_key, default_base) if base_key else None,
                       "llm_api_key": o.take("api_key"), "llm_temperature": o.take("temperature"),
                       "llm_max_tokens": o.take("max_tokens")})
    return read


_LLMS = {
    "openai": _llm("openai", "openai_base_url", "gpt-4o-mini"),
    "ollama": _llm("ollama_chat", "ollama_base_url", "llama3.1:70b", OLLAMA_URL),
    "litellm": _llm("", "", "gpt-4o-mini"),  # a LiteLLM model string, as it is
}


# -- reranker -------------------------------------------------------------------------------------------------

def _cohere(o: _Options) -> dict[str, Any]:
    o.ignore("top_k", "return_documents", "max_chunks_per_doc")  # engram keeps search's limit; it needs scores only
    return o.done({"reranker": "http", "reranker_model": o.take("model", "rerank-v3.5"),
                   "reranker_api_key": o.take("api_key"), "reranker_base_url": COHERE_URL})


def _llm_reranker(o: _Options) -> dict[str, Any]:
    if o.take("scoring_prompt"):
        raise ConfigError(f"{o.where}: engram's reranking prompt is fixed (scoring_prompt)")
    o.ignore("top_k", "temperature", "max_tokens")
    nested = o.take("llm")
    options: dict[str, Any] = {k: o.take(k) for k in ("model", "api_key") if k in o.left}
    provider = o.take("provider", "openai")
    if nested:  # {"provider", "config"} of an LLM, as in the llm section: it wins over the keys above
        provider, options = _section(f"{o.where}.llm", nested)
    if provider not in _LLMS:
        raise ConfigError(f"{o.where}: LLM provider {provider!r} is not available in engram; it has: "
                          f"{', '.join(sorted(_LLMS))}")
    llm = _LLMS[provider](_Options(f"{o.where}.llm", options))
    return o.done({"reranker": "llm", "reranker_model": llm["llm_model"], "reranker_base_url": llm["llm_api_base"],
                   "reranker_api_key": llm["llm_api_key"]})


_PARTS: dict[str, dict[str, Callable[[_Options], dict[str, Any]]]] = {
    "vector_store": {"qdrant": _qdrant},
    "embedder": {"openai": _openai_embedder, "ollama": _ollama_embedder, "huggingface": _huggingface_embedder},
    "llm": _LLMS,
    "reranker": {"cohere": _cohere, "llm": _llm_reranker},
}
_HINTS = {
    "vector_store": " (leave vector_store out for engram's embedded SQLite store)",
    "embedder": " (any OpenAI-compatible server through openai_base_url)",
    "llm": " (any LiteLLM model string through 'litellm')",
    "reranker": " (serve other rerank models behind a Cohere-style /rerank endpoint, e.g. vLLM, and set engram's "
                "reranker = http)",
}
