"""API keys: made once and shown once, stored only as a SHA-256 hash in `<home>/keys.db`, checked in constant time.

A key reads `ek_<id>_<secret>`: the id (12 hex digits) finds the row, the hash of the whole key must match it.
Each key belongs to one tenant, may be pinned to one user, and may be an admin key (manage keys, reset).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engram.compat import owner_id
from engram.errors import InvalidInput, NotFound, StoreError
from engram.inputs import shown
from engram.private import create_file
from engram.types import Scope

__all__ = ["TENANT_PATTERN", "ApiKey", "KeyStore", "check_tenant"]

TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # a directory name and a collection suffix, as it is
_KEY = re.compile(r"ek_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_SCHEMA = """CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL, tenant TEXT NOT NULL, user_id TEXT, admin INTEGER NOT NULL,
    label TEXT, created_at REAL NOT NULL, revoked_at REAL)"""


def check_tenant(name: Any) -> str:
    """`name` when it is a tenant name (lowercase letters, digits, - and _, at most 63, not starting with - or _):
    it becomes a directory and a collection name, so nothing else may pass."""
    if not isinstance(name, str) or not TENANT_PATTERN.fullmatch(name):
        raise InvalidInput(f"a tenant is 1-63 lowercase letters, digits, '-' or '_' (starting with a letter or "
                           f"digit), got {shown(name)}")
    return name


@dataclass(frozen=True)
class ApiKey:
    """What a key grants (never the key itself)."""

    id: str
    tenant: str
    user_id: str | None
    admin: bool
    label: str | None
    created_at: float
    revoked_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tenant": self.tenant, "user_id": self.user_id, "admin": self.admin,
                "label": self.label, "created_at": self.created_at, "revoked_at": self.revoked_at}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def keys_connection(local: threading.local, path: Path, schema: str) -> sqlite3.Connection:
    """This thread's connection to the keys database at `path`, made (WAL, with `schema`) on its first use."""
    db: sqlite3.Connection | None = getattr(local, "db", None)
    if db is None:
        create_file(path)
        try:
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(schema)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the keys database {path}: {exc}") from exc
        local.db = db
    return db


class KeyStore:
    """The keys database. Safe across threads and processes (each call is one short SQLite transaction), so a
    key revoked by `engram keys revoke` is refused by every running worker at its next request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        return keys_connection(self._local, self.path, _SCHEMA)

    def create(self, tenant: str, user_id: Any = None, *, admin: bool = False,
               label: str | None = None) -> tuple[str, ApiKey]:
        """A new key (the only time its text exists) and what it grants."""
        check_tenant(tenant)
        user = Scope(user_id=owner_id(user_id)).user_id  # checked as any user id is
        if user is not None and admin:
            raise InvalidInput("an admin key manages its whole tenant: it cannot be pinned to a user")
        if label is not None and (not isinstance(label, str) or len(label) > 200):
            raise InvalidInput("a key's label is a string of at most 200 characters")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = f"ek_{key_id}_{secret}"
        record = ApiKey(key_id, tenant, user, admin, label, time.time())
        self._db().execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                           (key_id, _digest(token), tenant, user, int(admin), label, record.created_at))
        return token, record

    def check(self, token: str) -> ApiKey | None:
        """What `token` grants; None when it is not a key, unknown, wrong or revoked."""
        match = _KEY.fullmatch(token)
        if match is None:
            return None
        row = self._db().execute("SELECT hash, tenant, user_id, admin, label, created_at, revoked_at FROM keys "
                                 "WHERE id=?", (match.group(1),)).fetchone()
        if row is None or not hmac.compare_digest(row[0], _digest(token)) or row[6] is not None:
            return None
        return ApiKey(match.group(1), row[1], row[2], bool(row[3]), row[4], row[5])

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        rows = self._db().execute(
            "SELECT id, tenant, user_id, admin, label, created_at, revoked_at FROM keys "
            "WHERE ?1 IS NULL OR tenant=?1 ORDER BY created_at", (tenant,)).fetchall()
        return [ApiKey(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows]

    def revoke(self, key_id: str, tenant: str | None = None) -> ApiKey:
        """Revoke a key by its id (as `list` shows it); within `tenant` when given. NotFound otherwise."""
        if not any(k.id == key_id for k in self.list(tenant)):
            raise NotFound(f"no key {key_id!r}" + (f" in tenant {tenant}" if tenant else ""))
        self._db().execute("UPDATE keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL", (time.time(), key_id))
        return next(k for k in self.list(tenant) if k.id == key_id)

    def any_active(self) -> bool:
        if not self.path.exists():
            return False
        return self._db().execute("SELECT 1 FROM keys WHERE revoked_at IS NULL LIMIT 1").fetchone() is not None

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
