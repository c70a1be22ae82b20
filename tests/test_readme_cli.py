"""The README's "Command line" section names every command (tests/test_docs.py runs its blocks)."""

from __future__ import annotations

from pathlib import Path

import typer

import engram
from engram.cli import app

ROOT = Path(engram.__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def test_the_command_line_section_names_every_command() -> None:
    text = section("Command line")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name, command in commands.items():
        for sub in getattr(command, "commands", {None: None}):
            spelled = f"engram {name}" + (f" {sub}" if sub else "")
            assert f"`{spelled}" in text, f"{spelled} is missing from README's Command line section"
