"""What engram's dependencies may do on their own: no telemetry, no remote look-ups, no files outside the data dir.

One function per dependency, called where engram first imports it (never at `import engram`). Each sets the
environment variables the dependency reads as it loads, with setdefault: a value the user already set wins.
qdrant-client needs nothing here: it sends no telemetry and talks only to the server it is given.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from engram.private import make_dirs

__all__ = ["import_onnxruntime", "import_pyplot", "prepare_dspy", "torch_offline"]

_torch_lock = threading.Lock()  # one torch load at a time in a process: each sets and restores the same variables


def import_onnxruntime() -> ModuleType:
    """onnxruntime without its 1DS telemetry, which on Linux too resolves mobile.events.data.microsoft.com and
    keeps a device id in ~/.cache/Microsoft/DeveloperTools. The variable is read once, as it initialises."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    onnxruntime.disable_telemetry_events()  # in case it was imported before us, when the variable is too late
    return onnxruntime


@contextmanager
def torch_offline(parent: Path) -> Iterator[None]:
    """For loading the packaged weights with torch (the one-time ONNX export): Hugging Face offline and without
    telemetry, torch's compile cache in a scratch directory under `parent` instead of $TMPDIR/torchinductor_<user>
    (which also costs a user-name lookup). The environment is restored and the scratch removed afterwards."""
    with _torch_lock, tempfile.TemporaryDirectory(prefix=".torch-", dir=parent) as scratch:
        wanted = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                  "TORCHINDUCTOR_CACHE_DIR": scratch}
        added = [name for name in wanted if name not in os.environ]
        os.environ.update({name: wanted[name] for name in added})
        try:
            yield
        finally:
            for name in added:
                os.environ.pop(name, None)


def prepare_dspy(home: Path) -> None:
    """Before `import dspy`: LiteLLM with its bundled cost map and Anthropic header list instead of fetching them
    from GitHub, DSPy's disk cache in the data directory instead of ~/.dspy_cache."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    os.environ.setdefault("DSPY_CACHEDIR", str(home / "dspy_cache"))


def import_pyplot(home: Path) -> ModuleType:
    """matplotlib's pyplot on the Agg backend, its config and font cache in the data directory instead of
    ~/.config/matplotlib and ~/.cache/matplotlib."""
    os.environ.setdefault("MPLCONFIGDIR", str(make_dirs(home / "matplotlib")))
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot
