"""`engram add / search / list / get / update / delete / history / revert`: one memory at a time."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from engram.cli.boundary import EngramCommand
from engram.cli.context import (
    Agent,
    AsJson,
    Categories,
    Home,
    Run,
    User,
    json_arg,
    open_memory,
    resolve_id,
    scope_text,
)
from engram.cli.output import (
    count,
    event_line,
    memories_table,
    print_json,
    short_id,
    stderr,
    stdout,
    when,
)
from engram.errors import InvalidInput

__all__ = ["register"]

_ID_HELP = "A memory id, or its first 8 or more characters."
MemoryId = Annotated[str, typer.Argument(metavar="ID", help=_ID_HELP)]
BatchId = Annotated[str, typer.Argument(metavar="BATCH",
                                        help="A batch id (add prints it), or its first 8 or more characters.")]


def register(app: typer.Typer) -> None:
    for name, command in (("add", add), ("search", search), ("list", list_), ("get", get), ("update", update),
                          ("delete", delete), ("history", history), ("revert", revert)):
        app.command(name, cls=EngramCommand)(command)


def add(ctx: typer.Context, text: Annotated[str, typer.Argument(metavar="TEXT")],
        user: User = None, agent: Agent = None, run: Run = None,
        metadata: Annotated[str | None, typer.Option(help="Metadata as a JSON object.")] = None,
        category: Categories = None,
        timestamp: Annotated[str | None, typer.Option(help="When this was true (ISO 8601).")] = None,
        infer: Annotated[bool, typer.Option("--infer", help="Extract facts and reconcile them with what is stored "
                                                             "(the LLM if configured, else offline rules).")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
        as_json: AsJson = False, home: Home = None) -> None:
    """Store TEXT (- reads standard input) as a memory, exact duplicates reported as NOOP; or with --infer the
    facts it states."""
    if text == "-":
        text = sys.stdin.read().strip()
        if not text:
            raise InvalidInput("nothing to add: standard input was empty")
    with open_memory(ctx, home, embeds=True) as memory:
        result = memory.add(text, user_id=user, agent_id=agent, run_id=run, metadata=json_arg(metadata, "--metadata"),
                            categories=category or None, timestamp=timestamp, infer=infer, dry_run=dry_run)
    if as_json:
        print_json(result)
        return
    console = stdout()
    for row in result["results"]:
        console.print(event_line(row), highlight=False)
    if not result["results"]:
        console.print("[dim]nothing worth remembering[/dim]")
    if "usage" in result:
        usage = result["usage"]
        console.print(f"[dim]{usage['pipeline']} pipeline: {usage['llm_calls']} LLM call(s), {usage['prompt_tokens']} "
                      f"prompt + {usage['completion_tokens']} completion tokens[/dim]", highlight=False)
    console.print(f"[dim]{'dry run: nothing written' if dry_run else 'batch ' + short_id(result['batch_id'])}[/dim]",
                  highlight=False)


def revert(ctx: typer.Context, batch_id: BatchId, home: Home = None) -> None:
    """Undo a whole add (or delete --all) by its batch id: superseded memories become current again."""
    with open_memory(ctx, home) as memory:
        result = memory.revert(resolve_id(memory, batch_id, "batch"))
    for row in result["results"]:
        stdout().print(f"REVERT {short_id(row['id'])}  {escape(row['previous_memory'] or '∅')} → "
                       f"{escape(row['memory'] or '∅')}", highlight=False)


def search(ctx: typer.Context, query: Annotated[str, typer.Argument(metavar="QUERY")],
           user: User = None, agent: Agent = None, run: Run = None,
           limit: Annotated[int | None, typer.Option("--limit", "-n", help="How many results.")] = None,
           threshold: Annotated[float | None, typer.Option(help="Minimum cosine similarity, 0..1.")] = None,
           filters: Annotated[str | None, typer.Option(help="Metadata filters as JSON.")] = None,
           category: Categories = None,
           as_of: Annotated[str | None, typer.Option("--as-of", help="As things stood then (ISO 8601).")] = None,
           as_json: AsJson = False, home: Home = None) -> None:
    """Memories relevant to QUERY, best first."""
    with open_memory(ctx, home, embeds=True) as memory:
        result = memory.search(query, user_id=user, agent_id=agent, run_id=run, limit=limit, threshold=threshold,
                               filters=json_arg(filters, "--filters"), categories=category or None, as_of=as_of)
    if as_json:
        print_json(result)
        return
    if not result["results"]:
        stdout().print("[dim]no matching memories[/dim]")
        return
    stdout().print(memories_table(result["results"], scores=True))


def list_(ctx: typer.Context, user: User = None, agent: Agent = None, run: Run = None,
          limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many, newest first.")] = 100,
          category: Categories = None, as_json: AsJson = False, home: Home = None) -> None:
    """The current memories of a user, agent or run."""
    with open_memory(ctx, home) as memory:
        result = memory.get_all(user_id=user, agent_id=agent, run_id=run, limit=limit, categories=category or None)
    if as_json:
        print_json(result)
        return
    if not result["results"]:
        stdout().print(f"[dim]no memories for {escape(scope_text(user, agent, run))}[/dim]")
        return
    stdout().print(memories_table(result["results"], scores=False))
    if len(result["results"]) == limit:
        stderr().print(f"[dim]showing the newest {limit}; use --limit for more[/dim]")


def get(ctx: typer.Context, memory_id: MemoryId, as_json: AsJson = False,
        home: Home = None) -> None:
    """One memory by id."""
    with open_memory(ctx, home) as memory:
        record = memory.get(resolve_id(memory, memory_id), strict=True)  # NotFound says when it was deleted
    if as_json:
        print_json(record)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        table.add_row(key, escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))
    stdout().print(table)


def update(ctx: typer.Context, memory_id: MemoryId,
           text: Annotated[str, typer.Argument(metavar="TEXT")],
           metadata: Annotated[str | None, typer.Option(help="Replace metadata (JSON object).")] = None,
           home: Home = None) -> None:
    """Replace a memory's text; the old version stays in its history."""
    with open_memory(ctx, home, embeds=True) as memory:
        result = memory.update(resolve_id(memory, memory_id), text, metadata=json_arg(metadata, "--metadata"))
    stdout().print(f"{escape(result['message'])} [dim]{short_id(result['id'])}[/dim]", highlight=False)


def delete(ctx: typer.Context, memory_id: Annotated[str | None, typer.Argument(metavar="ID", help=_ID_HELP)] = None,
           all_: Annotated[bool, typer.Option("--all", help="Delete every memory of the scope.")] = False,
           user: User = None, agent: Agent = None, run: Run = None,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
           home: Home = None) -> None:
    """Delete one memory by ID, or with --all every memory of a user, agent or run (history is kept)."""
    if (memory_id is None) == (not all_):
        raise InvalidInput("give either a memory ID or --all with --user/--agent/--run")
    if memory_id is not None and (user or agent or run):
        raise InvalidInput("--user/--agent/--run go with --all; a memory ID alone names the memory")
    with open_memory(ctx, home) as memory:
        if memory_id is not None:
            result = memory.delete(resolve_id(memory, memory_id))
            stdout().print(f"{escape(result['message'])} [dim]{short_id(result['id'])}[/dim]", highlight=False)
            return
        if not (user or agent or run):
            raise InvalidInput("--all needs --user, --agent or --run")
        if not yes:
            typer.confirm(f"Delete every memory of {scope_text(user, agent, run)}?", abort=True)
        result = memory.delete_all(user_id=user, agent_id=agent, run_id=run)
    stdout().print(f"deleted {count(result['count'], 'memory', 'memories')} of {escape(scope_text(user, agent, run))}; "
                   f"to undo: engram revert {short_id(result['batch_id'])}", highlight=False)


def history(ctx: typer.Context, memory_id: MemoryId, as_json: AsJson = False,
            home: Home = None) -> None:
    """Every change to a memory, oldest first."""
    with open_memory(ctx, home) as memory:
        events = memory.history(resolve_id(memory, memory_id), strict=True)
    if as_json:
        print_json(events)
        return
    table = Table(header_style="bold")
    for name in ("when", "event", "old", "new", "reason", "actor"):
        table.add_column(name, no_wrap=name in ("when", "event"))
    for event in events:
        table.add_row(when(event["created_at"]), event["event"], escape(event["old_memory"] or ""),
                      escape(event["new_memory"] or ""), escape(event["reason"] or ""), escape(event["actor"] or ""))
    stdout().print(table)
