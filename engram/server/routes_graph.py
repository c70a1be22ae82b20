"""Graph memory over HTTP: a scope's whole graph, its entities, and one entity's neighbourhood (Memory.graph,
Memory.entities, Memory.related). The web page's graph view reads these same paths with its session; a key
pinned to a user reaches only that user's graph, as on every other path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from engram.server.deps import Served, ok, served
from engram.server.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["graph"], responses=ERROR_RESPONSES)
Caller = Annotated[Served, Depends(served)]
ScopeQuery = Annotated[str | None, Query()]
AsOf = Annotated[str | None, Query(description="As the memories stood then (ISO 8601).")]


@router.get("/v1/graph", summary="A scope's whole graph: its entities with their counts, every relation with the "
            "memory it comes from")
def whole(s: Caller, user_id: ScopeQuery = None, agent_id: ScopeQuery = None, run_id: ScopeQuery = None,
          as_of: AsOf = None) -> Response:
    return ok(s.memory.graph(user_id=s.caller.user(user_id), agent_id=agent_id, run_id=run_id, as_of=as_of))


@router.get("/v1/graph/entities", summary="The entities a scope's memories name, most named first")
def entities(s: Caller, user_id: ScopeQuery = None, agent_id: ScopeQuery = None, run_id: ScopeQuery = None,
             as_of: AsOf = None) -> Response:
    return ok(s.memory.entities(user_id=s.caller.user(user_id), agent_id=agent_id, run_id=run_id, as_of=as_of))


@router.get("/v1/graph/related", summary="One entity's neighbourhood: the entities within `hops` relations, the "
            "relations between them and the memories behind them")
def related(s: Caller, name: Annotated[str, Query(min_length=1, description="A name, alias or short form.")],
            hops: int = 2, user_id: ScopeQuery = None, agent_id: ScopeQuery = None, run_id: ScopeQuery = None,
            as_of: AsOf = None) -> Response:
    return ok(s.memory.related(name, user_id=s.caller.user(user_id), agent_id=agent_id, run_id=run_id, hops=hops,
                               as_of=as_of))
