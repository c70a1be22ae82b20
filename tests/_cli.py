"""Running the engram CLI in-process for tests: one data directory, optional environment, the exit code checked."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from engram.cli import app


def cli(home: Path, *args: str, code: int = 0, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """`engram ARGS` with ENGRAM_HOME=home (plus `env`); fails the test on another exit code or a traceback."""
    result = CliRunner(env={"ENGRAM_HOME": str(home), **(env or {})}).invoke(app, list(args), input=input)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result
