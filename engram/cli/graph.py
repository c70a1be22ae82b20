"""`engram graph`: a scope's graph memory, or one entity's neighbourhood, as tables, JSON, Graphviz DOT or a PNG
drawn by Graphviz's `dot` program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from engram.cli.boundary import EngramCommand
from engram.cli.context import Agent, Home, Run, User, check_file_target, open_memory, scope_text
from engram.cli.output import count, stdout
from engram.errors import ConfigError, EngramError, InvalidInput

__all__ = ["register"]

DOT_TIMEOUT = 120  # seconds Graphviz may take to lay out a drawing


class GraphFormat(StrEnum):
    text = "text"
    json = "json"
    dot = "dot"
    png = "png"


def register(app: typer.Typer) -> None:
    app.command("graph", cls=EngramCommand)(graph)


def graph(ctx: typer.Context, user: User = None, agent: Agent = None, run: Run = None,
          entity: Annotated[str | None, typer.Option("--entity", "-e", help="Draw this entity's neighbourhood "
                                                     "(by name, alias or short form).")] = None,
          hops: Annotated[int | None, typer.Option(help="With --entity: how many relations away (0-5, default 2).")
                          ] = None,
          as_of: Annotated[str | None, typer.Option("--as-of", help="As things stood then (ISO 8601).")] = None,
          format_: Annotated[GraphFormat, typer.Option("--format", "-f", help="text: tables; json; dot: Graphviz's "
                             "language; png: drawn by Graphviz's dot program.")] = GraphFormat.text,
          output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of "
                            "standard output (json, dot, png).")] = None,
          home: Home = None) -> None:
    """The entities a scope's memories name and the relations between them; with --entity, one entity's
    neighbourhood and the memories behind it."""
    dot_program = _check_arguments(entity, hops, format_, output)
    with open_memory(ctx, home) as memory:
        scope: dict[str, Any] = {"user_id": user, "agent_id": agent, "run_id": run, "as_of": as_of}
        if entity is None:
            drawn = memory.graph(**scope)
        else:
            hops = 2 if hops is None else hops
            counts = {e["name"]: e["memories"] for e in memory.entities(**scope)["results"]}
            drawn = memory.related(entity, hops=hops, **scope)
            drawn["entities"] = [{**e, "memories": counts.get(e["name"], 0)} for e in drawn["entities"]]
    if format_ is GraphFormat.text:
        _print_tables(drawn, scope_text(user, agent, run))
        return
    if format_ is GraphFormat.json:
        data = (json.dumps(drawn, indent=2, ensure_ascii=False) + "\n").encode()
    else:
        data = _dot(drawn, _title(user, agent, run, hops, as_of)).encode()
        if dot_program is not None:
            data = _render_png(dot_program, data)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        _write(output, data)


def _check_arguments(entity: str | None, hops: int | None, format_: GraphFormat, output: Path | None) -> str | None:
    """What is wrong with the arguments, before the store is opened; the dot program a PNG needs."""
    if hops is not None and entity is None:
        raise InvalidInput("--hops goes with --entity (the whole graph has no centre to count hops from)")
    if output is not None:
        if format_ is GraphFormat.text:
            raise InvalidInput("--output writes --format json, dot or png; text is for the terminal")
        check_file_target(output, "--output")
    if format_ is not GraphFormat.png:
        return None
    program = shutil.which("dot")
    if program is None:
        raise ConfigError("--format png needs Graphviz's dot program, which is not on PATH: install Graphviz "
                          "(apt-get install graphviz), or write --format dot and draw it elsewhere")
    if output is None and sys.stdout.isatty():
        raise InvalidInput("a PNG is binary: give --output FILE, or redirect standard output to a file")
    return program


def _title(user: str | None, agent: str | None, run: str | None, hops: int | None, as_of: str | None) -> str:
    title = f"graph memory of {scope_text(user, agent, run)}"
    if hops is not None:
        title += f", within {count(hops, 'hop')}"
    return title + (f", as of {as_of}" if as_of else "")


def _dot(drawn: dict[str, Any], title: str) -> str:
    from engram.graph_dot import to_dot

    centre = drawn["entity"]["name"] if "entity" in drawn else None
    return to_dot(drawn["entities"], drawn["relations"], center=centre, title=title)


def _render_png(program: str, dot_text: bytes) -> bytes:
    try:
        done = subprocess.run([program, "-Tpng"], input=dot_text, capture_output=True, timeout=DOT_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise EngramError(f"Graphviz's dot took more than {DOT_TIMEOUT} s to draw this graph: draw a neighbourhood "
                          "with --entity, or write --format dot") from None
    if done.returncode != 0 or not done.stdout:
        problem = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise EngramError(f"Graphviz's dot could not draw the graph: {problem}")
    return done.stdout


def _write(path: Path, data: bytes) -> None:
    """Write to a temporary name and rename: an interrupted run leaves no half-written file (0600: the drawing
    holds memory text)."""
    from engram.private import opener

    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "wb", opener=opener) as fh:
            fh.write(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _print_tables(drawn: dict[str, Any], scope: str) -> None:
    console = stdout()
    if not drawn["entities"]:
        console.print(f"[dim]no entities for {escape(scope)}[/dim]", highlight=False)
        return
    near = "distance" in drawn["entities"][0]
    table = Table(header_style="bold")
    for name in ("entity", "kind", "memories", *(["hops"] if near else []), "aliases"):
        table.add_column(name, justify="right" if name in ("memories", "hops") else "left")
    for e in drawn["entities"]:
        cells = [escape(e["name"]), escape(e["kind"]), str(e["memories"]), *([str(e["distance"])] if near else []),
                 escape(", ".join(e["aliases"]))]
        table.add_row(*cells)
    console.print(table)
    for r in sorted(drawn["relations"], key=lambda r: (r["subject"], r["relation"], r["object"])):
        console.print(f"{escape(r['subject'])} [cyan]-{escape(r['relation'])}->[/cyan] {escape(r['object'])}  "
                      f"[dim]({escape(r['memory'])})[/dim]", highlight=False)
