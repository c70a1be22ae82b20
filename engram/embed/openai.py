"""An embedder for any OpenAI-compatible /v1/embeddings endpoint (OpenAI, Ollama, vLLM, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from engram.embed.base import Embedder
from engram.errors import ConfigError, EmbedderError
from engram.http import JSONClient

__all__ = ["OpenAIEmbedder"]

_PROBE_TEXT = "dimension probe"
_OPENAI_HOST = "api.openai.com"
_KEY_SETTINGS = "embedder_api_key (ENGRAM_EMBEDDER_API_KEY) or OPENAI_API_KEY"


class OpenAIEmbedder(Embedder):
    """Embeds over HTTP; retries 429, 5xx, connect errors and timeouts, fails fast on anything else."""

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        batch_size: int = 64,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        _check_config(model, base_url, dimensions, timeout, max_retries, backoff, batch_size)
        if not api_key and httpx.URL(base_url).host == _OPENAI_HOST:  # servers such as Ollama need no key
            raise ConfigError(f"{base_url} needs an API key: pass api_key= (the setting {_KEY_SETTINGS})")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.dimensions = dimensions
        self.batch_size = batch_size
        # The size is part of the name: a store must never mix vectors of one model cut to different sizes.
        self.name = f"openai:{model}" + (f":{dimensions}" if dimensions is not None else "")
        self._http = JSONClient(self.name, self.base_url, error=EmbedderError, api_key=api_key, key_hint=_KEY_SETTINGS,
                                timeout=timeout, max_retries=max_retries, backoff=backoff, transport=transport)
        self._dimension = dimensions

    @property
    def dimension(self) -> int:  # type: ignore[override]
        """The vector size: `dimensions` if given, else learned from the server.

        A model's native size is not knowable offline, and asking at construction would mean network I/O
        there; so it is learned from the first batch embedded, or from one probe text if asked for earlier.
        """
        if self._dimension is None:
            self._dimension = self._request([_PROBE_TEXT]).shape[1]
        return self._dimension

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._request(list(texts))
        if self._dimension is None:
            self._dimension = vectors.shape[1]
        elif vectors.shape[1] != self._dimension:
            raise EmbedderError(f"{self.name} returned vectors of size {vectors.shape[1]}, expected {self._dimension}")
        return vectors

    def close(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        self._http.close()

    def __enter__(self) -> OpenAIEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # HTTP ------------------------------------------------------------------------------------------------
    def _request(self, texts: list[str]) -> np.ndarray:
        payload: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            payload["dimensions"] = self.dimensions
        return _parse_vectors(self._http.post("/embeddings", payload), len(texts), self.dimensions, self.name)


def _parse_vectors(body: Any, count: int, dimensions: int | None, name: str) -> np.ndarray:
    """Check an embeddings response and return its vectors ordered by `index`."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise EmbedderError(f"{name}: response has no 'data' list: {str(body)[:200]}")
    if len(data) != count:
        raise EmbedderError(f"{name}: got {len(data)} vectors for {count} texts")
    rows: list[Any] = [None] * count
    for item in data:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or rows[index] is not None:
            raise EmbedderError(f"{name}: bad or repeated index {index!r} in response")
        rows[index] = item.get("embedding")
    if not all(isinstance(r, list) and r and len(r) == len(rows[0]) for r in rows):
        raise EmbedderError(f"{name}: embeddings are missing, empty or of unequal sizes")
    try:
        vectors = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbedderError(f"{name}: embeddings are not lists of numbers ({exc})") from exc
    if vectors.ndim != 2:
        raise EmbedderError(f"{name}: embeddings are not flat lists of numbers")
    if dimensions is not None and vectors.shape[1] != dimensions:
        raise EmbedderError(f"{name}: asked for {dimensions} dimensions, got {vectors.shape[1]} "
                            "(does the server support the 'dimensions' parameter?)")
    return vectors


def _check_config(model: str, base_url: str, dimensions: int | None, timeout: float, max_retries: int,
                  backoff: float, batch_size: int) -> None:
    if not isinstance(model, str) or not model:
        raise ConfigError("model must be a non-empty string")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"base_url must be an http(s) URL, not {base_url!r}")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise ConfigError(f"dimensions must be a positive integer, not {dimensions!r}")
    if timeout <= 0 or backoff < 0 or max_retries < 0 or batch_size < 1:
        raise ConfigError("timeout must be > 0, backoff and max_retries >= 0, batch_size >= 1")
