"""A scriptable fake of the OpenAI HTTP API on 127.0.0.1.

It ships in the library (as httpx ships MockTransport) so engram's tests and its users' tests drive the same
fake over a real socket, instead of patching clients with mocks that pass while real behaviour breaks.

    with FakeOpenAI() as server:
        server.script_chat('{"facts": ["likes tea"]}', Reply(status=429, content="slow down"))
        llm = MyClient(base_url=server.base_url)       # talks HTTP to the fake
        assert server.count("/chat/completions") == 1

It also serves the Cohere-style `POST /rerank` that Cohere, Jina and vLLM speak ({model, query, documents,
top_n} -> {results: [{index, relevance_score}]}): by default scored by the share of query words a document
holds, or as scripted with `script_rerank`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "Reply", "RecordedRequest", "hash_embedding", "NO_CHAT_LEFT"]

CHAT_PATH = "/chat/completions"
EMBEDDINGS_PATH = "/embeddings"
MODELS_PATH = "/models"
RERANK_PATH = "/rerank"
DEFAULT_DIMENSIONS = 64
NO_CHAT_LEFT = "fake server: no scripted chat response left"

_WORD = re.compile(r"\w+")
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: header names lower-cased, `body` None unless a JSON object, `time` monotonic."""

    path: str
    headers: dict[str, str]
    body: dict | None
    time: float


@dataclass(frozen=True)
class Reply:
    """A scripted answer with control beyond plain content.

    With status >= 400 and no `body`, the server sends an OpenAI-style error whose message is `content`.
    `body` replaces the whole response body: a dict or list is sent as JSON, str or bytes as they are
    (to test malformed JSON). `delay` seconds pass before the answer. `tool_calls` take the OpenAI shape or
    the shorthand {"name": ..., "arguments": dict | str}.
    """

    content: str | None = None
    status: int = 200
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] | None = None
    tool_calls: list[dict] | None = None
    usage: dict | None = None


Script = str | dict | Reply | Callable[[dict], Any]


@dataclass(frozen=True)
class _Answer:
    status: int
    payload: bytes
    headers: dict[str, str]
    delay: float = 0.0


def hash_embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A deterministic unit vector: word tokens hashed into signed buckets, so shared words mean similarity."""
    vector = [0.0] * dimensions
    for token in _WORD.findall(text.lower()) or [text]:
        bucket, sign = _hash_token(token, dimensions)
        vector[bucket] += sign
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:  # tokens cancelled out; a real API never returns a zero vector, nor may we
        vector[_hash_token("\0" + text, dimensions)[0]] = norm = 1.0
    return [v / norm for v in vector]


def _hash_token(token: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little") % dimensions, (1.0 if digest[4] & 1 else -1.0)


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _message_text(content: Any) -> str:
    """Text of a message's content, either a string or a list of parts (the vision format)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _json_answer(status: int, payload: Any, headers: dict[str, str] | None = None, delay: float = 0.0) -> _Answer:
    if isinstance(payload, str):
        payload = payload.encode()
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return _Answer(status, data, {"Content-Type": "application/json", **(headers or {})}, delay)


def _error(status: int, message: str | None) -> _Answer:
    return _json_answer(status, _error_body(status, message))


def _error_body(status: int, message: str | None) -> dict:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message or f"fake server: HTTP {status}", "type": kind, "param": None, "code": None}}


def _tool_call(i: int, call: dict) -> dict:
    function = call.get("function") or {"name": call["name"], "arguments": call.get("arguments", {})}
    if not isinstance(function.get("arguments"), str):
        function = {**function, "arguments": json.dumps(function.get("arguments", {}))}
    return {"id": call.get("id", f"call_{i}"), "type": call.get("type", "function"), "function": function}


def _check_chat_request(body: dict) -> str | None:
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "'messages' must be a non-empty list"
    if body.get("stream"):
        return "fake server: streaming is not supported"
    return None


def _check_rerank_request(body: dict) -> str | None:
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        return "'query' must be a non-empty string"
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return "'documents' must be a non-empty list of strings"
    top_n = body.get("top_n", len(documents))
    if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1:
        return "'top_n' must be a positive integer"
    return None


def _rerank_body(request: dict) -> dict:
    """Each document scored by the share of the query's words it holds, best first, cut to top_n."""
    wanted = set(_WORD.findall(request["query"].lower()))
    scores = [len(wanted & set(_WORD.findall(d.lower()))) / max(len(wanted), 1) for d in request["documents"]]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:request.get("top_n", len(scores))]
    return {"id": "rerank-fake", "model": request["model"],
            "results": [{"index": i, "relevance_score": scores[i]} for i in order],
            "usage": {"total_tokens": sum(_words(d) for d in request["documents"]) + _words(request["query"])}}


def _check_embeddings_request(body: dict) -> str | None:
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    texts = body.get("input")
    if not (isinstance(texts, str) or (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts))):
        return "'input' must be a string or a non-empty list of strings"
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        return "'dimensions' must be a positive integer"
    return None


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 (random port) answering scripted chat and hashed embeddings."""

    def __init__(self, models: list[str] | None = None) -> None:
        self.models = list(models or ["fake-chat", "fake-embed"])
        self.default_chat: Script | None = None
        self.errors: list[BaseException] = []  # exceptions raised by scripted callables, answered as HTTP 500
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._chat: deque[Script] = deque()
        self._embeddings: deque[Script] = deque()
        self._rerank: deque[Script] = deque()
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAI is already started")
        self._stopping = threading.Event()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        # A short poll interval: shutdown() waits for the loop to notice, and tests stop a server each time.
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"FakeOpenAI:{httpd.server_address[1]}", daemon=True)
        self._httpd = httpd
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down, waking any scripted delay, and join the serving and handler threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        thread.join()
        httpd.server_close()  # joins handler threads, so nothing is recorded or answered after stop()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # scripting and inspection ----------------------------------------------------------------------------
    def script_chat(self, *responses: Script) -> None:
        """Queue chat answers (FIFO): str content, a full dict body, a Reply, or a callable(body) -> one of those."""
        for response in responses:
            _check_script(response, allow_str=True)
        with self._lock:
            self._chat.extend(responses)

    def script_embeddings(self, *responses: Script) -> None:
        """Queue embedding answers (FIFO): a full dict body, a Reply, or a callable(body) -> one of those."""
        for response in responses:
            _check_script(response, allow_str=False)
        with self._lock:
            self._embeddings.extend(responses)

    def script_rerank(self, *responses: Script) -> None:
        """Queue /rerank answers (FIFO): a full dict body, a Reply, or a callable(body) -> one of those."""
        for response in responses:
            _check_script(response, allow_str=False)
        with self._lock:
            self._rerank.extend(responses)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if _route(r.path) == CHAT_PATH]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if _route(r.path) == EMBEDDINGS_PATH]

    @property
    def rerank_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if _route(r.path) == RERANK_PATH]

    def count(self, path_suffix: str) -> int:
        return sum(r.path.split("?", 1)[0].endswith(path_suffix) for r in self.requests)

    # serving (called from handler threads) --------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _answer(self, method: str, path: str, body: dict | None, problem: str | None) -> _Answer:
        route = _route(path)
        if route == MODELS_PATH and method == "GET":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "engram-fake"} for m in self.models]
            return _json_answer(200, {"object": "list", "data": data})
        if route in (CHAT_PATH, EMBEDDINGS_PATH, RERANK_PATH) and method == "POST":
            if body is None:
                return _error(400, problem or "the body must be a JSON object")
            if route == RERANK_PATH:
                return self._answer_scripted(body, _check_rerank_request, self._rerank, _rerank_body)
            return self._answer_chat(body) if route == CHAT_PATH else self._answer_embeddings(body)
        if route in (CHAT_PATH, EMBEDDINGS_PATH, MODELS_PATH, RERANK_PATH):
            return _error(405, f"fake server: {method} is not allowed on {path}")
        return _error(404, f"fake server: unknown path {path}")

    def _answer_chat(self, body: dict) -> _Answer:
        problem = _check_chat_request(body)
        if problem:
            return _error(400, problem)
        with self._lock:
            script = self._chat.popleft() if self._chat else self.default_chat
        if script is None:
            return _error(500, NO_CHAT_LEFT)
        return self._render(script, body, lambda reply: self._completion(body, reply), allow_str=True)

    def _answer_embeddings(self, body: dict) -> _Answer:
        return self._answer_scripted(body, _check_embeddings_request, self._embeddings, _embeddings_body)

    def _answer_scripted(self, body: dict, check: Callable[[dict], str | None], queue: deque[Script],
                         default: Callable[[dict], dict]) -> _Answer:
        """The next scripted answer of a route whose unscripted answer is computed from the request."""
        problem = check(body)
        if problem:
            return _error(400, problem)
        with self._lock:
            script = queue.popleft() if queue else Reply()
        return self._render(script, body, lambda _reply: default(body), allow_str=False)

    def _render(self, script: Script, body: dict, success: Callable[[Reply], dict], allow_str: bool) -> _Answer:
        # Anything a script does wrong, including a test's own callable raising, becomes a visible HTTP 500
        # and lands in `errors`; otherwise the client would only see a dropped connection.
        try:
            answer = script(body) if callable(script) else script
            _check_script(answer, allow_str=allow_str, allow_callable=False)
            if isinstance(answer, dict):
                return _json_answer(200, answer)
            reply = Reply(content=answer) if isinstance(answer, str) else answer
            if reply.body is not None:
                payload = reply.body
            elif reply.status >= 400:
                payload = _error_body(reply.status, reply.content)
            else:
                payload = success(reply)
            return _json_answer(reply.status, payload, reply.headers, reply.delay)
        except Exception as exc:  # noqa: BLE001 - reported to the client and kept in self.errors, not swallowed
            with self._lock:
                self.errors.append(exc)
            return _error(500, f"fake server: script failed: {type(exc).__name__}: {exc}")

    def _completion(self, request: dict, reply: Reply) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls is not None:
            message["tool_calls"] = [_tool_call(i, call) for i, call in enumerate(reply.tool_calls)]
        prompt = sum(_words(_message_text(m.get("content"))) for m in request["messages"] if isinstance(m, dict))
        completion = _words(reply.content)
        usage = reply.usage or {"prompt_tokens": prompt, "completion_tokens": completion,
                                "total_tokens": prompt + completion}
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": usage,
        }


def _embeddings_body(request: dict) -> dict:
    texts = [request["input"]] if isinstance(request["input"], str) else request["input"]
    dimensions = request.get("dimensions", DEFAULT_DIMENSIONS)
    data = [{"object": "embedding", "index": i, "embedding": hash_embedding(text, dimensions)}
            for i, text in enumerate(texts)]
    tokens = sum(_words(t) for t in texts)
    return {"object": "list", "data": data, "model": request["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _check_script(script: Any, allow_str: bool, allow_callable: bool = True) -> None:
    if isinstance(script, (dict, Reply)) or (allow_str and isinstance(script, str)):
        return
    if allow_callable and callable(script):
        return
    kinds = "str, dict, Reply" if allow_str else "dict, Reply"
    raise TypeError(f"a scripted response must be {kinds}{' or a callable' if allow_callable else ''}, "
                    f"not {type(script).__name__}")


def _route(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    return path[3:] if path.startswith("/v1/") else path


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins handler threads and stop() means stopped
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    # HTTP/1.0 closes each connection after its answer, so no handler thread idles on a pooled keep-alive
    # connection and stop() never waits for a client to hang up.
    protocol_version = "HTTP/1.0"
    timeout = 5.0  # a client that connects and sends nothing must not hold stop() forever

    def do_GET(self) -> None:  # the names http.server dispatches to
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        body, problem = self._read_json() if method == "POST" else (None, None)
        fake = self.server.fake
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake._record(RecordedRequest(self.path, headers, body, time.monotonic()))
        answer = fake._answer(method, self.path, body, problem)
        if answer.delay > 0:
            fake._stopping.wait(answer.delay)
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.payload)))
            self.end_headers()
            self.wfile.write(answer.payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, e.g. its timeout fired during a scripted delay; nobody is left to tell

    def _read_json(self) -> tuple[dict | None, str | None]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            return None, f"the body is not valid JSON: {exc}"
        return (body, None) if isinstance(body, dict) else (None, "the body must be a JSON object")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read server.requests; per-request lines on stderr are noise
