"""What every route takes: the caller and its tenant's Memory (FastAPI dependencies), and a plain JSON reply."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from engram.server.caller import Caller

if TYPE_CHECKING:
    from engram.memory import Memory
    from engram.server.models import Message

__all__ = ["Served", "messages_of", "ok", "served"]


@dataclass(frozen=True)
class Served:
    caller: Caller
    memory: Memory


async def served(request: Request) -> Served:
    """The request's caller (its key, or its web session, checked; its rate counted) and its tenant's Memory."""
    state = request.app.state
    caller = state.web.caller(request.method, request.headers, request.cookies)
    if caller is None:
        caller = state.gate.caller(request.headers, request.client.host if request.client else None)
    else:
        state.gate.limiter.check(caller.key_id)
    return Served(caller, state.tenants.memory(caller.tenant))


class _JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def ok(content: Any, status: int = 200) -> Response:
    """The library's result as it is (no re-validation: the OpenAPI document describes it)."""
    return _JSON(content, status_code=status)


def messages_of(given: str | Message | list[Message]) -> Any:
    """A body's messages as the library takes them."""
    if isinstance(given, str):
        return given
    if isinstance(given, list):
        return [m.model_dump() for m in given]
    return given.model_dump()
