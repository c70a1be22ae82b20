"""The memory chat agent: a DSPy ReAct agent that searches the user's memories, answers, and saves in the background.

Saving never depends only on the model's `save_memory` flag: unsaved turns are also handed to
`Memory.add(infer=True)` every `save_every` user turns and when the session ends, so no fact is lost because the
model forgot the flag. Saves run on a background thread after the reply is returned; a failed save is logged,
kept in `failures`, and raised from `reply.saved.result()` and from `flush()`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

from engram.errors import EngramError, InvalidInput, NotFound
from engram.inputs import check_text, parse_messages
from engram.llm import LLM, Usage
from engram.memory import Memory
from engram.profile import Profiles
from engram.stores.sessions import SessionStore
from engram.types import Scope, Turn, now, to_epoch

__all__ = ["Agent", "AgentReply", "AsyncAgent"]

log = logging.getLogger("engram.agent")


@dataclass
class AgentReply:
    response: str
    session_id: str
    memories_used: list[dict[str, Any]]
    save_memory: bool  # the model's own flag
    saved: Future  # resolves to the add() result of the background save, or None when nothing was due
    trace: list[dict[str, Any]] = field(default_factory=list)  # the tool calls, in order
    usage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"response": self.response, "session_id": self.session_id, "memories_used": self.memories_used,
                "save_memory": self.save_memory, "trace": self.trace, "usage": self.usage}


class _Tools:
    """The agent's tools for one turn. The scope is fixed here, by the caller; the LLM can never choose it."""

    def __init__(self, memory: Memory, user_id: str, limit: int = 8) -> None:
        self.memory, self.user_id, self.limit = memory, user_id, limit
        self.used: dict[str, dict[str, Any]] = {}
        # DSPy's ReAct turns a tool's exception into an observation for the model; a store or embedder failure
        # must reach the caller instead, so it is kept here and raised after the agent's run.
        self.failures: list[EngramError] = []

    def search_memories(self, query: str, categories: list[str] = [], since: str | None = None,  # noqa: B006
                        until: str | None = None) -> list[dict[str, Any]] | str:
        """Search what the user said in earlier conversations. `categories` is a preference (all memories are
        searched when none match); `since` / `until` (ISO dates) bound when a memory was stated."""
        try:
            window = {op: to_epoch(v, name) for op, name, v in (("gte", "since", since), ("lte", "until", until)) if v}
            filters = {"valid_from": window} if window else None
            hits = self.memory.search(query, user_id=self.user_id, limit=self.limit, filters=filters,
                                      categories=categories or None)["results"]
            if not hits and categories:
                hits = self.memory.search(query, user_id=self.user_id, limit=self.limit, filters=filters)["results"]
        except InvalidInput as exc:
            return f"error: {exc}"  # the model's own mistake (a bad date, say): it may retry
        except EngramError as exc:
            self.failures.append(exc)
            raise
        for hit in hits:
            self.used.setdefault(hit["id"], hit)
        return [{"memory": h["memory"], "stated": (h["valid_from"] or "")[:10], "categories": h["categories"]}
                for h in hits]

    def grep_memories(self, pattern: str) -> list[dict[str, Any]] | str:
        """Find the user's memories whose text matches a regular expression (exact words, names, numbers), with
        the file and line that hold them when memory is kept as Markdown files."""
        try:
            found = self.memory.grep(pattern, user_id=self.user_id, limit=self.limit)["results"]
        except InvalidInput as exc:
            return f"error: {exc}"  # a bad pattern: the model may retry
        except EngramError as exc:
            self.failures.append(exc)
            raise
        return [{"memory": f["memory"], "file": f["file"], "line": f["line"]} for f in found]

    def explore_entity(self, name: str) -> dict[str, Any] | str:
        """A person, place or organisation the user mentioned: how it relates to others (two relations deep) and
        the memories those relations come from."""
        try:
            found = self.memory.related(name, user_id=self.user_id, hops=2)
        except (InvalidInput, NotFound) as exc:
            return f"error: {exc}"  # an unknown name, say: the model may try another
        except EngramError as exc:
            self.failures.append(exc)
            raise
        for memory in found["memories"]:
            self.used.setdefault(memory["id"], memory)
        return {"entity": found["entity"], "relations": [{k: r[k] for k in ("subject", "relation", "object")}
                                                         for r in found["relations"]],
                "memories": [m["memory"] for m in found["memories"]]}

    def list_categories(self) -> dict[str, int]:
        """The categories of the user's memories, with how many memories each has."""
        memories = self.memory.get_all(user_id=self.user_id, limit=1000)["results"]
        return dict(Counter(c for m in memories for c in m["categories"]).most_common())


class Agent:
    """`Agent(memory).reply(user_id, message, session_id=None)`: a reply that remembers the user."""

    def __init__(self, memory: Memory, lm: LLM | None = None, *, history_turns: int = 12, save_every: int = 6,
                 max_iters: int = 5) -> None:
        self.memory = memory
        self.sessions: SessionStore = memory.store.sessions  # the chat transcripts, in the same store as the memories
        self.llm = lm if lm is not None else (LLM(memory.settings) if memory.settings.llm_model else None)
        self.profiles = Profiles(memory, self.llm)
        self.history_turns, self.save_every, self.max_iters = history_turns, save_every, max_iters
        self.failures: list[BaseException] = []
        self._pending: list[Future] = []
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-save")  # saves run in order

    def reply(self, user_id: str, message: str, session_id: str | None = None) -> AgentReply:
        scope = Scope(user_id=user_id)
        text = check_text(message, self.memory.settings.max_memory_chars, "message")
        session = session_id or uuid.uuid4().hex
        recent = self.sessions.turns(session, scope, last=self.history_turns)
        usage, tools = Usage(), _Tools(self.memory, user_id)
        profile = self.profiles.get(user_id, usage)
        asked = now()
        if self.llm is not None:
            response, flag, trace = self._think(tools, profile, recent, text, usage)
        else:
            response, flag, trace = _recall(tools, text)
        turns = [Turn("user", text, asked), Turn("assistant", response, now())]
        self.sessions.append_turns(session, scope, turns)
        unsaved = [t for t in self.sessions.turns(session, scope) if not t.saved and t.role == "user"]
        due = flag or len(unsaved) >= self.save_every
        saved = self._save_later(scope, session) if due else _done(None)
        return AgentReply(response, session, list(tools.used.values()), flag, saved, trace, usage.to_dict())

    def end_session(self, user_id: str, session_id: str) -> Future:
        """Hand every turn not yet saved to add(infer=True), in the background."""
        return self._save_later(Scope(user_id=user_id), session_id)

    def flush(self) -> None:
        """Wait for every background save; raise the first failure."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._saver.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _think(self, tools: _Tools, profile: str, recent: list[Turn], message: str,
               usage: Usage) -> tuple[str, bool, list[dict[str, Any]]]:
        from engram.signatures import ChatTurn

        assert self.llm is not None
        agent = self.llm.dspy.ReAct(ChatTurn, tools=[tools.search_memories, tools.grep_memories, tools.explore_entity,
                                                          tools.list_categories],
                                    max_iters=self.max_iters)
        transcript = "\n".join(f"{t.role}: {t.content}" for t in recent) or "(this is the first message)"
        prediction = self.llm.run(agent, usage, profile=profile, transcript=transcript, message=message)
        if tools.failures:
            raise tools.failures[0]
        return str(prediction.response), bool(prediction.save_memory), _trace(prediction.trajectory)

    def _save_later(self, scope: Scope, session_id: str) -> Future:
        future = self._saver.submit(self._save, scope, session_id)
        future.add_done_callback(self._report)
        self._pending.append(future)
        return future

    def _save(self, scope: Scope, session_id: str) -> dict[str, Any] | None:
        unsaved = [t for t in self.sessions.turns(session_id, scope) if not t.saved]
        if not any(t.role == "user" for t in unsaved):
            return None
        # The memories and the "saved" mark land in one write: a crash between them cannot extract twice.
        messages = parse_messages([t.to_message() for t in unsaved], self.memory.settings.max_input_chars, whole=True)
        return self.memory._add(Scope(user_id=scope.user_id), messages, infer=True, when=unsaved[-1].created_at,
                                metadata={}, categories=(), saved=(session_id, scope, unsaved[-1].seq))  # type: ignore[arg-type]

    def _report(self, future: Future) -> None:
        error = future.exception()
        if error is not None:
            self.failures.append(error)
            log.error("saving chat turns failed (they stay unsaved and are retried at the next save): %s", error)


def _recall(tools: _Tools, message: str) -> tuple[str, bool, list[dict[str, Any]]]:
    """Without an LLM: answer with what memory search finds, so chat still shows what engram remembers."""
    hits = tools.search_memories(message)
    trace = [{"tool": "search_memories", "args": {"query": message}, "observation": hits}]
    if isinstance(hits, str) or not hits:
        return "I don't remember anything about that yet.", True, trace
    return "Here is what I remember:\n" + "\n".join(f"- {h['memory']}" for h in hits[:5]), True, trace


def _trace(trajectory: dict[str, Any]) -> list[dict[str, Any]]:
    steps = []
    i = 0
    while f"tool_name_{i}" in trajectory:
        steps.append({"thought": trajectory.get(f"thought_{i}"), "tool": trajectory[f"tool_name_{i}"],
                      "args": trajectory.get(f"tool_args_{i}"), "observation": trajectory.get(f"observation_{i}")})
        i += 1
    return steps


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class AsyncAgent:
    """Agent.reply as a coroutine (the same code, in a worker thread); saving stays in the background."""

    def __init__(self, memory: Memory, lm: LLM | None = None, **kwargs: Any) -> None:
        self.sync = Agent(memory, lm, **kwargs)

    async def reply(self, user_id: str, message: str, session_id: str | None = None) -> AgentReply:
        return await asyncio.to_thread(self.sync.reply, user_id, message, session_id)

    async def end_session(self, user_id: str, session_id: str) -> Any:
        return await asyncio.wrap_future(self.sync.end_session(user_id, session_id))

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)
