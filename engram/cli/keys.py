"""`engram keys create / list / revoke`: the server's API keys, in `<home>/keys.db`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from engram.cli.boundary import EngramCommand
from engram.cli.context import AsJson, Home, load_settings
from engram.cli.output import print_json, stderr, stdout

if TYPE_CHECKING:
    from engram.server.keys import KeyStore

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys of `engram serve`: one tenant each, optionally pinned to a user.",
                       no_args_is_help=True)
    keys.command("create", cls=EngramCommand)(create)
    keys.command("list", cls=EngramCommand)(list_)
    keys.command("revoke", cls=EngramCommand)(revoke)
    app.add_typer(keys, name="keys")


def _store(ctx: typer.Context, home: Path | None) -> KeyStore:
    from engram.server.keys import KeyStore

    return KeyStore(load_settings(ctx, home).home / "keys.db")


def create(ctx: typer.Context,
           tenant: Annotated[str, typer.Option(help="The tenant (its own store): lowercase letters, digits, - and _.")],
           user: Annotated[str | None, typer.Option("--user", "-u", help="Pin the key to this user.")] = None,
           admin: Annotated[bool, typer.Option("--admin", help="May manage the tenant's keys and reset it.")] = False,
           label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
           home: Home = None) -> None:
    """Make a key and print it (only this once: engram keeps only its hash)."""
    store = _store(ctx, home)
    token, key = store.create(tenant, user, admin=admin, label=label)
    stdout().print(token, highlight=False, soft_wrap=True)
    pinned = f", pinned to user {escape(key.user_id)}" if key.user_id else ""
    stderr().print(f"[dim]key {key.id} for tenant {escape(key.tenant)}{pinned}{', admin' if key.admin else ''}: "
                   "shown once, store it now[/dim]", highlight=False)


def list_(ctx: typer.Context, tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
          as_json: AsJson = False, home: Home = None) -> None:
    """The keys (never the keys themselves: their ids, tenants, users and state)."""
    from engram.types import iso

    store = _store(ctx, home)
    found = store.list(tenant)
    if as_json:
        print_json([k.to_dict() for k in found])
        return
    if not found:
        stdout().print("[dim]no keys[/dim]")
        return
    table = Table("id", "tenant", "user", "admin", "label", "created", "revoked")
    for k in found:
        table.add_row(k.id, escape(k.tenant), escape(k.user_id or "any"), "yes" if k.admin else "",
                      escape(k.label or ""), (iso(k.created_at) or "")[:19], (iso(k.revoked_at) or "")[:19])
    stdout().print(table)


def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (keys list).")],
           home: Home = None) -> None:
    """Revoke a key: running servers refuse it within two seconds."""
    store = _store(ctx, home)
    key = store.revoke(key_id)
    stdout().print(f"revoked key {key.id} of tenant {escape(key.tenant)}", highlight=False)
