"""An embedder for any OpenAI-compatible /v1/embeddings endpoint (OpenAI, Ollama, vLLM, ...)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from engram.embed.base import Embedder
from engram.errors import ConfigError, EmbedderError

__all__ = ["OpenAIEmbedder"]

# A server may ask for a long pause; past this we would rather fail and let the caller decide.
MAX_RETRY_AFTER = 30.0
_RETRYABLE_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
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
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.batch_size = batch_size
        # The size is part of the name: a store must never mix vectors of one model cut to different sizes.
        self.name = f"openai:{model}" + (f":{dimensions}" if dimensions is not None else "")
        self._api_key = api_key
        self._transport = transport
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
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
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> OpenAIEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # HTTP ------------------------------------------------------------------------------------------------
    def _request(self, texts: list[str]) -> np.ndarray:
        payload: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            payload["dimensions"] = self.dimensions
        response = self._post_with_retries(payload)
        try:
            body = response.json()
        except ValueError as exc:  # JSONDecodeError, or a body that is not text at all
            raise EmbedderError(f"{self.name}: malformed response body ({exc}): {response.text[:200]!r}") from exc
        return _parse_vectors(body, len(texts), self.dimensions, self.name)

    def _post_with_retries(self, payload: dict[str, Any]) -> httpx.Response:
        url = f"{self.base_url}/embeddings"
        client = self._get_client()
        for attempt in range(self.max_retries + 1):
            last_attempt = attempt == self.max_retries
            try:
                response = client.post(url, json=payload)
            except _RETRYABLE_EXCEPTIONS as exc:
                if last_attempt:
                    raise EmbedderError(f"{self.name}: {type(exc).__name__} calling {url} "
                                        f"after {attempt + 1} attempts: {exc}") from exc
                time.sleep(self._delay(attempt, None))
                continue
            except httpx.HTTPError as exc:  # a bad URL scheme, a proxy error: retrying cannot help
                raise EmbedderError(f"{self.name}: {type(exc).__name__} calling {url}: {exc}") from exc
            if response.is_success:
                return response
            if not _retryable_status(response.status_code) or last_attempt:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                hint = f" (no API key was sent: set {_KEY_SETTINGS})" \
                    if response.status_code in (401, 403) and not self._api_key else ""
                raise EmbedderError(f"{self.name}: HTTP {response.status_code} from {url}{tries}: "
                                    f"{_error_message(response)}{hint}")
            time.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Exponential backoff, unless the server said how long to wait (numeric Retry-After, capped)."""
        if response is not None:
            for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
                try:
                    seconds = float(response.headers.get(header, "")) * scale
                except ValueError:  # absent, or an HTTP date: fall back to our own backoff
                    continue
                if seconds >= 0:  # NaN and negatives fall through to our own backoff
                    return min(seconds, MAX_RETRY_AFTER)
        return self.backoff * 2**attempt

    def _get_client(self) -> httpx.Client:
        with self._client_lock:  # two threads' first calls must not both open (and leak) a pool
            if self._client is None:
                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                self._client = httpx.Client(timeout=self.timeout, headers=headers, transport=self._transport)
            return self._client


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _error_message(response: httpx.Response) -> str:
    """The server's own message when it sent the OpenAI error shape, else the start of the body."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):  # some compatible servers (Ollama) send {"error": "..."}
        return error
    return response.text[:200] or "(empty body)"


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
