"""engram's own paths: health and readiness, revert a batch, export, the chat agent, and keys for admin keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from engram.server.caller import Caller as CallerInfo
from engram.server.deps import Served, ok, served
from engram.server.errors import ERROR_RESPONSES, Forbidden, error_body
from engram.server.models import ChatBody, ChatResult, KeyBody, RevertBody, WriteResult
from engram.server.request_ids import current_request_id
from engram.types import Scope

__all__ = ["router"]

router = APIRouter(tags=["engram"], responses=ERROR_RESPONSES)
Caller = Annotated[Served, Depends(served)]
ScopeQuery = Annotated[str | None, Query()]


@router.get("/health", summary="The process answers", tags=["operations"])
async def health() -> Response:
    return ok({"status": "ok"})


@router.get("/ready", summary="The embedder is loaded and the keys database answers", tags=["operations"],
            responses={503: ERROR_RESPONSES[503]})
async def ready(request: Request) -> Response:
    state = request.app.state
    if not state.warm.is_set():
        return ok(error_body("NotReady", "the embedding model is still loading", current_request_id()), 503)
    state.keys.any_active()  # raises StoreError (503) when the keys database cannot be read
    return ok({"status": "ready"})


@router.post("/v1/revert", summary="Undo a whole add or delete_all by its batch id",
             responses={200: {"model": WriteResult}})
def revert(body: RevertBody, s: Caller) -> Response:
    return ok(s.memory.revert(s.caller.owns_batch(s.memory, body.batch_id)))


@router.get("/v1/export", summary="Current memories as JSON lines (a scope's, or the whole tenant's)",
            responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
def export(s: Caller, user_id: ScopeQuery = None, agent_id: ScopeQuery = None, run_id: ScopeQuery = None) -> Response:
    from engram.transfer import current_records

    scope = Scope(s.caller.user(user_id), agent_id, run_id)
    records = list(current_records(s.memory, None if scope.is_empty() else scope))  # read now, inside the request

    def lines() -> Iterator[str]:
        for record in records:
            yield json.dumps(record.to_dict(), ensure_ascii=False) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/v1/chat", summary="One turn with the memory chat agent", responses={200: {"model": ChatResult}})
def chat(body: ChatBody, s: Caller, request: Request) -> Response:
    user = s.caller.user(body.user_id)
    agent = request.app.state.tenants.agent(s.caller.tenant)
    reply = agent.reply(user, body.message, session_id=body.session_id)
    return ok(reply.to_dict())


@router.get("/v1/keys", summary="The tenant's keys (admin keys)", tags=["keys"])
def list_keys(s: Caller, request: Request) -> Response:
    tenant = _key_admin(s.caller)
    return ok({"results": [k.to_dict() for k in request.app.state.keys.list(tenant)]})


@router.post("/v1/keys", summary="A new key of the tenant, shown once (admin keys)", tags=["keys"])
def create_key(body: KeyBody, s: Caller, request: Request) -> Response:
    tenant = _key_admin(s.caller)
    token, key = request.app.state.keys.create(tenant, body.user_id, admin=body.admin, label=body.label)
    return ok({"key": token, **key.to_dict()})


@router.delete("/v1/keys/{key_id}", summary="Revoke a key of the tenant (admin keys)", tags=["keys"])
def revoke_key(key_id: str, s: Caller, request: Request) -> Response:
    tenant = _key_admin(s.caller)
    return ok(request.app.state.keys.revoke(key_id, tenant).to_dict())


def _key_admin(caller: CallerInfo) -> Any:
    caller.require_admin("managing keys")
    if caller.tenant is None:
        raise Forbidden("this server has no keys yet: make the first one with `engram keys create --tenant NAME`")
    return caller.tenant
