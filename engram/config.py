"""Settings: defaults < TOML file < ENGRAM_* environment < keyword arguments. The only reader of os.environ.

The TOML file is `$ENGRAM_CONFIG`, else `<home>/config.toml` when it exists. Its keys are the field names
below, flat or in tables (`[embedder] model = "..."` is `embedder_model`). Enumerated settings are Literal
types, checked whenever a Settings is made (a typo is a ConfigError listing the choices, never a fallback).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from engram.errors import ConfigError
from engram.inputs import MAX_SEARCH_LIMIT

__all__ = ["EmbedderBackend", "EmbedderKind", "EmbedderPrecision", "ReconcileMode", "SearchFusion", "ServerKeys",
           "Settings", "StoreKind", "VectorStorage", "check_device"]

StoreKind = Literal["sqlite", "qdrant", "files"]  # files: Markdown files in files_dir (engram.stores.files)
EmbedderKind = Literal["local", "openai"]  # local: all-MiniLM-L6-v2, offline; openai: any /v1/embeddings
EmbedderBackend = Literal["auto", "onnx", "sentence-transformers"]
EmbedderPrecision = Literal["auto", "fp32", "fp16"]  # auto: fp16 on a CUDA device, fp32 on the CPU
SearchFusion = Literal["score", "rrf", "dense", "keyword"]  # score: weighted normalised scores
VectorStorage = Literal["float32", "float16"]
ReconcileMode = Literal["predict", "react"]  # predict: one call; react: the tool-using agent
ServerKeys = Literal["auto", "required"]  # auto: a request without a key is served while no key exists (loopback)


@dataclass(frozen=True)
class Settings:
    home: Path = Path("~/.engram")
    store: StoreKind = "sqlite"
    db_path: Path | None = None  # default: <home>/engram.db
    embedder: EmbedderKind = "local"
    embedder_model: str | None = None  # openai: default text-embedding-3-small
    embedder_base_url: str = "https://api.openai.com/v1"
    embedder_api_key: str | None = None  # falls back to OPENAI_API_KEY
    embedder_dimensions: int | None = None
    embedder_backend: EmbedderBackend = "auto"  # for embedder = "local"
    embedder_threads: int | None = None
    embedder_device: str = "cpu"  # for embedder = "local": cpu, cuda, cuda:N, or auto (cuda:0 when it can run there)
    embedder_precision: EmbedderPrecision = "auto"
    embedder_batch_size: int | None = None  # texts a model call; default 32 on the CPU, 256 on CUDA
    max_memory_chars: int = 4000
    max_input_chars: int = 100_000  # add(infer=True): all messages together; extracted in pieces of PIECE_CHARS
    search_limit: int = 10
    search_pool: int = 50  # candidates taken from each of dense and keyword search before fusion
    rrf_k: int = 60  # for search_fusion = "rrf"
    search_fusion: SearchFusion = "score"
    search_keyword_weight: float = 0.5  # share of the keyword score in score fusion
    search_context: str = "0.4,0.2"  # share of the best neighbouring memory's score at distance 1, 2 ("0": off)
    search_time_weight: float = 0.2  # bonus for memories from a day/month/year the query names
    search_graph: bool = False  # search(graph=None) ranks higher the memories naming the entities a query names
    search_graph_weight: float = 0.05  # how much higher: a score x (1 + weight x link strength), normalised
    # A new name no name, alias or short form resolves joins the one known entity of its kind whose name embeds
    # this close (cosine) or is spelled this alike (engram.graph_alias, engram.graph.spelling); above 1: never.
    # Measured by bench/graph_alias.py: 0.875 merges no pair of its must-not list nor any LoCoMo names but
    # inflections; 0.7 is the least that merges "Melany" into "Melanie" (and merges "Mario" into "Maria").
    graph_alias_similarity: float = 0.875
    graph_alias_spelling: float = 0.7
    cache_rows: int = 500_000  # rows of vectors the SQLite store keeps in memory across scopes
    # How the SQLite store writes new vectors: float16 halves their bytes and, measured on LoCoMo (bench/README),
    # costs no recall; float32 keeps them exact
    vector_storage: VectorStorage = "float16"
    qdrant_url: str | None = None  # a Qdrant server or cluster; else qdrant_path
    qdrant_api_key: str | None = None
    qdrant_path: str | None = None  # local Qdrant directory, or ":memory:"; default <home>/qdrant
    qdrant_collection: str = "engram"
    files_dir: Path | None = None  # store = files: the directory of Markdown files; default <home>/memory
    files_git: bool = False  # store = files: each write a git commit in files_dir (the machine's git)
    llm_model: str | None = None  # any DSPy/LiteLLM model string; None = the offline rules-based pipeline
    llm_api_base: str | None = None  # an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
    llm_api_key: str | None = None  # falls back to OPENAI_API_KEY
    llm_temperature: float = 0.0
    llm_max_tokens: int = 2000
    llm_timeout: float = 60.0
    llm_retries: int = 3  # for HTTP 429 / 5xx / timeouts, with exponential backoff
    reconcile_mode: ReconcileMode = "predict"
    reconcile_candidates: int = 5  # similar current memories shown per new fact
    max_facts: int = 50  # facts one add(infer=True) keeps from the extraction; the rest is reported as rejected
    categories: str | None = None  # comma-separated custom taxonomy for extraction
    reranker: str | None = None  # search(rerank=True): http (a /rerank endpoint) | llm; None: rerank=True is ignored
    reranker_model: str | None = None  # http: the rerank model; llm: a model string instead of llm_model
    reranker_base_url: str | None = None  # http: e.g. https://api.cohere.com/v2; llm: instead of llm_api_base
    reranker_api_key: str | None = None  # http: the endpoint's key; llm: instead of llm_api_key
    server_keys: ServerKeys = "auto"  # engram serve: required refuses every request without a valid key
    server_max_body: int = 1_048_576  # engram serve: bytes a request body may have (413 beyond)
    server_rate_limit: float = 100.0  # engram serve: requests per second per key, per worker (0: no limit)
    server_rate_burst: int = 200  # engram serve: requests a key may make at once before the rate applies

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"setting {name} (ENGRAM_{name.upper()}) must be one of {', '.join(allowed)}; "
                                  f"got {getattr(self, name)!r}")
        object.__setattr__(self, "embedder_device", check_device(self.embedder_device))

    @property
    def database(self) -> Path:
        return self.db_path if self.db_path is not None else self.home / "engram.db"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        from_env = {name: env[f"ENGRAM_{name.upper()}"] for name in known if f"ENGRAM_{name.upper()}" in env}
        for name in ("embedder_api_key", "llm_api_key"):
            if name not in from_env and "OPENAI_API_KEY" in env:
                from_env[name] = env["OPENAI_API_KEY"]
        home = overrides.get("home") or from_env.get("home") or cls.home
        file_values = _read_toml(env.get("ENGRAM_CONFIG"), Path(home).expanduser())
        merged = {**file_values, **from_env, **{k: v for k, v in overrides.items() if v is not None}}
        settings = cls()
        for name, value in merged.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r} in the config file")
            settings = replace(settings, **{name: _coerce(name, value)})
        return replace(settings, home=Path(settings.home).expanduser())


_TYPES = {f.name: f.type for f in fields(Settings)}
_CHOICES: dict[str, tuple[str, ...]] = {name: get_args(hint) for name, hint in get_type_hints(Settings).items()
                                        if get_origin(hint) is Literal}
_ZERO_ALLOWED = {"llm_temperature", "llm_retries", "search_keyword_weight", "search_time_weight", "search_graph_weight",
                 "server_rate_limit"}
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
_MAXIMUM = {"search_limit": MAX_SEARCH_LIMIT, "search_pool": MAX_SEARCH_LIMIT}


def check_device(value: Any) -> str:
    """A device for the local embedder, normalised: cpu, auto, cuda or cuda:N. Anything else is a ConfigError."""
    device = str(value).strip().lower()
    if not _DEVICE.fullmatch(device):
        raise ConfigError(f"setting embedder_device (ENGRAM_EMBEDDER_DEVICE) must be cpu, cuda, cuda:N (N a device "
                          f"number) or auto; got {value!r}")
    return device


_DEVICE = re.compile(r"cpu|auto|cuda(?::\d{1,3})?")


def _coerce(name: str, value: Any) -> Any:
    kind = str(_TYPES[name])
    try:
        if value is None or value == "":
            if "None" in kind:
                return None
            raise ConfigError(f"setting {name} cannot be empty")
        if kind.startswith("bool"):
            return _boolean(name, value)
        if kind.startswith(("int", "float")):
            number = int(value) if kind.startswith("int") else float(value)
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"setting {name} must be a finite number, got {value!r}")
            if number < 0 or (number == 0 and name not in _ZERO_ALLOWED):
                raise ConfigError(f"setting {name} must be positive, got {value!r}")
            if number > _MAXIMUM.get(name, math.inf):
                raise ConfigError(f"setting {name} is at most {_MAXIMUM[name]:,}, got {value!r}")
            return number
        if "Path" in kind:
            return Path(str(value)).expanduser()
        if name in _CHOICES and isinstance(value, str):
            return value.strip().lower()  # "SQLite " is sqlite; anything else is refused by __post_init__
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} must be {kind}, got {value!r}") from None


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() not in _BOOLEANS:
        raise ConfigError(f"setting {name} must be true or false, got {value!r}")
    return _BOOLEANS[str(value).strip().lower()]


def _read_toml(explicit: str | None, home: Path) -> dict[str, Any]:
    path = Path(explicit).expanduser() if explicit else home / "config.toml"
    if not path.exists():
        if explicit:
            raise ConfigError(f"ENGRAM_CONFIG names {path}, which does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return _flatten(data)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # [embedder] model = ... is embedder_model; an [engram] table adds nothing
            flat.update(_flatten(value, "" if key == "engram" else f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
