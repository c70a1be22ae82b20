"""Fixtures shared by engram's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engram import Memory
from engram.embed import Embedder
from engram.testing import FakeOpenAI

# A developer's own settings (ENGRAM_SEARCH_FUSION, ENGRAM_LLM_MODEL, OPENAI_API_KEY, ...) must never reach a
# test: one changes what search ranks, another sends an offline test to a real endpoint.
HERMETIC_PREFIXES = ("ENGRAM_", "OPENAI_")


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without ENGRAM_* and OPENAI_* variables; a test that wants one sets it itself."""
    for name in list(os.environ):
        if name.startswith(HERMETIC_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported ONNX model for the whole test session (exporting takes seconds)."""
    from engram.embed.local import MiniLMEmbedder

    path = tmp_path_factory.mktemp("models")
    MiniLMEmbedder(path).embed(["warm up"])
    return path


@pytest.fixture(scope="session")
def embedder(models_dir: Path) -> Embedder:
    from engram.embed.local import MiniLMEmbedder

    return MiniLMEmbedder(models_dir)


@pytest.fixture
def home(tmp_path: Path, models_dir: Path) -> Path:
    """A fresh data directory whose models/ points at the session's exported model."""
    (tmp_path / "models").symlink_to(models_dir, target_is_directory=True)
    return tmp_path


@pytest.fixture
def memory(home: Path, embedder: Embedder) -> Iterator[Memory]:
    with Memory(home=home, embedder=embedder) as m:
        yield m
