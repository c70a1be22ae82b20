"""The shape of the command line: command modules register themselves and never import the main CLI module
back, and the libraries they drive (eval, transfer, migrate) never depend on the CLI."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import engram

PACKAGE = Path(engram.__file__).parent
CLI = PACKAGE / "cli"
HELPERS = {"boundary", "context", "output"}  # shared by the commands; they import no command module


def imports(path: Path) -> set[str]:
    """Every module a file imports (`from engram.cli import x` counts as engram.cli and engram.cli.x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def command_modules() -> list[Path]:
    return sorted(p for p in CLI.glob("*.py") if p.stem not in HELPERS | {"__init__", "__main__", "_app"})


def test_cli_is_a_package_of_command_modules_each_with_one_register_function() -> None:
    assert not (PACKAGE / "cli.py").exists() and (CLI / "__init__.py").exists()
    names = {p.stem for p in command_modules()}
    assert {"memories", "transfer", "chat", "migrate", "evaluate", "demo"} <= names
    for path in command_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        registers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "register"]
        assert len(registers) == 1, f"{path.name} needs one register(app) function"
        decorated = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                     for d in n.decorator_list if "command" in ast.unparse(d)]
        assert not decorated, f"{path.name} registers at import time ({decorated}); do it in register(app)"


def test_no_module_imports_the_main_cli_module_back() -> None:
    for path in [*command_modules(), *(CLI / f"{name}.py" for name in HELPERS)]:
        found = imports(path)
        assert "engram.cli._app" not in found, path.name
        assert not {"engram.cli.app", "engram.cli.main"} & found, path.name
    for name in HELPERS:  # helpers know no command
        assert not {f"engram.cli.{p.stem}" for p in command_modules()} & imports(CLI / f"{name}.py"), name


def test_libraries_do_not_depend_on_the_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        if CLI not in path.parents:
            assert not any(m == "engram.cli" or m.startswith("engram.cli.") for m in imports(path)), path
    code = ("import sys, engram.eval.run, engram.eval.report, engram.transfer, engram.migrate; "
            "print(sorted(m for m in sys.modules if m.startswith('engram.cli')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "engram.cli", "--version"], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert done.returncode == 0 and done.stdout.startswith("engram "), done.stderr
