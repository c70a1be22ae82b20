"""`engram chat` and `engram profile`: the memory agent in a terminal."""

from __future__ import annotations

import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import Home, open_memory
from engram.cli.output import SHORT_ID, event_line, memories_table, stdout
from engram.errors import EngramError

if TYPE_CHECKING:
    from engram.agent import Agent
    from engram.memory import Memory
    from engram.types import Scope

__all__ = ["register"]

HELP = "/memories  /forget ID  /history ID  /profile  /quit"
RequiredUser = Annotated[str, typer.Option("--user", "-u", help="User id.")]


def register(app: typer.Typer) -> None:
    app.command("chat", cls=EngramCommand)(chat)
    app.command("profile", cls=EngramCommand)(profile)


def chat(ctx: typer.Context, user: RequiredUser,
         session: Annotated[str | None, typer.Option("--session", "-s", help="Resume this session.")] = None,
         home: Home = None) -> None:
    """Chat with an assistant that remembers USER across sessions (offline: it shows what it recalls)."""
    from engram.agent import Agent

    console = stdout()
    session_id = session or uuid.uuid4().hex[:12]
    with open_memory(ctx, home, embeds=True) as memory, Agent(memory) as agent:
        mode = memory.settings.llm_model or "no LLM configured: replies show what memory search recalls"
        earlier = len(agent.sessions.turns(session_id, _scope(user)))
        console.print(f"[bold]engram chat[/bold] user [cyan]{escape(user)}[/cyan] session [cyan]{session_id}[/cyan]"
                      f" ({escape(mode)}){f', {earlier} earlier turns' if earlier else ''}\n[dim]{HELP}[/dim]")
        saves: list[Future] = []
        while True:
            _report_saves(console, saves)
            try:
                text = console.input("[bold cyan]you ›[/bold cyan] ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not text:
                continue
            if text.startswith("/"):
                if not _command(console, agent, user, text):
                    break
                continue
            try:
                reply = agent.reply(user, text, session_id)
            except EngramError as exc:
                console.print(f"[red]error:[/red] {escape(str(exc))}")
                continue
            console.print(f"[bold green]engram ›[/bold green] {escape(reply.response)}")
            if reply.memories_used:
                used = "; ".join(escape(m["memory"]) for m in reply.memories_used[:5])
                console.print(f"[dim]used: {used}[/dim]")
            saves.append(reply.saved)
        with console.status("saving what is left of this session…"):
            saves.append(agent.end_session(user, session_id))
            for future in saves:
                future.exception()  # wait; failures are reported below, never dropped
        _report_saves(console, saves)
        console.print(f"[dim]resume with: engram chat --user {escape(user)} --session {session_id}[/dim]")


def profile(ctx: typer.Context, user: RequiredUser, home: Home = None) -> None:
    """The short profile of USER's stable facts that the chat agent is given on every turn."""
    from engram.llm import LLM
    from engram.profile import Profiles

    with open_memory(ctx, home) as memory:
        llm = LLM(memory.settings) if memory.settings.llm_model else None
        stdout().print(escape(Profiles(memory, llm).get(user)))


def _command(console: Console, agent: Agent, user: str, text: str) -> bool:
    """Run a /command; False means quit."""
    name, _, arg = text.partition(" ")
    arg = arg.strip()
    memory = agent.memory
    try:
        if name in ("/quit", "/exit"):
            return False
        if name == "/memories":
            console.print(memories_table(memory.get_all(user_id=user)["results"], scores=False))
        elif name == "/forget" and arg:
            console.print(escape(memory.delete(_own(memory, user, arg))["message"]))
        elif name == "/history" and arg:
            for event in memory.history(_own(memory, user, arg)):
                console.print(f"{event['created_at'][:16]}  {event['event']:<7} {escape(event['old_memory'] or '')}"
                              f" → {escape(event['new_memory'] or '')}", highlight=False)
        elif name == "/profile":
            console.print(escape(agent.profiles.get(user)))
        else:
            console.print(f"[dim]{HELP}[/dim]")
    except EngramError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
    return True


def _own(memory: Memory, user: str, given: str) -> str:
    """The whole id of the chatting user's memory that `given` is (or is the start of, as ids are shown):
    chat commands act on that user's memories only, and never name another user's."""
    from engram.errors import InvalidInput, NotFound
    from engram.inputs import check_id

    check_id(given)
    mine = [found for found in memory.store.ids_with_prefix(given, limit=50)
            if (record := memory.store.get(found)) is not None and record.user_id == user]
    if given in mine:
        return given
    if len(given) >= SHORT_ID and len(mine) == 1:
        return mine[0]
    if len(given) >= SHORT_ID and mine:
        raise InvalidInput(f"{given!r} is the start of {len(mine)} of your memory ids: give more of it")
    raise NotFound(f"no memory {given!r} for {user}")


def _report_saves(console: Console, saves: list[Future]) -> None:
    for future in [f for f in saves if f.done()]:
        saves.remove(future)
        if future.exception() is not None:
            console.print(f"[red]saving failed:[/red] {escape(str(future.exception()))} "
                          "[dim](kept; retried later)[/dim]")
        elif future.result():
            for row in future.result()["results"]:
                console.print("[dim]saved:[/dim] " + event_line(row), highlight=False)


def _scope(user: str) -> Scope:
    from engram.types import Scope

    return Scope(user_id=user)
