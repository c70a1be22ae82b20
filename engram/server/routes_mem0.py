"""Mem0's self-hosted REST paths (its server/main.py), with the library's own result shapes and engram's extra
fields (categories, dry_run, as_of, expected_version, ...). A memory another user owns is 404 to a pinned key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from engram.server.deps import Served, messages_of, ok, served
from engram.server.errors import ERROR_RESPONSES
from engram.server.models import (
    AddBody,
    AddResult,
    DeleteAllResult,
    HistoryRow,
    ListResult,
    MemoryOut,
    SearchBody,
    SearchResult,
    UpdateBody,
    WriteResult,
)

__all__ = ["router"]

router = APIRouter(tags=["memories (Mem0 self-hosted paths)"], responses=ERROR_RESPONSES)
Caller = Annotated[Served, Depends(served)]
ScopeQuery = Annotated[str | None, Query()]


@router.post("/memories", summary="Remember messages", responses={200: {"model": AddResult}})
def add_memories(body: AddBody, s: Caller) -> Response:
    return ok(s.memory.add(
        messages_of(body.messages), user_id=s.caller.user(body.user_id), agent_id=body.agent_id, run_id=body.run_id,
        metadata=body.metadata, infer=body.infer, timestamp=body.timestamp, expiration_date=body.expiration_date,
        categories=body.categories, filters=s.caller.filters(body.filters), dry_run=body.dry_run))


@router.get("/memories", summary="List a scope's memories", responses={200: {"model": ListResult}})
def list_memories(s: Caller, user_id: ScopeQuery = None, agent_id: ScopeQuery = None, run_id: ScopeQuery = None,
                  limit: int | None = None, categories: Annotated[list[str] | None, Query()] = None,
                  as_of: str | None = None, show_expired: bool = False) -> Response:
    return ok(s.memory.get_all(user_id=s.caller.user(user_id), agent_id=agent_id, run_id=run_id, limit=limit,
                               categories=categories, as_of=as_of, show_expired=show_expired))


@router.get("/memories/{memory_id}", summary="One memory", responses={200: {"model": MemoryOut}})
def get_memory(memory_id: str, s: Caller) -> Response:
    return ok(s.memory.get(s.caller.owns(s.memory, memory_id), strict=True))


@router.put("/memories/{memory_id}", summary="Change a memory", responses={200: {"model": WriteResult}})
def update_memory(memory_id: str, body: UpdateBody, s: Caller) -> Response:
    return ok(update(s, memory_id, body))


@router.delete("/memories/{memory_id}", summary="Delete a memory (kept in its history)",
               responses={200: {"model": WriteResult}})
def delete_memory(memory_id: str, s: Caller, expected_version: int | None = None) -> Response:
    return ok(s.memory.delete(s.caller.owns(s.memory, memory_id), expected_version=expected_version))


@router.get("/memories/{memory_id}/history", summary="Every change of a memory",
            responses={200: {"model": list[HistoryRow]}})
def memory_history(memory_id: str, s: Caller) -> Response:
    return ok(s.memory.history(s.caller.owns(s.memory, memory_id), strict=True))


@router.post("/search", summary="Search memories", responses={200: {"model": SearchResult}})
def search_memories(body: SearchBody, s: Caller) -> Response:
    return ok(s.memory.search(
        body.query, user_id=s.caller.user(body.user_id), agent_id=body.agent_id, run_id=body.run_id, limit=body.limit,
        top_k=body.top_k, filters=s.caller.filters(body.filters), threshold=body.threshold, categories=body.categories,
        as_of=body.as_of, show_expired=body.show_expired, rerank=body.rerank))


@router.delete("/memories", summary="Delete a scope's memories", responses={200: {"model": DeleteAllResult}})
def delete_all_memories(s: Caller, user_id: ScopeQuery = None, agent_id: ScopeQuery = None,
                        run_id: ScopeQuery = None) -> Response:
    return ok(s.memory.delete_all(user_id=s.caller.user(user_id), agent_id=agent_id, run_id=run_id))


@router.post("/reset", summary="Erase the tenant's whole store (admin keys)", responses={200: {"model": WriteResult}})
def reset(s: Caller) -> Response:
    s.caller.require_admin("reset")
    s.memory.reset()
    return ok({"message": "All memories reset"})


def update(s: Served, memory_id: str, body: UpdateBody) -> dict[str, Any]:
    """PUT of a memory, the same for Mem0's path and MemoryClient's."""
    changes: dict[str, Any] = {"metadata": body.metadata}
    if "expiration_date" in body.model_fields_set:  # null clears it; left out keeps it
        changes["expiration_date"] = body.expiration_date
    return s.memory.update(s.caller.owns(s.memory, memory_id), text=body.text, data=body.data, timestamp=body.timestamp,
                           expected_version=body.expected_version, **changes)
