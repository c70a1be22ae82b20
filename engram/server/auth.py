"""The gate every request passes: its key (`Authorization: Token KEY`, `Bearer KEY` or `X-API-Key: KEY`) becomes
a Caller, and its rate is counted. Without keys in the keys database (and server_keys = "auto"), a request
without a key is the home's own caller: the server then listens only on loopback (the CLI refuses otherwise)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Literal

from engram.server.caller import Caller
from engram.server.errors import Forbidden, Unauthorized
from engram.server.keys import ApiKey, KeyStore
from engram.server.limits import RateLimiter

__all__ = ["Gate", "key_of"]

_TTL = 2.0  # seconds a checked key (or "there are no keys") is trusted before the database is asked again
_SCHEMES = ("token", "bearer")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _loopback_host(host: str) -> bool:
    """The Host header names a loopback address (any port)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower() in _LOOPBACK_NAMES


def key_of(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, or None."""
    given = headers.get("authorization")
    if given:
        scheme, _, value = given.strip().partition(" ")
        if scheme.lower() in _SCHEMES and value.strip():
            return value.strip()
        raise Unauthorized("the Authorization header must be 'Token <key>' or 'Bearer <key>'")
    return headers.get("x-api-key") or None


class Gate:
    def __init__(self, keys: KeyStore, limiter: RateLimiter, mode: Literal["auto", "required"] = "auto") -> None:
        self.keys, self.limiter, self.mode = keys, limiter, mode
        self._checked: dict[str, tuple[float, ApiKey | None]] = {}
        self._open: tuple[float, bool] | None = None

    def caller(self, headers: Mapping[str, str], client: str | None = None) -> Caller:
        """Who the request comes from; Unauthorized for a bad key, or for none where one is needed."""
        token = key_of(headers)
        if token is None:
            if not self._is_open():
                raise Unauthorized("this server needs a key: send 'Authorization: Token <key>' (engram keys create)")
            if not _loopback_host(headers.get("host", "")):  # a page whose name was re-pointed at 127.0.0.1
                raise Forbidden("without keys this server answers only requests addressed to a loopback host")
            caller = Caller(tenant=None, admin=True)
        else:
            key = self._check(token)
            if key is None:
                raise Unauthorized("this key is unknown or revoked")
            caller = Caller(key.tenant, key.user_id, key.admin, key.id)
        self.limiter.check(caller.key_id or f"open:{client}")
        return caller

    def _check(self, token: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._checked.get(token)
        if cached is not None and now - cached[0] < _TTL:
            return cached[1]
        if len(self._checked) > 10_000:
            self._checked.clear()
        key = self.keys.check(token)
        self._checked[token] = (now, key)
        return key

    def _is_open(self) -> bool:
        """True while requests without a key are served: mode auto and no active key."""
        if self.mode == "required":
            return False
        now = time.monotonic()
        if self._open is None or now - self._open[0] >= _TTL:
            self._open = (now, not self.keys.any_active())
        return self._open[1]
