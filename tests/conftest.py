"""Fixtures shared by engram's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engram.testing import FakeOpenAI


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    with FakeOpenAI() as server:
        yield server
