"""The public API is exactly what engram exports, and importing it is cheap."""

from __future__ import annotations

import subprocess
import sys

import engram

PUBLIC = {
    "Memory", "AsyncMemory", "Settings", "MemoryRecord", "Hit", "Event", "Op", "Scope",
    "EngramError", "ConfigError", "InvalidInput", "ScopeRequired", "InvalidFilter", "NotFound", "Conflict",
    "EmbedderError", "LLMError", "RerankerError", "StoreError", "CorruptStore", "EmbedderMismatch",
}


def test_the_exported_names_are_the_public_api() -> None:
    assert set(engram.__all__) == PUBLIC and len(engram.__all__) == len(PUBLIC)
    for name in engram.__all__:
        assert getattr(engram, name) is not None
    errors = [getattr(engram, n) for n in PUBLIC if n.endswith(("Error", "Input", "Required", "Filter", "Found",
                                                                    "Conflict", "Store", "Mismatch")) and n != "Memory"]
    assert all(issubclass(e, engram.EngramError) for e in errors)


def test_import_engram_loads_neither_numpy_nor_the_facade() -> None:
    code = "import sys, engram; print(sorted(m for m in ('numpy', 'engram.memory') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
