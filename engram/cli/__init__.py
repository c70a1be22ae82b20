"""The `engram` command line: a package of command modules, each registering its commands on the app.

`engram.cli._app` builds the app and calls every command module's `register(app)` (llm's plug-in habit);
command modules share the helpers in `boundary` (errors and help), `context` (options, settings, ids) and
`output` (consoles, tables). Nothing here imports the app back, and no library module imports the CLI.
Module-level imports stay light (typer, rich) so `engram search` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engram.cli._app import app, main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    # Built on first use, so importing a helper module (engram.cli.output) does not build every command
    if name in __all__:
        from engram.cli import _app

        return getattr(_app, name)
    raise AttributeError(f"module 'engram.cli' has no attribute {name!r}")
