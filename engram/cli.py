"""The `engram` command: add, search, list, get, update, delete, history, import, export, demo.

Module-level imports stay light (typer, rich, engram's errors) so `engram search` starts fast; the memory
engine, numpy and the embedder load inside the commands that need them.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from engram.errors import ConfigError, EngramError, InvalidInput, NotFound

if TYPE_CHECKING:
    from engram.config import Settings
    from engram.memory import Memory

__all__ = ["app", "main"]


class _Group(TyperGroup):
    """Turns engram's own errors into `error: ...` on stderr and an exit code; anything else is a bug."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EngramError as exc:
            stderr().print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2 if isinstance(exc, (InvalidInput, NotFound, ConfigError)) else 1) from None


app = typer.Typer(cls=_Group, help="engram: long-term memory for LLM apps.", add_completion=False,
                  no_args_is_help=True, pretty_exceptions_show_locals=False)

Home = Annotated[Optional[Path], typer.Option("--home", help="Data directory (default: $ENGRAM_HOME or ~/.engram).")]
User = Annotated[Optional[str], typer.Option("--user", "-u", help="User id.")]
Agent = Annotated[Optional[str], typer.Option("--agent", "-a", help="Agent id.")]
Run = Annotated[Optional[str], typer.Option("--run", "-r", help="Run (session) id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Categories = Annotated[Optional[list[str]], typer.Option("--category", "-c", help="Category (repeatable).")]


class ImportFormat(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    locomo = "locomo"


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    markdown = "markdown"


# soft_wrap: lines are not broken at the console width, so messages stay greppable when piped; tables still fit
def stdout() -> Console:
    return Console(soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True)


def main() -> None:
    app()


# -- shared helpers ----------------------------------------------------------------------------------------------

def _version(value: bool) -> None:
    if value:
        from engram import __version__

        typer.echo(f"engram {__version__}")
        raise typer.Exit()


@app.callback()
def _root(ctx: typer.Context, home: Home = None,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    ctx.obj = {"home": home}


def _settings(ctx: typer.Context, home: Path | None) -> Settings:
    from engram.config import Settings

    return Settings.load(home=home or (ctx.obj or {}).get("home"))


def _open(ctx: typer.Context, home: Path | None, *, embeds: bool = False, db_path: Path | None = None) -> Memory:
    """The Memory for this command (`--home` after the command wins over `--home` before it)."""
    from engram.memory import Memory

    settings = _settings(ctx, home)
    if db_path is not None:
        settings = replace(settings, db_path=db_path)
    if embeds:
        _note_first_run(settings)
    return Memory(settings)


def _note_first_run(settings: Settings) -> None:
    from engram.embed.local import MODEL_NAME

    if settings.embedder == "local" and not (settings.home / "models" / MODEL_NAME / "model.onnx").exists():
        stderr().print("[dim]preparing the embedding model (first run only)…[/dim]")


def _json_arg(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{option} is not valid JSON: {exc.msg}") from None


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _when(stamp: str | None) -> str:
    return "" if not stamp else stamp[:16].replace("T", " ")


def _scope_text(user: str | None, agent: str | None, run: str | None) -> str:
    given = [f"{name}={value}" for name, value in (("user", user), ("agent", agent), ("run", run)) if value]
    return ", ".join(given) or "no scope"


def _event_line(row: dict[str, Any], *, short: bool = False) -> str:
    colour = {"ADD": "green", "UPDATE": "yellow", "DELETE": "red", "NOOP": "dim"}.get(row["event"], "white")
    ident = row["id"][:8] if short else row["id"]
    return f"[{colour}]{row['event']:<6}[/{colour}] [dim]{ident}[/dim]  {escape(row['memory'])}"


def _memories_table(rows: list[dict[str, Any]], *, scores: bool) -> Table:
    # "created" shows valid_from: when the fact was said (add --timestamp, an import's dates), not when stored
    table = Table(show_lines=False, header_style="bold")
    if scores:
        table.add_column("score", justify="right", style="cyan", no_wrap=True)
    table.add_column("memory", ratio=1, min_width=24)
    table.add_column("id", style="dim", overflow="fold")
    table.add_column("created", no_wrap=True)
    if not scores:
        table.add_column("categories")
    for row in rows:
        cells = [escape(row["memory"]), row["id"], _when(row.get("valid_from"))]
        cells = ([f"{row['score']:.3f}"] + cells) if scores else cells + [", ".join(row.get("categories", []))]
        table.add_row(*cells)
    return table


# -- commands ----------------------------------------------------------------------------------------------------

@app.command()
def add(ctx: typer.Context, text: str, user: User = None, agent: Agent = None, run: Run = None,
        metadata: Annotated[Optional[str], typer.Option(help="Metadata as a JSON object.")] = None,
        category: Categories = None,
        timestamp: Annotated[Optional[str], typer.Option(help="When this was true (ISO 8601).")] = None,
        infer: Annotated[bool, typer.Option("--infer", help="Extract facts and reconcile them with what is stored "
                                                             "(the LLM if configured, else offline rules).")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
        as_json: AsJson = False, home: Home = None) -> None:
    """Store TEXT as a memory (exact duplicates are reported as NOOP), or with --infer the facts it states."""
    with _open(ctx, home, embeds=True) as memory:
        result = memory.add(text, user_id=user, agent_id=agent, run_id=run, metadata=_json_arg(metadata, "--metadata"),
                            categories=category or None, timestamp=timestamp, infer=infer, dry_run=dry_run)
    if as_json:
        return _print_json(result)
    console = stdout()
    for row in result["results"]:
        console.print(_event_line(row), highlight=False)
    if not result["results"]:
        console.print("[dim]nothing worth remembering[/dim]")
    if "usage" in result:
        usage = result["usage"]
        console.print(f"[dim]{usage['pipeline']} pipeline: {usage['llm_calls']} LLM call(s), {usage['prompt_tokens']} "
                      f"prompt + {usage['completion_tokens']} completion tokens[/dim]", highlight=False)
    console.print(f"[dim]{'dry run: nothing written' if dry_run else 'batch ' + result['batch_id']}[/dim]", highlight=False)


@app.command()
def revert(ctx: typer.Context, batch_id: Annotated[str, typer.Argument(metavar="BATCH")], home: Home = None) -> None:
    """Undo a whole add (or delete --all) by its batch id: superseded memories become current again."""
    with _open(ctx, home) as memory:
        result = memory.revert(batch_id)
    for row in result["results"]:
        stdout().print(f"REVERT {row['id'][:8]}  {escape(row['previous_memory'] or '∅')} → "
                       f"{escape(row['memory'] or '∅')}", highlight=False)


@app.command()
def search(ctx: typer.Context, query: str, user: User = None, agent: Agent = None, run: Run = None,
           limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="How many results.")] = None,
           threshold: Annotated[Optional[float], typer.Option(help="Minimum cosine similarity, 0..1.")] = None,
           filters: Annotated[Optional[str], typer.Option(help="Metadata filters as JSON.")] = None,
           category: Categories = None,
           as_of: Annotated[Optional[str], typer.Option("--as-of", help="As things stood then (ISO 8601).")] = None,
           as_json: AsJson = False, home: Home = None) -> None:
    """Memories relevant to QUERY, best first."""
    with _open(ctx, home, embeds=True) as memory:
        result = memory.search(query, user_id=user, agent_id=agent, run_id=run, limit=limit, threshold=threshold,
                               filters=_json_arg(filters, "--filters"), categories=category or None, as_of=as_of)
    if as_json:
        return _print_json(result)
    if not result["results"]:
        return stdout().print("[dim]no matching memories[/dim]")
    stdout().print(_memories_table(result["results"], scores=True))


@app.command("list")
def list_(ctx: typer.Context, user: User = None, agent: Agent = None, run: Run = None,
          limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many, newest first.")] = 100,
          category: Categories = None, as_json: AsJson = False, home: Home = None) -> None:
    """The current memories of a user, agent or run."""
    with _open(ctx, home) as memory:
        result = memory.get_all(user_id=user, agent_id=agent, run_id=run, limit=limit, categories=category or None)
    if as_json:
        return _print_json(result)
    if not result["results"]:
        return stdout().print(f"[dim]no memories for {escape(_scope_text(user, agent, run))}[/dim]")
    stdout().print(_memories_table(result["results"], scores=False))
    if len(result["results"]) == limit:
        stderr().print(f"[dim]showing the newest {limit}; use --limit for more[/dim]")


@app.command()
def get(ctx: typer.Context, memory_id: Annotated[str, typer.Argument(metavar="ID")], as_json: AsJson = False,
        home: Home = None) -> None:
    """One memory by id."""
    with _open(ctx, home) as memory:
        record = memory.get(memory_id, strict=True)
    if as_json:
        return _print_json(record)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        table.add_row(key, escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)))
    stdout().print(table)


@app.command()
def update(ctx: typer.Context, memory_id: Annotated[str, typer.Argument(metavar="ID")], text: str,
           metadata: Annotated[Optional[str], typer.Option(help="Metadata keys to set (JSON object); the others are kept.")] = None,
           home: Home = None) -> None:
    """Replace a memory's text; the old version stays in its history."""
    with _open(ctx, home, embeds=True) as memory:
        result = memory.update(memory_id, text, metadata=_json_arg(metadata, "--metadata"))
    stdout().print(f"{escape(result['message'])} [dim]{result['id']}[/dim]", highlight=False)


@app.command()
def delete(ctx: typer.Context, memory_id: Annotated[Optional[str], typer.Argument(metavar="[ID]")] = None,
           all_: Annotated[bool, typer.Option("--all", help="Delete every memory of the scope.")] = False,
           user: User = None, agent: Agent = None, run: Run = None,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
           home: Home = None) -> None:
    """Delete one memory by ID, or with --all every memory of a user, agent or run (history is kept)."""
    if (memory_id is None) == (not all_):
        raise InvalidInput("give either a memory ID or --all with --user/--agent/--run")
    if memory_id is not None and (user or agent or run):
        raise InvalidInput("--user/--agent/--run go with --all; a memory ID alone names the memory")
    with _open(ctx, home) as memory:
        if memory_id is not None:
            result = memory.delete(memory_id)
            return stdout().print(f"{escape(result['message'])} [dim]{result['id']}[/dim]", highlight=False)
        if not (user or agent or run):
            raise InvalidInput("--all needs --user, --agent or --run")
        if not yes:
            typer.confirm(f"Delete every memory of {_scope_text(user, agent, run)}?", abort=True)
        result = memory.delete_all(user_id=user, agent_id=agent, run_id=run)
    stdout().print(f"deleted {result['count']} memories of {escape(_scope_text(user, agent, run))}", highlight=False)


@app.command()
def history(ctx: typer.Context, memory_id: Annotated[str, typer.Argument(metavar="ID")], as_json: AsJson = False,
            home: Home = None) -> None:
    """Every change to a memory, oldest first."""
    with _open(ctx, home) as memory:
        events = memory.history(memory_id, strict=True)
    if as_json:
        return _print_json(events)
    table = Table(header_style="bold")
    for name in ("when", "event", "old", "new", "actor"):
        table.add_column(name, no_wrap=name in ("when", "event"))
    for event in events:
        table.add_row(_when(event["created_at"]), event["event"], escape(event["old_memory"] or ""),
                      escape(event["new_memory"] or ""), event["actor"] or "")
    stdout().print(table)


@app.command("import")
def import_(ctx: typer.Context,
            path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="PATH", help="File to import.")],
            format_: Annotated[ImportFormat, typer.Option("--format", "-f", help="File format.")] = ImportFormat.auto,
            user: Annotated[Optional[str], typer.Option("--user", "-u", help="Import everything as this user.")] = None,
            chunk: Annotated[int, typer.Option(help="Memories per transaction.", min=1)] = 64,
            home: Home = None) -> None:
    """Import memories from JSONL (engram's export, or lines with memory/text/content) or LoCoMo JSON."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engram import transfer

    kind = transfer.detect_format(path) if format_ is ImportFormat.auto else format_.value
    items = transfer.read_jsonl(path, user) if kind == "jsonl" else transfer.read_locomo(path, user)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _open(ctx, home, embeds=True) as memory, Progress(*columns, console=stderr()) as bar:
        task = bar.add_task("import", total=len(items))
        counts = transfer.import_items(memory, items, chunk=chunk, progress=lambda n: bar.advance(task, n))
    stdout().print(f"imported {len(items)} items ({kind}) from {escape(str(path))}: "
                   f"[green]{counts['ADD']} added[/green], {counts['NOOP']} already known", highlight=False)


@app.command()
def export(ctx: typer.Context,
           out: Annotated[Path, typer.Option("--out", "-o", help="File (jsonl, - for stdout) or directory.")],
           format_: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = ExportFormat.jsonl,
           user: User = None, agent: Agent = None, run: Run = None, home: Home = None) -> None:
    """Export current memories (every scope unless one is given)."""
    from engram import transfer

    with _open(ctx, home) as memory:
        if format_ is ExportFormat.markdown:
            if agent or run:
                raise InvalidInput("the markdown export is per user: use --user (or no scope)")
            files = transfer.export_markdown(memory, out, user_id=user)
            return stderr().print(f"wrote {len(files)} Markdown files to {escape(str(out))}", highlight=False)
        if str(out) == "-":
            count = transfer.export_jsonl(memory, sys.stdout, user_id=user, agent_id=agent, run_id=run)
        else:
            count = _export_file(memory, out, user, agent, run)
    stderr().print(f"exported {count} memories to {escape(str(out))}", highlight=False)


def _export_file(memory: Memory, out: Path, user: str | None, agent: str | None, run: str | None) -> int:
    """Write to a temporary name and rename, so an interrupted export never looks like a complete one."""
    from engram import private, transfer

    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "w", encoding="utf-8", opener=private.opener) as fh:  # 0600: memories are personal
            count = transfer.export_jsonl(memory, fh, user_id=user, agent_id=agent, run_id=run)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return count


@app.command()
def demo(ctx: typer.Context, home: Home = None) -> None:
    """A short scripted session showing memories going in and coming back (in a throwaway <home>/demo)."""
    settings = _settings(ctx, home)
    console = stdout()
    with _open(ctx, home, embeds=True, db_path=settings.home / "demo" / "engram.db") as memory:
        memory.reset()  # the demo's own database, never <home>/engram.db
        console.rule("[bold]engram demo")
        console.print(f"[dim]data: {escape(str(memory.settings.database))}[/dim]\n", highlight=False)
        ids = _demo_add(memory, console)
        _demo_search(memory, console)
        _demo_change(memory, console, ids)
        console.rule("[bold]done")


DEMO_FACTS = (
    ("alice", "I am vegetarian and allergic to peanuts", "food"),
    ("alice", "I live in Lisbon and work as a data engineer", "personal"),
    ("alice", "My sister Ana visits me every June", "family"),
    ("bob", "I am training for the Berlin marathon in September", "sport"),
    ("bob", "I drink my coffee black, no sugar", "food"),
    ("bob", "My favourite programming language is Rust", "work"),
)
DEMO_QUERIES = (
    ("alice", "what food should I avoid?"),
    ("alice", "where do I live?"),
    ("bob", "what do I drink in the morning?"),
    ("bob", "do I have any food allergies?"),  # alice has one; bob must not see it
)


def _demo_add(memory: Memory, console: Console) -> dict[str, str]:
    console.print("[bold]1. Adding memories[/bold] [dim](add, infer=False: each message is one memory)[/dim]")
    ids = {}
    for user, text, category in DEMO_FACTS:
        row = memory.add(text, user_id=user, categories=[category], infer=False)["results"][0]
        ids[text] = row["id"]
        console.print(f"  {user:<5} ", _event_line(row, short=True), highlight=False)
    again = "i am VEGETARIAN and   allergic to peanuts"
    row = memory.add(again, user_id="alice", infer=False)["results"][0]
    console.print("  alice ", _event_line(row, short=True), "[dim]← said again[/dim]", highlight=False)
    return ids


def _demo_search(memory: Memory, console: Console) -> None:
    console.print("\n[bold]2. Searching[/bold] [dim](each user sees only their own memories)[/dim]")
    for user, query in DEMO_QUERIES:
        hits = memory.search(query, user_id=user, limit=2)["results"]
        own = "✓ only their own" if all(hit.get("user_id") == user for hit in hits) else "✗ LEAK"
        console.print(f"  [cyan]{user}[/cyan] asks [italic]{escape(query)}[/italic]  [dim]{own}[/dim]", highlight=False)
        for hit in hits:
            console.print(f"     score {hit['score']:.3f}  cosine {hit['similarity']:.2f}  {escape(hit['memory'])}",
                          highlight=False)


def _demo_change(memory: Memory, console: Console, ids: dict[str, str]) -> None:
    console.print("\n[bold]3. Updating[/bold] [dim](the old version is closed, not destroyed)[/dim]")
    moved = ids["I live in Lisbon and work as a data engineer"]
    memory.update(moved, "I live in Porto now, still working as a data engineer")
    hit = memory.search("where do I live?", user_id="alice", limit=1)["results"][0]
    console.print(f"  alice asks [italic]where do I live?[/italic] → {escape(hit['memory'])}", highlight=False)
    for event in memory.history(moved):
        old = f"{escape(event['old_memory'])} → " if event["old_memory"] else ""
        console.print(f"     history: [yellow]{event['event']:<6}[/yellow] {old}{escape(event['new_memory'] or '')}",
                      highlight=False)
    console.print("\n[bold]4. Deleting[/bold]")
    coffee = ids["I drink my coffee black, no sugar"]
    memory.delete(coffee)
    left = memory.search("what does he drink in the morning?", user_id="bob", limit=3)["results"]
    gone = "gone from search" if all(hit["id"] != coffee for hit in left) else "STILL IN SEARCH"
    console.print(f"  deleted bob's coffee memory: {gone}; its history keeps "
                  f"{len(memory.history(coffee))} events\n", highlight=False)


from engram import cli_chat as _cli_chat  # noqa: E402,F401  (registers `chat` and `profile` on app)
from engram.eval import cli as _cli_eval  # noqa: E402,F401  (registers `eval` on app)
from engram import cli_migrate as _cli_migrate  # noqa: E402,F401  (registers `migrate` on app)
