"""Concurrent embed() calls served together (engram.embed.coalescing), each caller getting its own rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from engram.embed.base import Embedder
from engram.embed.coalescing import CoalescingEmbedder
from engram.errors import EmbedderError


class Slow(Embedder):
    """A deterministic embedder whose every model call takes 20 ms, counting its calls."""

    name, dimension, batch_size = "slow", 8, 1000

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        time.sleep(0.02)
        if any(t == "boom" for t in texts):
            raise EmbedderError("the model failed")
        return np.array([[len(t) + 1.0, *(float(ord(c)) for c in t[:7].ljust(7))] for t in texts])


def test_concurrent_callers_share_model_calls_and_get_their_own_rows() -> None:
    inner = Slow()
    embedder = CoalescingEmbedder(inner)
    texts = [[f"query {i}"] if i % 3 else [f"a {i}", f"bb {i}"] for i in range(24)]
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        results[i] = embedder.embed(texts[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    embedder.close()
    reference = Slow()
    for i, mine in results.items():
        assert np.allclose(mine, reference.embed(texts[i]))
    assert len(results) == 24
    assert len(inner.calls) < 24  # callers that arrived while a call ran were embedded together
    assert sum(inner.calls) == sum(map(len, texts))


def test_a_lone_caller_and_large_calls() -> None:
    inner = Slow()
    embedder = CoalescingEmbedder(inner, max_texts=4)
    assert embedder.embed(["one"]).shape == (1, 8)
    assert embedder.embed([f"t{i}" for i in range(10)]).shape == (10, 8)  # past max_texts: straight through
    assert embedder.embed([]).shape == (0, 8)
    assert (embedder.name, embedder.dimension) == ("slow", 8)
    embedder.close()
    with pytest.raises(EmbedderError, match="closed"):
        embedder.embed(["late"])


def test_an_error_reaches_only_the_caller_whose_texts_failed() -> None:
    embedder = CoalescingEmbedder(Slow())
    outcomes: dict[str, object] = {}

    def call(text: str) -> None:
        try:
            outcomes[text] = embedder.embed([text]).shape
        except EmbedderError as exc:
            outcomes[text] = exc

    first = threading.Thread(target=call, args=("warm",))
    first.start()
    time.sleep(0.005)  # the worker is busy with "warm": the next two queue up and share a call, which fails
    later = [threading.Thread(target=call, args=(t,)) for t in ("boom", "fine")]
    for thread in later:
        thread.start()
    for thread in [first, *later]:
        thread.join()
    embedder.close()
    assert outcomes["warm"] == (1, 8)
    assert isinstance(outcomes["boom"], EmbedderError)
    assert outcomes["fine"] == (1, 8)
