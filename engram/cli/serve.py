"""`engram serve` (REST and MCP over HTTP, uvicorn) and `engram mcp` (MCP over stdio for one user)."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Any

import typer
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import Home, load_settings, note_new_store
from engram.cli.output import stderr
from engram.errors import ConfigError

__all__ = ["is_loopback", "register"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def register(app: typer.Typer) -> None:
    app.command("serve", cls=EngramCommand)(serve)
    app.command("mcp", cls=EngramCommand)(mcp)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(ctx: typer.Context,
          host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
          workers: Annotated[int, typer.Option(help="Worker processes (all share the same store).")] = 1,
          log_level: Annotated[str, typer.Option(help=f"One of {', '.join(_LOG_LEVELS)}.")] = "info",
          home: Home = None) -> None:
    """Serve memories over HTTP: Mem0's REST paths, Mem0's MemoryClient paths, engram's own, MCP at /mcp and
    the OpenAPI documentation at /docs. Without keys it listens only on loopback."""
    import uvicorn

    from engram.server.keys import KeyStore

    if workers < 1 or not 0 < port < 65536 or log_level not in _LOG_LEVELS:
        raise ConfigError("--workers must be at least 1, --port in 1..65535, "
                          f"--log-level one of {', '.join(_LOG_LEVELS)}")
    chosen = load_settings(ctx, home)
    note_new_store(chosen)
    keyed = KeyStore(chosen.home / "keys.db").any_active()
    if not is_loopback(host):
        if not keyed:
            raise ConfigError(f"refusing to listen on {host} without keys: anyone who reaches it could read every "
                              "memory. Make a key first (engram keys create --tenant NAME), or listen on 127.0.0.1")
        os.environ["ENGRAM_SERVER_KEYS"] = "required"  # revoking every key must not open it up
    elif not keyed and chosen.server_keys == "auto":
        stderr().print(f"note: no keys in {escape(str(chosen.home / 'keys.db'))}: serving without authentication, "
                       "on loopback only (engram keys create --tenant NAME to require keys)", highlight=False)
    os.environ["ENGRAM_HOME"] = str(chosen.home)  # every worker loads the same settings
    uvicorn.run("engram.server.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_config=log_config(log_level.upper()), access_log=False, timeout_graceful_shutdown=30,
                server_header=False)


def log_config(level: str) -> dict[str, Any]:
    """logging's dictConfig for uvicorn and every worker: one line per record, with its request id."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "engram.server.request_ids.RequestIdFilter"}},
        "formatters": {"line": {
            "format": "%(asctime)s %(levelname)s %(process)d %(name)s [%(request_id)s] %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": "line",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {"uvicorn": {"level": level}, "uvicorn.error": {"level": level}},
    }


def mcp(ctx: typer.Context,
        user: Annotated[str, typer.Option("--user", "-u", help="The user every tool acts for.")],
        tenant: Annotated[str | None, typer.Option(help="The tenant's store (default: the home's own).")] = None,
        home: Home = None) -> None:
    """Serve MCP over stdio for one user (for Claude Desktop, Cursor or any MCP client that starts a command)."""
    from engram.server.caller import Caller
    from engram.server.keys import check_tenant
    from engram.server.mcp import build_mcp
    from engram.server.tenancy import Tenants
    from engram.types import Scope

    caller = Caller(None if tenant is None else check_tenant(tenant), user_id=Scope(user_id=user).user_id)
    tenants = Tenants(load_settings(ctx, home))
    try:
        build_mcp(tenants, lambda _ctx: caller).run("stdio")
    finally:
        tenants.close()
