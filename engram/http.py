"""JSON over HTTP with retries, shared by the clients of model services (embeddings, rerank).

Retries 429, 5xx, connect errors and timeouts with exponential backoff (or the server's numeric Retry-After,
capped); fails fast on anything else. Every failure is raised as the caller's error class, never raw httpx.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from engram.errors import EngramError

__all__ = ["MAX_RETRY_AFTER", "JSONClient"]

# A server may ask for a long pause; past this we would rather fail and let the caller decide.
MAX_RETRY_AFTER = 30.0
_RETRYABLE_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class JSONClient:
    """POSTs JSON to `base_url` + a path; errors are raised as `error` with `name` in front of the message."""

    def __init__(self, name: str, base_url: str, *, error: type[EngramError], api_key: str | None = None,
                 key_hint: str | None = None, timeout: float = 30.0, max_retries: int = 3, backoff: float = 0.5,
                 transport: httpx.BaseTransport | None = None) -> None:
        """`key_hint`: the setting to name when the server refuses a call made without a key."""
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.error = error
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self._api_key = api_key
        self.key_hint = key_hint
        self._transport = transport
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        """The answer's JSON body."""
        response = self._post_with_retries(f"{self.base_url}{path}", payload)
        try:
            return response.json()
        except ValueError as exc:  # JSONDecodeError, or a body that is not text at all
            raise self.error(f"{self.name}: malformed response body ({exc}): {response.text[:200]!r}") from exc

    def close(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _post_with_retries(self, url: str, payload: dict[str, Any]) -> httpx.Response:
        client = self._get_client()
        for attempt in range(self.max_retries + 1):
            last_attempt = attempt == self.max_retries
            try:
                response = client.post(url, json=payload)
            except _RETRYABLE_EXCEPTIONS as exc:
                if last_attempt:
                    raise self.error(f"{self.name}: {type(exc).__name__} calling {url} "
                                     f"after {attempt + 1} attempts: {exc}") from exc
                time.sleep(self._delay(attempt, None))
                continue
            except httpx.HTTPError as exc:  # a bad URL scheme, a proxy error: retrying cannot help
                raise self.error(f"{self.name}: {type(exc).__name__} calling {url}: {exc}") from exc
            if response.is_success:
                return response
            if not _retryable_status(response.status_code) or last_attempt:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                hint = f" (no API key was sent: set {self.key_hint})" \
                    if response.status_code in (401, 403) and not self._api_key and self.key_hint else ""
                raise self.error(f"{self.name}: HTTP {response.status_code} from {url}{tries}: "
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
