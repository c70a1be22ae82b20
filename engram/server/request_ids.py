"""A request id on every response (`X-Request-ID`) and every log line written while the request is served.

A caller's own `X-Request-ID` (1-64 letters, digits, `.`, `_`, `-`) is kept, so a proxy's id follows the request
through; otherwise a new one is made. The id lives in a context variable, which FastAPI's worker threads
inherit, so the library's own log lines carry it too.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from engram.server.limits import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIdFilter", "RequestIds", "current_request_id", "setup_logging"]

_request_id: ContextVar[str | None] = ContextVar("engram_request_id", default=None)
_GIVEN = re.compile(rb"[A-Za-z0-9._-]{1,64}")
log = logging.getLogger("engram.server")


def current_request_id() -> str | None:
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Gives every log record a `request_id` attribute ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True


def setup_logging(level: str = "INFO") -> None:
    """One line per record on stderr, with its request id."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


class RequestIds:
    """ASGI middleware: the request id, set for the request and sent back; one access line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = given.decode() if _GIVEN.fullmatch(given) else uuid.uuid4().hex
        token = _request_id.set(request_id)
        started, status = time.perf_counter(), 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info("%s %s %s %.1f ms", scope["method"], scope["path"], status or "-",
                     (time.perf_counter() - started) * 1000)
            _request_id.reset(token)
