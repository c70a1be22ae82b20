"""Sign-in for the web page: a key traded for an HttpOnly, SameSite=Strict session cookie, and the CSRF token that
every state-changing request made with that cookie must carry in `X-CSRF-Token`.

Sessions live in the keys database (table web_sessions), so every worker knows them, and each request joins its
session to its key: revoking the key ends its sessions at once. Only a hash of the session token is stored.
Requests with a key in their headers never look at the cookie, so API clients need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from engram.errors import StoreError
from engram.server.caller import Caller
from engram.server.errors import Forbidden, Unauthorized
from engram.server.keys import ApiKey, keys_connection
from engram.server.limits import ASGIApp, Receive, Scope, Send

__all__ = ["COOKIE", "CSRF_HEADER", "SameOrigin", "WebSessions", "cross_site"]

COOKIE = "engram_session"
CSRF_HEADER = "x-csrf-token"
LIFETIME = 12 * 3600  # seconds a session lasts after sign-in
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SCHEMA = """CREATE TABLE IF NOT EXISTS web_sessions (
    hash TEXT PRIMARY KEY, key_id TEXT NOT NULL, csrf TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL)"""
_LOOKUP = """SELECT s.csrf, k.id, k.tenant, k.user_id, k.admin FROM web_sessions s JOIN keys k ON k.id = s.key_id
    WHERE s.hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL"""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebSessions:
    """The web page's sessions, in the keys database beside the keys they were opened with."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        return keys_connection(self._local, self.path, _SCHEMA)

    def open(self, key: ApiKey) -> tuple[str, str]:
        """A new session of `key`: (the cookie's token, the CSRF token)."""
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
        db = self._db()
        db.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
        db.execute("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?)",
                   (_digest(token), key.id, csrf, now, now + LIFETIME))
        return token, csrf

    def find(self, token: str) -> tuple[Caller, str] | None:
        """The caller of a live session and its CSRF token; None when the session is unknown, over or its key
        revoked."""
        try:
            row = self._db().execute(_LOOKUP, (_digest(token), time.time())).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # this server never had a key, so no session either
                return None
            raise StoreError(f"cannot read the keys database {self.path}: {exc}") from exc
        if row is None:
            return None
        return Caller(row[2], row[3], bool(row[4]), row[1]), row[0]

    def end(self, token: str) -> None:
        self._db().execute("DELETE FROM web_sessions WHERE hash = ?", (_digest(token),))

    def caller(self, method: str, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Caller | None:
        """The caller a request's session cookie names; None when it sends a key (or no cookie). Unauthorized for
        a session that is over; Forbidden for a state-changing request without the session's CSRF token."""
        if headers.get("authorization") or headers.get("x-api-key") or not cookies.get(COOKIE):
            return None
        found = self.find(cookies[COOKIE])
        if found is None:
            raise Unauthorized("the web session has ended (signed out, expired or its key revoked): sign in again")
        caller, csrf = found
        if method in UNSAFE and not hmac.compare_digest(headers.get(CSRF_HEADER, "").encode(), csrf.encode()):
            raise Forbidden("this request needs the session's CSRF token in the X-CSRF-Token header")
        return caller

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def cross_site(method: str, headers: Mapping[str, str]) -> bool:
    """A state-changing request a browser sent from another site: its Origin is not this host (or is "null"),
    or the browser says so in Sec-Fetch-Site. Clients that are not browsers send neither header."""
    if method not in UNSAFE:
        return False
    if headers.get("sec-fetch-site", "").lower() == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class SameOrigin:
    """Refuses, with 403 JSON, every state-changing request a browser sent from another site (CSRF, and DNS
    rebinding of a loopback server without keys), before any route sees it."""

    def __init__(self, app: ASGIApp, reject: Callable[[Forbidden], ASGIApp]) -> None:
        self.app, self.reject = app, reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if cross_site(scope["method"], headers):
                refused = self.reject(Forbidden("a state-changing request from another site is refused"))
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)
