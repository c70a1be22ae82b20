"""The server's errors and their HTTP statuses: every engram error, and the server's own, is a JSON body
`{"error": {"type", "message"}}` with a 4xx status for the caller's mistakes, never a 500.

    ServerError               the server's own refusals (not engram's library errors)
    ├── Unauthorized   401    no key, or a key that is unknown, wrong or revoked
    ├── Forbidden      403    a key asking for what it does not grant (another user, an admin action)
    ├── TooLarge       413    a request body over server_max_body
    └── RateLimited    429    a key over server_rate_limit (with Retry-After)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from engram.errors import (
    ConfigError,
    Conflict,
    CorruptStore,
    EmbedderError,
    EngramError,
    InvalidInput,
    LLMError,
    NotFound,
    RerankerError,
    StoreError,
)

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "Forbidden",
    "RateLimited",
    "ServerError",
    "TooLarge",
    "Unauthorized",
    "error_body",
    "status_of",
]


class ServerError(Exception):
    status = 400


class Unauthorized(ServerError):
    status = 401


class Forbidden(ServerError):
    status = 403


class TooLarge(ServerError):
    status = 413


class RateLimited(ServerError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# Most specific first: the first class an error is an instance of gives its status
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (InvalidInput, 400), (NotFound, 404), (Conflict, 409), (CorruptStore, 500), (StoreError, 503),
    (EmbedderError, 502), (LLMError, 502), (RerankerError, 502), (ConfigError, 500), (EngramError, 500),
)


def status_of(exc: Exception) -> int:
    """The HTTP status of an engram or server error: the caller's mistakes 4xx, an upstream (LLM, embedder,
    reranker) failure 502, a busy or unwritable store 503, a damaged store or a bad configuration 500."""
    if isinstance(exc, ServerError):
        return exc.status
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 500)


def error_body(kind: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """`{"error": {"type", "message", "request_id"}}`, and the message again as `detail`, where Mem0's clients
    (and FastAPI's) look for it."""
    error: dict[str, Any] = {"type": kind, "message": message}
    if request_id:
        error["request_id"] = request_id
    return {"error": error, "detail": message}


class _Error(BaseModel):
    type: str
    message: str
    request_id: str | None = None


class ErrorBody(BaseModel):
    """What every error response holds."""

    error: _Error
    detail: str


_WHY = {400: "Bad input", 401: "No valid key", 403: "Not granted to this key", 404: "Not found (or not yours)",
        409: "Changed meanwhile", 413: "Body too large", 422: "Body or parameters of the wrong shape",
        429: "Too many requests", 500: "Server error", 502: "LLM or embedder failed", 503: "Store busy or unwritable"}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": why} for status, why in _WHY.items()}
