"""Embedder contract: every implementation gives unit vectors of its dimension, in input order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from engram.embed import Embedder
from engram.embed.local import MiniLMEmbedder, packaged_model_dir

TEXTS = [
    "I like coffee",
    "User is allergic to peanuts and has had hay fever since moving to Boston in 2019.",
    "x",
    "Ünïcödé, 日本語 and emoji 🙂",
    "word " * 400,  # longer than the model's 256 tokens: truncated, not an error
]


@pytest.fixture(params=["minilm", "openai"])
def any_embedder(request, embedder, fake_openai) -> Iterator[Embedder]:
    if request.param == "minilm":
        yield embedder
    else:
        from engram.embed.openai import OpenAIEmbedder

        with OpenAIEmbedder("fake-embed", base_url=fake_openai.base_url, dimensions=32) as remote:
            yield remote


def test_contract_shapes_norms_and_order(any_embedder: Embedder) -> None:
    vectors = any_embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), any_embedder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([any_embedder.embed_one(t) for t in TEXTS])
    assert np.allclose(vectors, one_by_one, atol=1e-5)  # batching and padding change nothing
    assert any_embedder.embed([]).shape == (0, any_embedder.dimension)


def test_onnx_matches_sentence_transformers_reference(models_dir) -> None:
    texts = TEXTS + [f"sentence number {i} about topic {i % 7}" for i in range(40)]
    onnx = MiniLMEmbedder(models_dir, backend="onnx").embed(texts)
    reference = MiniLMEmbedder(models_dir, backend="sentence-transformers").embed(texts)
    cosines = (onnx * reference).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines.min()


def test_export_happens_once_and_is_reused(models_dir) -> None:
    onnx_file = models_dir / "all-MiniLM-L6-v2" / "model.onnx"
    stamp = onnx_file.stat().st_mtime_ns
    MiniLMEmbedder(models_dir).embed(["again"])
    assert onnx_file.stat().st_mtime_ns == stamp
    assert not list(onnx_file.parent.glob("*.tmp"))
    assert (packaged_model_dir() / "model.safetensors").exists()
