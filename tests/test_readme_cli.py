"""The README's "Command line" section: its shell blocks run as they stand, and it names every command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def test_the_command_line_blocks_run_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", section("Command line"), flags=re.DOTALL)
    assert blocks
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "engram"  # this tree's engram, as the console script would run it
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m engram.cli "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "HOME": str(tmp_path), "TMPDIR": str(tmp_path), "COLUMNS": "100"}
    env = {k: v for k, v in env.items() if not k.startswith("ENGRAM_")}
    for block in blocks:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert "Traceback" not in output and "error:" not in output, output[-4000:]


def test_the_command_line_section_names_every_command() -> None:
    text = section("Command line")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name, command in commands.items():
        for sub in getattr(command, "commands", {None: None}):
            spelled = f"engram {name}" + (f" {sub}" if sub else "")
            assert f"`{spelled}" in text, f"{spelled} is missing from README's Command line section"
