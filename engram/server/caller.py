"""Who a request comes from, and the one place its user and its reach are decided.

The tenant is not decided here: a caller's tenant picks its own store (engram.server.tenancy), so no query can
reach another tenant's memories. Within a tenant, a key pinned to a user reaches only that user: the scope of
every read and write is forced to it, and a memory, batch or session of another user is reported not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engram.compat import owner_id
from engram.errors import NotFound
from engram.inputs import check_id, shown
from engram.server.errors import Forbidden

if TYPE_CHECKING:
    from engram.memory import Memory

__all__ = ["Caller"]


@dataclass(frozen=True)
class Caller:
    """A request's identity: its tenant (None: the home's own store, for a server without keys or a local
    stdio connection), the user it is pinned to (None: any user of the tenant), and whether it is an admin."""

    tenant: str | None
    user_id: str | None = None
    admin: bool = False
    key_id: str | None = None

    @property
    def label(self) -> str:
        """How logs name this caller (never the key itself)."""
        return f"key {self.key_id}" if self.key_id else "no key"

    def user(self, asked: Any) -> Any:
        """The user a request acts for: the pinned one (asking for another is Forbidden), else what it asked."""
        if self.user_id is None:
            return asked
        asked = owner_id(asked)
        if asked is not None and asked != self.user_id:
            raise Forbidden(f"this key is pinned to user {self.user_id!r}; it cannot act for {shown(asked)}")
        return self.user_id

    def filters(self, filters: Any) -> Any:
        """`filters` as the request gave them, once a user_id at their top (a scope key) is one this key may use."""
        if self.user_id is not None and isinstance(filters, dict) and "user_id" in filters:
            self.user(filters["user_id"])
        return filters

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise Forbidden(f"{what} needs an admin key")

    def owns(self, memory: Memory, memory_id: Any) -> str:
        """`memory_id` once it names a memory this caller may reach; NotFound (as for an unknown id) otherwise.
        Owners never change after a write, so this check stays true for the operation that follows it."""
        check_id(memory_id)
        if self.user_id is not None:
            record = memory.store.get(memory_id)
            if record is None or record.user_id != self.user_id:
                raise NotFound(f"no memory with id {memory_id!r}")
        return str(memory_id)

    def owns_batch(self, memory: Memory, batch_id: Any) -> str:
        """`batch_id` once every memory it changed is this caller's; NotFound otherwise."""
        check_id(batch_id, "batch_id")
        if self.user_id is not None:
            events = memory.store.batch(batch_id)
            if not events:
                raise NotFound(f"no batch with id {batch_id!r}")
            for event in events:
                record = memory.store.get(event.memory_id)
                if record is None or record.user_id != self.user_id:
                    raise NotFound(f"no batch with id {batch_id!r}")
        return str(batch_id)
