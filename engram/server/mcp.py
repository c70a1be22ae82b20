"""engram over MCP (the official `mcp` SDK): OpenMemory's tools (add_memories, search_memory, list_memories,
delete_memories, delete_all_memories) plus get_memory, update_memory, memory_history, revert, and the graph's
list_entities and explore_entity.

The user is never a tool argument: over stdio it is the one `engram mcp --user` names; over streamable HTTP
(/mcp in `engram serve`) it is the key's pinned user, or for a key of the whole tenant the connection's
`X-Engram-User` header. Each tool is the library call the REST route makes, with the same ownership checks.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from engram.errors import EngramError
from engram.server.caller import Caller
from engram.server.errors import ServerError

if TYPE_CHECKING:
    from engram.memory import Memory
    from engram.server.tenancy import Tenants

__all__ = ["CALLER_KEY", "TOOLS", "build_mcp"]

CALLER_KEY = "engram.caller"  # where the HTTP gate leaves the connection's Caller in the ASGI scope
TOOLS = ("add_memories", "search_memory", "list_memories", "delete_memories", "delete_all_memories", "get_memory",
         "update_memory", "memory_history", "revert", "list_entities", "explore_entity")
_INSTRUCTIONS = ("Long-term memory of the user you are talking with. Search it before answering questions about "
                 "the user; add what the user says about themselves, their preferences and their plans.")


def caller_over_http(ctx: Context) -> Caller:
    """The Caller the /mcp gate checked for this HTTP request."""
    request = ctx.request_context.request
    scope: MutableMapping[str, Any] | None = getattr(request, "scope", None)
    if scope is None or CALLER_KEY not in scope:
        raise ToolError("this connection has no checked caller")
    return scope[CALLER_KEY]


def build_mcp(tenants: Tenants, who: Callable[[Context], Caller]) -> MCPServer:
    """An MCP server whose tools act for `who(ctx)`: a Caller pinned to one user."""
    server: MCPServer = MCPServer("engram", instructions=_INSTRUCTIONS)

    def run(ctx: Context, action: Callable[[Caller, Memory, str], Any]) -> Any:
        caller = who(ctx)
        if caller.user_id is None:
            raise ToolError("this connection names no user: use a key pinned to a user, or send X-Engram-User")
        try:
            return action(caller, tenants.memory(caller.tenant), caller.user_id)
        except (EngramError, ServerError) as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from None

    @server.tool()
    def add_memories(text: str, ctx: Context) -> dict[str, Any]:
        """Remember what `text` says about the user (facts are extracted and reconciled with what is known)."""
        return run(ctx, lambda c, m, u: m.add(text, user_id=u, infer=True))

    @server.tool()
    def search_memory(query: str, ctx: Context) -> dict[str, Any]:
        """The user's memories most relevant to `query`, best first."""
        return run(ctx, lambda c, m, u: m.search(query, user_id=u))

    @server.tool()
    def list_memories(ctx: Context) -> dict[str, Any]:
        """All the user's current memories, newest first."""
        return run(ctx, lambda c, m, u: m.get_all(user_id=u))

    @server.tool()
    def delete_memories(memory_ids: list[str], ctx: Context) -> dict[str, Any]:
        """Delete the user's memories with these ids (all of them are checked before any is deleted)."""
        def delete(c: Caller, m: Memory, u: str) -> dict[str, Any]:
            owned = [c.owns(m, memory_id) for memory_id in memory_ids]
            return {"results": [m.delete(memory_id) for memory_id in owned]}
        return run(ctx, delete)

    @server.tool()
    def delete_all_memories(ctx: Context) -> dict[str, Any]:
        """Delete every memory of the user (revert the returned batch_id to undo)."""
        return run(ctx, lambda c, m, u: m.delete_all(user_id=u))

    @server.tool()
    def get_memory(memory_id: str, ctx: Context) -> dict[str, Any]:
        """One of the user's memories by id."""
        return run(ctx, lambda c, m, u: m.get(c.owns(m, memory_id), strict=True))

    @server.tool()
    def update_memory(memory_id: str, text: str, ctx: Context) -> dict[str, Any]:
        """Change the text of one of the user's memories (the old text stays in its history)."""
        return run(ctx, lambda c, m, u: m.update(c.owns(m, memory_id), text=text))

    @server.tool()
    def memory_history(memory_id: str, ctx: Context) -> dict[str, Any]:
        """Every change of one of the user's memories, oldest first."""
        return run(ctx, lambda c, m, u: {"history": m.history(c.owns(m, memory_id), strict=True)})

    @server.tool()
    def revert(batch_id: str, ctx: Context) -> dict[str, Any]:
        """Undo a whole add or delete_all of the user by its batch_id."""
        return run(ctx, lambda c, m, u: m.revert(c.owns_batch(m, batch_id)))

    @server.tool()
    def list_entities(ctx: Context) -> dict[str, Any]:
        """The people, places, organisations and dates the user's memories name, most named first."""
        return run(ctx, lambda c, m, u: m.entities(user_id=u))

    @server.tool()
    def explore_entity(name: str, ctx: Context, hops: int = 2) -> dict[str, Any]:
        """One entity the user's memories name (by name or alias): the entities within `hops` relations of it
        (0 to 5), the relations between them and the memories they come from."""
        return run(ctx, lambda c, m, u: m.related(name, user_id=u, hops=hops))

    return server
