"""The paths Mem0's Python `MemoryClient` calls (mem0ai 2.x), so `MemoryClient(api_key=KEY, host=URL)` works
unchanged for add, search, get_all, get, update, delete, delete_all and history. The client sends its key as
`Authorization: Token KEY` and the scope in `filters` (or, for add and delete_all, at the top level)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from engram.inputs import MAX_LIST_LIMIT
from engram.server.deps import Served, messages_of, ok, served
from engram.server.errors import ERROR_RESPONSES
from engram.server.models import (
    AddResult,
    ClientAddBody,
    ClientListBody,
    ClientSearchBody,
    DeleteAllResult,
    HistoryRow,
    MemoryOut,
    PageResult,
    SearchResult,
    UpdateBody,
    WriteResult,
)
from engram.server.routes_mem0 import update
from engram.types import SCOPE_FIELDS

__all__ = ["lift_scope", "router"]

router = APIRouter(tags=["memories (Mem0 MemoryClient paths)"], responses=ERROR_RESPONSES)
Caller = Annotated[Served, Depends(served)]
ScopeQuery = Annotated[str | None, Query()]
_COUNTED = 10_000


def lift_scope(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Mem0's v3 filters may name the scope inside a top-level AND (`{"AND": [{"user_id": "u"}, ...]}`); the
    library reads it at the top. Plain equalities on scope keys there are moved up; anything else stays."""
    if not filters or not isinstance(filters.get("AND"), list) or any(k in filters for k in SCOPE_FIELDS):
        return filters
    lifted: dict[str, Any] = {}
    rest = []
    for term in filters["AND"]:
        if (isinstance(term, dict) and len(term) == 1 and next(iter(term)) in SCOPE_FIELDS
                and isinstance(next(iter(term.values())), (str, int)) and next(iter(term)) not in lifted):
            lifted.update(term)
        else:
            rest.append(term)
    others = {k: v for k, v in filters.items() if k != "AND"}
    return {**others, **lifted, **({"AND": rest} if rest else {})}


@router.get("/v1/ping/", summary="Check a key (MemoryClient calls it first)")
def ping(s: Caller) -> Response:
    # MemoryClient refuses to start without an org and a project: the tenant is both
    project = s.caller.tenant or "default"
    return ok({"status": "ok", "tenant": s.caller.tenant, "user_id": s.caller.user_id, "org_id": project,
               "project_id": project, "user_email": None})


@router.post("/v3/memories/add/", summary="Remember messages", responses={200: {"model": AddResult}})
def add(body: ClientAddBody, s: Caller) -> Response:
    return ok(s.memory.add(
        messages_of(body.messages), user_id=s.caller.user(body.user_id), agent_id=body.agent_id, run_id=body.run_id,
        metadata=body.metadata, infer=body.infer, filters=s.caller.filters(lift_scope(body.filters)),
        timestamp=body.timestamp, expiration_date=body.expiration_date, categories=body.categories))


@router.post("/v3/memories/", summary="List memories, a page at a time", responses={200: {"model": PageResult}})
def get_all(body: ClientListBody, s: Caller, request: Request, page: Annotated[int, Query(ge=1)] = 1,
            page_size: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """`count` is how many memories the scope has, counted up to _COUNTED (or to the end of the page asked)."""
    start = (page - 1) * page_size
    filters = s.caller.filters(lift_scope(body.filters))
    found = s.memory.get_all(user_id=s.caller.user(None), filters=filters, categories=body.categories,
                             show_expired=body.show_expired,
                             limit=min(MAX_LIST_LIMIT, max(_COUNTED, start + page_size + 1)))["results"]

    def link(to: int) -> str:
        return str(request.url.include_query_params(page=to, page_size=page_size))

    return ok({"count": len(found), "next": link(page + 1) if start + page_size < len(found) else None,
               "previous": link(page - 1) if page > 1 else None, "results": found[start:start + page_size]})


@router.post("/v3/memories/search/", summary="Search memories", responses={200: {"model": SearchResult}})
def search(body: ClientSearchBody, s: Caller) -> Response:
    return ok(s.memory.search(body.query, user_id=s.caller.user(None),
                              filters=s.caller.filters(lift_scope(body.filters)), top_k=body.top_k,
                              threshold=body.threshold, rerank=body.rerank,
                              categories=body.categories, show_expired=body.show_expired))


@router.get("/v1/memories/{memory_id}/", summary="One memory", responses={200: {"model": MemoryOut}})
def get(memory_id: str, s: Caller) -> Response:
    return ok(s.memory.get(s.caller.owns(s.memory, memory_id), strict=True))


@router.put("/v1/memories/{memory_id}/", summary="Change a memory", responses={200: {"model": WriteResult}})
def put(memory_id: str, body: UpdateBody, s: Caller) -> Response:
    return ok(update(s, memory_id, body))


@router.delete("/v1/memories/{memory_id}/", summary="Delete a memory", responses={200: {"model": WriteResult}})
def delete(memory_id: str, s: Caller, delete_linked: bool = False) -> Response:
    del delete_linked  # engram's superseded versions are history already: nothing else resurfaces
    return ok(s.memory.delete(s.caller.owns(s.memory, memory_id)))


@router.delete("/v1/memories/", summary="Delete a scope's memories", responses={200: {"model": DeleteAllResult}})
def delete_all(s: Caller, user_id: ScopeQuery = None, agent_id: ScopeQuery = None,
               run_id: ScopeQuery = None) -> Response:
    return ok(s.memory.delete_all(user_id=s.caller.user(user_id), agent_id=agent_id, run_id=run_id))


@router.get("/v1/memories/{memory_id}/history/", summary="Every change of a memory",
            responses={200: {"model": list[HistoryRow]}})
def history(memory_id: str, s: Caller) -> Response:
    return ok(s.memory.history(s.caller.owns(s.memory, memory_id), strict=True))
