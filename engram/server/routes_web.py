"""The web memory browser: its page at `/` (static files, no build step), sign-in with a key for a session cookie,
and the reads the page needs beyond the Mem0 paths (users, a page of memories, a memory's versions, search with
each score taken apart, import with progress). Every route takes its caller exactly as the other routes do."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from engram.errors import EngramError, NotFound
from engram.inputs import MAX_SEARCH_LIMIT
from engram.private import make_dirs
from engram.server import browse
from engram.server.deps import Served, ok, served
from engram.server.errors import ERROR_RESPONSES, Unauthorized, error_body
from engram.server.limits import ASGIApp, Receive, Scope, Send
from engram.server.models import SignInBody, WebSearchBody
from engram.server.request_ids import current_request_id
from engram.server.web_sessions import COOKIE, LIFETIME
from engram.stores.base import Criteria, user_stats
from engram.types import Scope as Owner

__all__ = ["STATIC", "PageHeaders", "router"]

STATIC = Path(__file__).parent / "static"
router = APIRouter(tags=["web page"], responses=ERROR_RESPONSES)
Caller = Annotated[Served, Depends(served)]
_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_IMPORT_SLICE = 100  # items written between two progress lines


class PageHeaders:
    """The page and its files get a strict Content-Security-Policy (scripts from this server only, nothing inline)
    and are never framed. (Only them: /docs loads its viewer from a CDN.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith("/static/")):
            await self.app(scope, receive, send)
            return

        async def headed(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", _POLICY.encode()),
                                      (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                                      (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, headed)  # type: ignore[arg-type]


@router.get("/", include_in_schema=False)
async def page() -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/web/session", summary="Who the page acts as: a session, the open loopback mode, or nobody yet")
def session(request: Request) -> Response:
    state = request.app.state
    found = state.web.find(request.cookies[COOKIE]) if request.cookies.get(COOKIE) else None
    if found is not None:
        caller, csrf = found
        return ok({"signed_in": True, "open": False, "tenant": caller.tenant, "user_id": caller.user_id,
                   "admin": caller.admin, "key_id": caller.key_id, "csrf": csrf})
    try:
        state.gate.caller({"host": request.headers.get("host", "")}, "web")  # no key: the open mode answers or not
    except Unauthorized:
        return ok({"signed_in": False, "open": False})
    return ok({"signed_in": False, "open": True, "tenant": None, "user_id": None, "admin": True, "csrf": None})


@router.post("/web/session", summary="Sign in with a key: an HttpOnly session cookie and a CSRF token")
def sign_in(body: SignInBody, request: Request) -> Response:
    state = request.app.state
    state.gate.limiter.check(f"sign-in:{request.client.host if request.client else '?'}")
    key = state.keys.check(body.key)
    if key is None:
        raise Unauthorized("this key is unknown or revoked")
    token, csrf = state.web.open(key)
    response = ok({"signed_in": True, "open": False, "tenant": key.tenant, "user_id": key.user_id,
                   "admin": key.admin, "key_id": key.id, "csrf": csrf})
    response.set_cookie(COOKIE, token, max_age=LIFETIME, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.delete("/web/session", summary="Sign out: the session ends on the server and its cookie is cleared")
def sign_out(s: Caller, request: Request) -> Response:
    del s  # the session's CSRF token was checked: a foreign page cannot sign someone out
    if request.cookies.get(COOKIE):
        request.app.state.web.end(request.cookies[COOKIE])
    response = ok({"signed_in": False})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/web/users", summary="The users the caller may see, with their counts and last change")
def users(s: Caller) -> Response:
    store = s.memory.store
    pinned = s.caller.user_id
    stats = store.user_stats() if pinned is None else user_stats(store.owned(pinned))
    return ok({"results": browse.users(stats)})


Page = Annotated[int, Query(ge=1, le=100_000)]
PageSize = Annotated[int, Query(ge=1, le=500)]
UserQuery = Annotated[str, Query(min_length=1)]
ListState = Literal["current", "all"]


@router.get("/web/memories", summary="A page of a user's memories, newest first: current ones, or all with their state")
def memories(s: Caller, user_id: UserQuery, state: ListState = "current", category: str | None = None,
             page: Page = 1, page_size: PageSize = 50) -> Response:
    wanted = page * page_size + 1  # one past the page says whether there is a next one
    return ok(browse.page(_listed(s, s.caller.user(user_id), state, category, wanted), page, page_size))


@router.get("/web/memories/summary", summary="How many memories a user has (current or all) and their categories")
def memories_summary(s: Caller, user_id: UserQuery, state: ListState = "current") -> Response:
    return ok(browse.summary(_listed(s, s.caller.user(user_id), state, None, None)))


def _listed(s: Served, user: str, state: str, category: str | None, limit: int | None) -> list[Any]:
    """Current records through the store's own query (only as many as needed); every memory's latest version
    (closed ones too) from every version the user owns."""
    owner = Owner(user_id=user)  # checked as every owner id is
    categories = () if category is None else (category,)
    if state == "current":
        return s.memory.store.select(Criteria(owner, categories=categories), limit)
    found = browse.latest_versions(s.memory.store.owned(user))
    return [r for r in found if not categories or set(categories) & set(r.categories)][:limit]


@router.get("/web/memories/{memory_id}", summary="A memory: its versions, oldest first, and its history")
def memory_page(memory_id: str, s: Caller) -> Response:
    found = s.caller.owns(s.memory, memory_id)
    versions = browse.versions_of(s.memory.store.versions(found))
    if not versions:
        raise NotFound(f"no memory with id {memory_id!r}")
    return ok({"memory": versions[-1], "versions": versions, "history": s.memory.history(found, strict=True)})


@router.post("/web/search", summary="Search a user's memories, each hit with its score taken apart")
def search(body: WebSearchBody, s: Caller) -> Response:
    return ok(s.memory.search(body.query, user_id=s.caller.user(body.user_id), limit=min(body.limit, MAX_SEARCH_LIMIT),
                              show_expired=body.show_expired, explain=True))


@router.post("/web/import", summary="Import a JSONL or LoCoMo file (the body); progress as JSON lines",
             responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
async def import_file(request: Request, s: Caller, user_id: str | None = None,
                      format: Literal["jsonl", "locomo"] = "jsonl") -> Response:
    from engram.transfer import read_jsonl, read_locomo

    user = s.caller.user(user_id)
    body = await request.body()
    home = make_dirs(request.app.state.tenants.settings.home / "uploads")
    handle, name = tempfile.mkstemp(dir=home, suffix=".upload")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
        items = (read_jsonl if format == "jsonl" else read_locomo)(name, user_id=user)  # all checked first
    finally:
        os.unlink(name)
    return StreamingResponse(_imported(s, items), media_type="application/x-ndjson")


def _imported(s: Served, items: list[Any]) -> Iterator[str]:
    from engram.transfer import import_items

    counts: dict[str, int] = {}
    for start in range(0, len(items), _IMPORT_SLICE):
        try:
            done = import_items(s.memory, items[start:start + _IMPORT_SLICE])
        except EngramError as exc:
            yield json.dumps(error_body(type(exc).__name__, str(exc), current_request_id())) + "\n"
            return
        counts = {op: counts.get(op, 0) + n for op, n in done.items()}
        yield json.dumps({"done": min(start + _IMPORT_SLICE, len(items)), "total": len(items)}) + "\n"
    yield json.dumps({"done": len(items), "total": len(items), "counts": counts, "finished": True}) + "\n"
