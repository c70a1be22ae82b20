"""OpenAIEmbedder against the fake OpenAI server, over real HTTP on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import engram.http
from engram.embed.openai import OpenAIEmbedder
from engram.errors import ConfigError, EmbedderError
from engram.testing import FakeOpenAI, Reply, hash_embedding

MakeEmbedder = Callable[..., OpenAIEmbedder]


@pytest.fixture
def make_embedder(fake_openai: FakeOpenAI) -> Iterator[MakeEmbedder]:
    """Builds embedders aimed at the fake with fast retries, and closes them all afterwards."""
    made: list[OpenAIEmbedder] = []

    def make(**options) -> OpenAIEmbedder:
        options = {"model": "emb-test", "base_url": fake_openai.base_url, "backoff": 0.001, **options}
        made.append(OpenAIEmbedder(**options))
        return made[-1]

    yield make
    for embedder in made:
        embedder.close()


def vectors_body(*rows: list[Any], order: list[int] | None = None) -> dict:
    indices = order if order is not None else list(range(len(rows)))
    return {"object": "list", "model": "emb-test",
            "data": [{"object": "embedding", "index": i, "embedding": rows[i]} for i in indices]}


def test_vectors_are_unit_rows_of_the_servers_vectors(make_embedder) -> None:
    embedder = make_embedder()
    vectors = embedder.embed(["the cat sat", "a dog ran", "the cat sat"])
    assert vectors.shape == (3, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(vectors[0], hash_embedding("the cat sat"), rtol=1e-6)
    assert np.array_equal(vectors[0], vectors[2])
    assert embedder.embed([]).shape == (0, 64)


def test_dimensions_are_sent_honoured_and_named(make_embedder, fake_openai) -> None:
    embedder = make_embedder(dimensions=16)
    assert embedder.name == "openai:emb-test:16" and embedder.dimension == 16
    assert fake_openai.requests == []  # a given size needs no probe
    assert embedder.embed_one("hello").shape == (16,)
    (request,) = fake_openai.embedding_requests
    assert request.body == {"model": "emb-test", "input": ["hello"], "dimensions": 16}


def test_dimension_is_learned_from_the_first_batch(make_embedder, fake_openai) -> None:
    embedder = make_embedder()
    assert embedder.name == "openai:emb-test"
    embedder.embed(["one", "two"])
    assert embedder.dimension == 64
    assert fake_openai.count("/embeddings") == 1
    assert "dimensions" not in fake_openai.requests[0].body


def test_dimension_asked_first_costs_one_probe(make_embedder, fake_openai) -> None:
    embedder = make_embedder()
    assert embedder.dimension == 64 and embedder.dimension == 64
    assert fake_openai.count("/embeddings") == 1


def test_a_server_ignoring_dimensions_is_an_error(make_embedder, fake_openai) -> None:
    fake_openai.script_embeddings(vectors_body([1.0, 0.0, 0.0]))
    with pytest.raises(EmbedderError, match="asked for 2 dimensions, got 3"):
        make_embedder(dimensions=2).embed(["x"])


def test_results_are_ordered_by_index(make_embedder, fake_openai) -> None:
    fake_openai.script_embeddings(vectors_body([1.0, 0.0], [0.0, 1.0], [0.6, 0.8], order=[2, 0, 1]))
    vectors = make_embedder().embed(["a", "b", "c"])
    np.testing.assert_allclose(vectors, [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])


def test_auth_header_only_with_a_key(make_embedder, fake_openai) -> None:
    make_embedder(api_key="sk-secret").embed(["x"])
    make_embedder().embed(["x"])
    with_key, without_key = fake_openai.requests
    assert with_key.headers["authorization"] == "Bearer sk-secret"
    assert "authorization" not in without_key.headers


def test_texts_are_sent_in_batches(make_embedder, fake_openai) -> None:
    vectors = make_embedder(batch_size=2).embed([f"text {i}" for i in range(5)])
    assert vectors.shape == (5, 64)
    assert [r.body["input"] for r in fake_openai.requests] == [["text 0", "text 1"], ["text 2", "text 3"], ["text 4"]]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_status_then_success(make_embedder, fake_openai, status) -> None:
    fake_openai.script_embeddings(Reply(status=status), Reply(status=status))
    assert make_embedder(max_retries=3).embed(["x"]).shape == (1, 64)
    assert fake_openai.count("/embeddings") == 3


def test_gives_up_after_max_retries(make_embedder, fake_openai) -> None:
    fake_openai.script_embeddings(*[Reply(status=429, content="rate limited, slow down")] * 5)
    with pytest.raises(EmbedderError, match=r"HTTP 429.*after 3 attempts: rate limited, slow down"):
        make_embedder(max_retries=2).embed(["x"])
    assert fake_openai.count("/embeddings") == 3


def test_retry_after_is_respected(make_embedder, fake_openai) -> None:
    fake_openai.script_embeddings(Reply(status=429, headers={"Retry-After": "0.2"}))
    started = time.monotonic()
    make_embedder(backoff=0.0).embed(["x"])
    assert time.monotonic() - started >= 0.2
    assert fake_openai.count("/embeddings") == 2


def test_retry_after_is_capped(make_embedder, fake_openai, monkeypatch) -> None:
    monkeypatch.setattr(engram.http, "MAX_RETRY_AFTER", 0.01)
    fake_openai.script_embeddings(Reply(status=503, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    make_embedder().embed(["x"])
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_are_not_retried(make_embedder, fake_openai, status) -> None:
    fake_openai.script_embeddings(Reply(status=status, content="input is too long"))
    with pytest.raises(EmbedderError, match=f"HTTP {status}.*: input is too long"):
        make_embedder().embed(["x"])
    assert fake_openai.count("/embeddings") == 1


def test_a_plain_string_error_body_is_reported(make_embedder, fake_openai) -> None:
    fake_openai.script_embeddings(Reply(status=400, body={"error": "model 'emb-test' not found"}))
    with pytest.raises(EmbedderError, match="model 'emb-test' not found"):
        make_embedder().embed(["x"])


def test_malformed_json_is_an_error_not_retried(make_embedder, fake_openai) -> None:
    fake_openai.script_embeddings(Reply(body="{this is not json"))
    with pytest.raises(EmbedderError, match="malformed"):
        make_embedder().embed(["x"])
    assert fake_openai.count("/embeddings") == 1


@pytest.mark.parametrize("body", [
    vectors_body([1.0, 0.0]),                                  # one vector for two texts
    vectors_body([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]),          # three vectors for two texts
    vectors_body([1.0, 0.0], [0.0, 1.0], order=[0, 0]),        # a repeated index
    vectors_body([1.0, 0.0], [0.0, 1.0, 0.0]),                 # unequal sizes
    vectors_body(["a", "b"], ["c", "d"]),                       # not numbers
    {"object": "list"},                                         # no data
    [1, 2, 3],                                                  # not an object
])
def test_unusable_bodies_are_errors(make_embedder, fake_openai, body) -> None:
    fake_openai.script_embeddings(Reply(body=body))
    with pytest.raises(EmbedderError):
        make_embedder().embed(["a", "b"])
    assert fake_openai.count("/embeddings") == 1


def test_timeouts_are_retried(make_embedder, fake_openai) -> None:
    fake_openai.script_embeddings(Reply(delay=2.0))
    assert make_embedder(timeout=0.1).embed(["x"]).shape == (1, 64)
    assert fake_openai.count("/embeddings") == 2


def test_connect_errors_are_retried_then_translated() -> None:
    with FakeOpenAI() as gone:
        url = gone.base_url  # nothing listens here once the server has stopped
    with OpenAIEmbedder("emb-test", base_url=url, max_retries=2, backoff=0.001) as embedder, \
            pytest.raises(EmbedderError, match=r"ConnectError.*after 3 attempts") as raised:
        embedder.embed(["x"])
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_no_network_at_construction_and_transport_is_used() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=vectors_body([3.0, 4.0]))

    embedder = OpenAIEmbedder("m", api_key="k", transport=httpx.MockTransport(handler))
    assert seen == []
    np.testing.assert_allclose(embedder.embed_one("x"), [0.6, 0.8])
    assert str(seen[0].url) == "https://api.openai.com/v1/embeddings"
    embedder.close()


def test_close_then_reuse(make_embedder, fake_openai) -> None:
    embedder = make_embedder()
    embedder.embed(["x"])
    embedder.close()
    embedder.close()
    assert embedder.embed(["y"]).shape == (1, 64)


@pytest.mark.parametrize("options", [{"model": ""}, {"dimensions": 0}, {"max_retries": -1}, {"timeout": 0},
                                     {"batch_size": 0}, {"base_url": "ftp://example"}])
def test_bad_settings_are_config_errors(options) -> None:
    with pytest.raises(ConfigError):
        OpenAIEmbedder(**{"model": "m", **options})
