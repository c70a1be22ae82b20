"""The ASGI app: FastAPI with the Mem0, MemoryClient and engram routes, MCP at /mcp, the gate, the limits, and
engram's errors turned into `{"error": {"type", "message"}}` bodies at this one boundary."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import Route

from engram.config import Settings
from engram.errors import EngramError
from engram.server.auth import Gate
from engram.server.deps import ok
from engram.server.errors import RateLimited, ServerError, error_body, status_of
from engram.server.keys import KeyStore
from engram.server.limits import ASGIApp, BodyLimit, RateLimiter, Receive, Scope, Send
from engram.server.mcp import CALLER_KEY, build_mcp, caller_over_http
from engram.server.request_ids import RequestIds, current_request_id
from engram.server.tenancy import Tenants
from engram.server.web_sessions import SameOrigin, WebSessions
from engram.types import Scope as Owner

__all__ = ["app_from_environment", "create_app"]

log = logging.getLogger("engram.server")


def error_response(exc: Exception) -> Response:
    """The JSON error reply of an engram or server error."""
    response = ok(error_body(type(exc).__name__, str(exc), current_request_id()), status_of(exc))
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _handlers(app: FastAPI) -> None:
    async def known(request: Request, exc: Exception) -> Response:
        if status_of(exc) >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return error_response(exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return ok(error_body("InvalidInput", problems or "invalid request", current_request_id()), 422)

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = ok(error_body("HTTPError", str(exc.detail), current_request_id()), exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error", exc_info=exc)
        return ok(error_body("InternalError", "internal server error; the log has this request id",
                             current_request_id()), 500)

    app.add_exception_handler(EngramError, known)
    app.add_exception_handler(ServerError, known)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, unexpected)


class McpGate:
    """/mcp: the request's key checked like any other, and the user it acts for fixed for the connection."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app, self.gate = app, gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        try:
            caller = self.gate.caller(headers, (scope.get("client") or ("?",))[0])
            asked = headers.get("x-engram-user")
            if caller.user_id is None and asked is not None:
                caller = replace(caller, user_id=Owner(user_id=asked).user_id, admin=False)
            elif asked is not None:
                caller.user(asked)  # Forbidden when the key is pinned to someone else
        except (EngramError, ServerError) as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope[CALLER_KEY] = caller
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, tenants: Tenants | None = None) -> FastAPI:
    """The server over `settings` (its home holds the keys database and every tenant's store)."""
    from engram import __version__

    tenants = tenants or Tenants(settings)
    keys = KeyStore(settings.home / "keys.db")
    web = WebSessions(settings.home / "keys.db")
    gate = Gate(keys, RateLimiter(settings.server_rate_limit, settings.server_rate_burst), settings.server_keys)
    mcp = build_mcp(tenants, caller_over_http)
    mcp_app = mcp.streamable_http_app(stateless_http=True, json_response=True, host="0.0.0.0")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_warm, tenants.embedder)
        app.state.warm.set()
        async with mcp.session_manager.run():
            try:
                yield
            finally:  # uvicorn has finished the requests in flight; now the chat agents' saves, then the stores
                await anyio.to_thread.run_sync(tenants.close)
                keys.close()
                web.close()

    app = FastAPI(title="engram", version=__version__, lifespan=lifespan,
                  description="Long-term memory for LLM apps: Mem0's REST paths, Mem0's MemoryClient paths, "
                              "engram's own, and MCP at /mcp.")
    app.state.tenants, app.state.keys, app.state.gate, app.state.web = tenants, keys, gate, web
    app.state.warm = threading.Event()
    _handlers(app)
    from fastapi.staticfiles import StaticFiles

    from engram.server import routes_client, routes_engram, routes_graph, routes_mem0, routes_web

    for module in (routes_mem0, routes_client, routes_engram, routes_graph, routes_web):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=routes_web.STATIC), name="static")
    for route in mcp_app.routes:
        if isinstance(route, Route) and route.path == "/mcp":
            app.router.routes.append(Route("/mcp", endpoint=McpGate(route.endpoint, gate), include_in_schema=False))
    app.add_middleware(BodyLimit, limit=settings.server_max_body, reject=error_response)
    app.add_middleware(SameOrigin, reject=error_response)
    app.add_middleware(routes_web.PageHeaders)
    app.add_middleware(RequestIds)
    return app


def _warm(embedder: Any) -> None:
    embedder.embed(["warm up"])  # the first request should not pay for loading the model


def app_from_environment() -> FastAPI:
    """uvicorn's factory (`engram serve` starts each worker with it): settings from ENGRAM_* and the config file."""
    return create_app(Settings.load())
