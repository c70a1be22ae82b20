"""What the LoCoMo benches share: their arguments (the data file, the conversations a setting is tuned on) and
each conversation imported into a fresh store, as `engram eval locomo` imports it."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engram.components import embedder_from
from engram.config import Settings
from engram.embed.base import Embedder
from engram.eval.locomo import Conversation, fresh_memory, ingest, load_locomo
from engram.memory import Memory

__all__ = ["ingested", "tuning_args"]


def tuning_args(doc: str, tuned: str) -> tuple[Path, set[str]]:
    """The LoCoMo file and the conversations `tuned` (what was tuned on them: "the weight is")."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--tune", default="conv-26,conv-30,conv-41", help=f"conversations {tuned} tuned on")
    args = parser.parse_args()
    return args.path, set(args.tune.split(","))


def ingested(path: Path) -> Iterator[tuple[Conversation, Memory, Embedder]]:
    """Each conversation of `path` with a fresh store (in a temporary directory) holding its turns, and the
    configured embedder, loaded once."""
    settings = Settings.load()
    embedder = embedder_from(settings)
    for conv in load_locomo(path):
        with tempfile.TemporaryDirectory() as directory, fresh_memory(settings, Path(directory), embedder) as memory:
            ingest(memory, conv)
            yield conv, memory, embedder
