"""Request bodies, and the response shapes the OpenAPI document promises. Values are checked by the library
(one place for every rule), so these models only give each field its JSON type; unknown fields are refused."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from engram.compat import owner_id

__all__ = [
    "AddBody", "AddResult", "ChatBody", "ChatResult", "ClientAddBody", "ClientListBody", "ClientSearchBody",
    "DeleteAllResult", "Events", "HistoryRow", "KeyBody", "ListResult", "MemoryOut", "Message", "PageResult",
    "RevertBody", "SearchBody", "SearchResult", "SignInBody", "UpdateBody", "WebSearchBody", "WriteResult",
]

# Mem0 takes integer ids too; like the library, the server stores them as strings
Owner = Annotated[str | None, BeforeValidator(owner_id)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # Mem0's messages may carry name, id, ...
    role: str = "user"
    content: str


Messages = str | Message | list[Message]


class _Scoped(_Body):
    user_id: Owner = None
    agent_id: Owner = None
    run_id: Owner = None


class AddBody(_Scoped):
    messages: Messages
    metadata: dict[str, Any] | None = None
    infer: bool = True
    timestamp: str | float | None = Field(None, description="When this was true: ISO 8601 or epoch seconds.")
    expiration_date: str | None = None
    categories: list[str] | None = None
    filters: dict[str, Any] | None = None
    dry_run: bool = False


class SearchBody(_Scoped):
    query: str
    filters: dict[str, Any] | None = None
    limit: int | None = None
    top_k: int | None = None
    threshold: float | None = None
    categories: list[str] | None = None
    as_of: str | float | None = None
    show_expired: bool = False
    rerank: bool = False


class UpdateBody(_Body):
    text: str | None = None
    data: str | None = Field(None, description="Mem0's older name of text.")
    metadata: dict[str, Any] | None = None
    expiration_date: str | None = None
    timestamp: str | float | None = None
    expected_version: int | None = None


class RevertBody(_Body):
    batch_id: str


class ChatBody(_Body):
    user_id: Owner = None
    message: str
    session_id: str | None = None


class KeyBody(_Body):
    user_id: str | None = None
    admin: bool = False
    label: str | None = None


class ClientAddBody(_Scoped):
    """What MemoryClient.add sends to /v3/memories/add/."""

    messages: Messages
    metadata: dict[str, Any] | None = None
    infer: bool = True
    filters: dict[str, Any] | None = None
    timestamp: int | float | str | None = None
    expiration_date: str | None = None
    categories: list[str] | None = None


class ClientSearchBody(_Body):
    """What MemoryClient.search sends to /v3/memories/search/."""

    query: str
    filters: dict[str, Any] | None = None
    top_k: int | None = None
    threshold: float | None = None
    rerank: bool = False
    categories: list[str] | None = None
    show_expired: bool = False


class ClientListBody(_Body):
    """What MemoryClient.get_all sends to /v3/memories/ (page and page_size go in the query)."""

    filters: dict[str, Any] | None = None
    categories: list[str] | None = None
    show_expired: bool = False


# -- responses (documented, not re-validated: the library's own dicts go out as they are) ----------------------

class MemoryOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    memory: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any]
    categories: list[str]
    created_at: str
    updated_at: str


class Hit(MemoryOut):
    score: float
    similarity: float


class Events(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    memory: str | None
    event: str


class AddResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    results: list[Events]
    batch_id: str


class SearchResult(BaseModel):
    results: list[Hit]


class ListResult(BaseModel):
    results: list[MemoryOut]


class PageResult(ListResult):
    count: int
    next: str | None
    previous: str | None


class WriteResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    message: str


class DeleteAllResult(WriteResult):
    count: int
    batch_id: str


class HistoryRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    memory_id: str
    event: str
    old_memory: str | None = None
    new_memory: str | None = None


class ChatResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    response: str
    session_id: str
    memories_used: list[dict[str, Any]]
    trace: list[dict[str, Any]]


class SignInBody(_Body):
    key: str = Field(min_length=1, max_length=200)


class WebSearchBody(_Body):
    query: str
    user_id: Owner = None
    limit: int = Field(default=10, ge=1, le=100)
    show_expired: bool = False
