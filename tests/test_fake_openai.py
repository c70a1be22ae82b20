"""The fake OpenAI server does what tests rely on: scripting, recording, errors, delays and defaults."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from engram.testing import NO_CHAT_LEFT, FakeOpenAI, Reply, hash_embedding


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def chat(http: httpx.Client, server: FakeOpenAI, content: str = "hello world", **extra) -> httpx.Response:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": content}], **extra}
    return http.post(f"{server.base_url}/chat/completions", json=body)


def embed(http: httpx.Client, server: FakeOpenAI, texts, **extra) -> httpx.Response:
    return http.post(f"{server.base_url}/embeddings", json={"model": "emb-test", "input": texts, **extra})


def test_base_url_is_loopback_v1(fake_openai: FakeOpenAI) -> None:
    assert fake_openai.base_url.startswith("http://127.0.0.1:")
    assert fake_openai.base_url.endswith("/v1")


def test_string_reply_is_wrapped_as_a_full_completion(fake_openai, http) -> None:
    fake_openai.script_chat("three little words")
    response = chat(http, fake_openai, content="one two")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"] and isinstance(body["created"], int)
    assert body["model"] == "gpt-test"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "three little words"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_usage_counts_words_of_all_messages_including_parts(fake_openai, http) -> None:
    fake_openai.script_chat("ok")
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a b c"}]}]
    body = http.post(f"{fake_openai.base_url}/chat/completions", json={"model": "m", "messages": messages}).json()
    assert body["usage"]["prompt_tokens"] == 5


def test_chat_queue_is_fifo_then_empty_is_a_visible_500(fake_openai, http) -> None:
    fake_openai.script_chat("first", "second")
    fake_openai.script_chat("third")
    contents = [chat(http, fake_openai).json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert contents == ["first", "second", "third"]
    response = chat(http, fake_openai)
    assert response.status_code == 500
    assert response.json()["error"]["message"] == NO_CHAT_LEFT


def test_default_chat_answers_when_the_queue_is_empty(fake_openai, http) -> None:
    fake_openai.default_chat = "fallback"
    fake_openai.script_chat("scripted")
    contents = [chat(http, fake_openai).json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert contents == ["scripted", "fallback", "fallback"]


def test_dict_is_sent_as_is(fake_openai, http) -> None:
    fake_openai.script_chat({"anything": [1, 2]})
    assert chat(http, fake_openai).json() == {"anything": [1, 2]}


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (500, "server_error"),
                                              (400, "invalid_request_error")])
def test_error_reply_has_openai_error_shape(fake_openai, http, status, kind) -> None:
    fake_openai.script_chat(Reply(status=status, content="nope", headers={"Retry-After": "1"}))
    response = chat(http, fake_openai)
    assert response.status_code == status
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["message"] == "nope"
    assert response.json()["error"]["type"] == kind


def test_raw_body_can_be_malformed(fake_openai, http) -> None:
    fake_openai.script_chat(Reply(body="{not json"))
    response = chat(http, fake_openai)
    assert response.status_code == 200 and response.text == "{not json"


def test_tool_calls_and_explicit_usage(fake_openai, http) -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}
    fake_openai.script_chat(Reply(tool_calls=[{"name": "add_fact", "arguments": {"text": "likes tea"}}], usage=usage))
    body = chat(http, fake_openai).json()
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [{"id": "call_0", "type": "function",
                                      "function": {"name": "add_fact", "arguments": '{"text": "likes tea"}'}}]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"] == usage


def test_callable_sees_the_request_body(fake_openai, http) -> None:
    fake_openai.script_chat(lambda body: body["messages"][-1]["content"].upper())
    assert chat(http, fake_openai, content="echo me").json()["choices"][0]["message"]["content"] == "ECHO ME"


def test_a_failing_callable_is_a_500_and_is_kept(fake_openai, http) -> None:
    def broken(body: dict) -> str:
        raise ValueError("boom")

    fake_openai.script_chat(broken, lambda body: 42)
    first, second = chat(http, fake_openai), chat(http, fake_openai)
    assert first.status_code == second.status_code == 500
    assert "ValueError: boom" in first.json()["error"]["message"]
    assert [type(e) for e in fake_openai.errors] == [ValueError, TypeError]


def test_bad_script_kinds_are_refused_at_once(fake_openai) -> None:
    with pytest.raises(TypeError):
        fake_openai.script_chat(42)
    with pytest.raises(TypeError):
        fake_openai.script_embeddings("strings mean nothing for embeddings")


def test_delay_is_applied(fake_openai, http) -> None:
    fake_openai.script_chat(Reply(content="slow", delay=0.2))
    started = time.monotonic()
    assert chat(http, fake_openai).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_stop_wakes_a_delayed_answer(http) -> None:
    server = FakeOpenAI().start()
    server.script_chat(Reply(content="late", delay=30))
    with httpx.Client(timeout=0.1) as quick, pytest.raises(httpx.ReadTimeout):
        chat(quick, server)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2


def test_requests_are_recorded(fake_openai, http) -> None:
    fake_openai.script_chat("ok")
    before = time.monotonic()
    http.post(f"{fake_openai.base_url}/chat/completions", headers={"Authorization": "Bearer sk-test"},
              json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    embed(http, fake_openai, "x")
    http.get(f"{fake_openai.base_url}/models")
    paths = [r.path for r in fake_openai.requests]
    assert paths == ["/v1/chat/completions", "/v1/embeddings", "/v1/models"]
    (recorded,) = fake_openai.chat_requests
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert recorded.time >= before
    assert fake_openai.requests[2].body is None
    assert fake_openai.count("/embeddings") == 1 and fake_openai.count("/chat/completions") == 1
    with pytest.raises(AttributeError):
        recorded.path = "/elsewhere"


def test_paths_without_v1_prefix(fake_openai, http) -> None:
    root = fake_openai.base_url.removesuffix("/v1")
    fake_openai.script_chat("ok")
    messages = [{"role": "user", "content": "x"}]
    assert http.post(f"{root}/chat/completions", json={"model": "m", "messages": messages}).status_code == 200
    assert http.post(f"{root}/embeddings", json={"model": "m", "input": "x"}).status_code == 200
    assert http.get(f"{root}/models").json()["data"][0]["id"] == "fake-chat"
    assert fake_openai.count("/chat/completions") == 1


def test_unknown_path_and_bad_requests_are_errors(fake_openai, http) -> None:
    assert http.post(f"{fake_openai.base_url}/completions", json={}).status_code == 404
    assert http.get(f"{fake_openai.base_url}/embeddings").status_code == 405
    assert http.post(f"{fake_openai.base_url}/embeddings", content=b"{oops").status_code == 400
    assert embed(http, fake_openai, []).status_code == 400
    assert embed(http, fake_openai, "x", dimensions=0).status_code == 400
    assert chat(http, fake_openai, stream=True).status_code == 400
    assert len(fake_openai.requests) == 6


def test_embeddings_are_deterministic_unit_vectors(fake_openai, http) -> None:
    texts = ["the cat sat", "The cat sat!", "a dog ran", ""]
    body = embed(http, fake_openai, texts).json()
    assert body["object"] == "list" and body["model"] == "emb-test"
    assert body["usage"] == {"prompt_tokens": 9, "total_tokens": 9}
    vectors = [item["embedding"] for item in body["data"]]
    assert [item["index"] for item in body["data"]] == [0, 1, 2, 3]
    assert all(len(v) == 64 and math.isclose(sum(x * x for x in v), 1.0) for v in vectors)
    assert vectors[0] == vectors[1] == hash_embedding("the cat sat")


def test_embeddings_share_words_means_similar(fake_openai, http) -> None:
    body = embed(http, fake_openai, ["user likes green tea", "user likes black tea", "server port config"]).json()
    a, b, c = (item["embedding"] for item in body["data"])
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert dot(a, b) > 0.5 > dot(a, c)


def test_embeddings_single_string_and_dimensions(fake_openai, http) -> None:
    body = embed(http, fake_openai, "hello", dimensions=8).json()
    assert len(body["data"]) == 1 and len(body["data"][0]["embedding"]) == 8


def test_embeddings_can_be_scripted(fake_openai, http) -> None:
    fake_openai.script_embeddings(Reply(status=503, content="overloaded"), {"data": []},
                                  lambda body: Reply(delay=0.0), Reply(body="not json"))
    assert embed(http, fake_openai, "x").status_code == 503
    assert embed(http, fake_openai, "x").json() == {"data": []}
    assert len(embed(http, fake_openai, "x").json()["data"]) == 1  # a plain Reply means the default vectors
    assert embed(http, fake_openai, "x").text == "not json"
    assert embed(http, fake_openai, "x").status_code == 200


def test_concurrent_requests_are_all_recorded(fake_openai) -> None:
    fake_openai.default_chat = "ok"

    def worker() -> None:
        with httpx.Client(timeout=5.0) as client:
            for _ in range(5):
                assert chat(client, fake_openai).status_code == 200

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_openai.chat_requests) == 20


def test_lifecycle() -> None:
    server = FakeOpenAI()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    server.start()
    with pytest.raises(RuntimeError):
        server.start()
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = server.base_url


def rerank(http: httpx.Client, server: FakeOpenAI, query: str, documents, **extra) -> httpx.Response:
    return http.post(f"{server.base_url}/rerank",
                     json={"model": "rr-test", "query": query, "documents": documents, **extra})


def test_rerank_scores_by_shared_words_best_first_cut_to_top_n(fake_openai, http) -> None:
    body = rerank(http, fake_openai, "green tea", ["black coffee", "green tea", "tea"], top_n=2).json()
    assert body["results"] == [{"index": 1, "relevance_score": 1.0}, {"index": 2, "relevance_score": 0.5}]
    assert body["model"] == "rr-test" and len(fake_openai.rerank_requests) == 1
    assert http.post(f"{fake_openai.base_url.removesuffix('/v1')}/rerank",
                     json={"model": "m", "query": "q", "documents": ["q"]}).json()["results"][0]["index"] == 0


def test_rerank_can_be_scripted_and_checks_requests(fake_openai, http) -> None:
    fake_openai.script_rerank({"results": []}, Reply(status=503, content="warming up"))
    assert rerank(http, fake_openai, "q", ["a"]).json() == {"results": []}
    assert rerank(http, fake_openai, "q", ["a"]).status_code == 503
    for bad in ({"query": "", "documents": ["a"]}, {"query": "q", "documents": []}, {"query": "q", "documents": [1]},
                {"query": "q", "documents": ["a"], "top_n": 0}):
        response = http.post(f"{fake_openai.base_url}/rerank", json={"model": "m", **bad})
        assert response.status_code == 400, bad
    assert http.get(f"{fake_openai.base_url}/rerank").status_code == 405
