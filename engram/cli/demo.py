"""`engram demo`: a short scripted session in a throwaway database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from engram.cli.boundary import EngramCommand
from engram.cli.context import Home, load_settings, open_memory
from engram.cli.output import event_line, stdout

if TYPE_CHECKING:
    from engram.memory import Memory

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("demo", cls=EngramCommand)(demo)


def demo(ctx: typer.Context, home: Home = None) -> None:
    """A short scripted session showing memories going in and coming back (in a throwaway <home>/demo)."""
    chosen = load_settings(ctx, home)
    console = stdout()
    with open_memory(ctx, home, embeds=True, db_path=chosen.home / "demo" / "engram.db") as memory:
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
        console.print(f"  {user:<5} ", event_line(row), highlight=False)
    again = "i am VEGETARIAN and   allergic to peanuts"
    row = memory.add(again, user_id="alice", infer=False)["results"][0]
    console.print("  alice ", event_line(row), "[dim]← said again[/dim]", highlight=False)
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
