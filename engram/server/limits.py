"""Limits: requests per key (a token bucket each, 429 with Retry-After) and the size of a request body (413).

The rate is kept per worker process: with `--workers N` a key may make up to N times server_rate_limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from engram.server.errors import RateLimited, TooLarge

__all__ = ["BodyLimit", "Bucket", "RateLimiter", "take"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: float


def take(bucket: Bucket | None, now: float, rate: float, burst: int) -> tuple[Bucket, float]:
    """One request against `bucket` (None: a full one): the bucket after it, and 0 when the request may go,
    else the seconds until it could. A refused request takes nothing."""
    tokens = float(burst) if bucket is None else min(float(burst), bucket.tokens + (now - bucket.at) * rate)
    if tokens >= 1:
        return Bucket(tokens - 1, now), 0.0
    return Bucket(tokens, now), (1 - tokens) / rate


class RateLimiter:
    """A token bucket per caller; rate 0 lets everything through."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, max(1, burst), clock
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def check(self, who: str) -> None:
        """RateLimited (with the whole seconds to wait) when `who` is over its rate."""
        if self.rate <= 0:
            return
        with self._lock:
            bucket, wait = take(self._buckets.get(who), self.clock(), self.rate, self.burst)
            self._buckets[who] = bucket
            if len(self._buckets) > 100_000:  # forget the full buckets of callers gone quiet
                now = self.clock()
                self._buckets = {k: b for k, b in self._buckets.items()
                                 if b.tokens + (now - b.at) * self.rate < self.burst}
        if wait:
            raise RateLimited(f"over {self.rate:g} requests per second for this key; retry in {wait:.2f} s",
                              retry_after=max(1, math.ceil(wait)))


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes is refused with 413: by its Content-Length before any of it is
    read, or, sent in chunks without one, as soon as what arrived passes the limit."""

    def __init__(self, app: ASGIApp, limit: int, reject: Callable[[TooLarge], ASGIApp]) -> None:
        self.app, self.limit, self.reject = app, limit, reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = TooLarge(f"the request body is larger than {self.limit:,} bytes (server_max_body)")
        if declared is not None:  # the HTTP layer delivers no more than it declares
            if declared.isdigit() and int(declared) > self.limit:
                await self.reject(too_large)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read it all here, up to the limit, then hand it on
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                await self.reject(too_large)(scope, receive, send)
                return
            more = message.get("more_body", False)
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A receive() that gives `messages`, then (for a disconnect) what `then` gives."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive
