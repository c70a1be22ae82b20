"""Messages stored as they are (add(infer=False) and imports): one change set for one or many batches.

An import writes many batches of one scope together: their known texts are found in one lookup, their new
texts embedded in one call (longer runs waste less on padding) and written in one transaction, while each batch
keeps its own id, time, metadata and categories, as if added one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram.ahead import Found
from engram.embed.base import Embedder
from engram.inputs import Message
from engram.stores.base import ChangeSet, Store
from engram.types import Event, MemoryRecord, Op, Scope, content_hash, new_id, now

__all__ = ["Lookahead", "RawBatch", "look_ahead", "raw_changes"]


@dataclass(frozen=True)
class RawBatch:
    """One add(infer=False): its messages, when they became true, and what every memory of it carries."""

    messages: list[Message]
    when: float
    batch: str
    metadata: dict[str, Any]
    categories: tuple[str, ...]
    expires_at: float | None = None


@dataclass(frozen=True)
class Lookahead:
    """What was found and embedded for a write ahead of it, while the write before it was being stored (an
    import): texts the scope held then, vectors of the others, and what workers found in some of them
    (engram.ahead). Found again at the write, it stays right when the write before added some of the same
    texts."""

    known: dict[str, MemoryRecord]
    vectors: dict[str, np.ndarray]
    found: Found = field(default_factory=Found)


def look_ahead(store: Store, scope: Scope, batches: list[RawBatch]) -> tuple[dict[str, MemoryRecord], dict[str, str]]:
    """The texts of `batches` the scope holds now, and the others (to embed) by hash."""
    texts = {digest: message.content for mine in _wanted(batches) for digest, message in mine.items()}
    known = store.find_hashes(scope, list(texts)) if texts else {}
    return known, {digest: text for digest, text in texts.items() if digest not in known}


def raw_changes(store: Store, embedder: Embedder, scope: Scope, batches: list[RawBatch],
                ahead: Lookahead | None = None) -> tuple[ChangeSet, list[list[dict[str, Any]]]]:
    """The change set writing every new message of `batches` (system messages are not facts; a text the scope
    holds already, or an earlier batch of the same call, is a NOOP), and each batch's results."""
    wanted = _wanted(batches)
    every = list(dict.fromkeys(digest for mine in wanted for digest in mine))
    known: dict[str, Any] = dict(ahead.known) if ahead else {}
    unknown = [digest for digest in every if digest not in known]
    known |= store.find_hashes(scope, unknown) if unknown else {}  # spares embedding them
    fresh = [digest for digest in every if digest not in known]
    texts = {digest: message.content for mine in wanted for digest, message in mine.items()}
    ready = ahead.vectors if ahead else {}
    missing = [digest for digest in fresh if digest not in ready]
    vectors = {digest: ready[digest] for digest in fresh if digest in ready}
    vectors |= zip(missing, embedder.embed([texts[d] for d in missing]), strict=True)
    terms = ahead.found.terms if ahead else {}
    stamp = now()
    changes = ChangeSet(owner=scope)
    results: list[list[dict[str, Any]]] = []
    for raw, mine in zip(batches, wanted, strict=True):
        added: list[dict[str, Any]] = []
        noop: list[dict[str, Any]] = []
        for digest, message in mine.items():
            if digest in known:
                noop.append({"id": known[digest].id, "memory": known[digest].text, "event": Op.NOOP.value})
                continue
            source = (message.id,) if message.id else ()
            record = MemoryRecord(
                id=new_id(), text=message.content, hash=digest, user_id=scope.user_id,
                agent_id=scope.agent_id, run_id=scope.run_id, role=message.role, categories=raw.categories,
                metadata=raw.metadata, source=source, created_at=stamp, updated_at=stamp, valid_from=raw.when,
                batch_id=raw.batch, position=len(added), expires_at=raw.expires_at,
            )
            if message.content in terms:
                changes.terms[len(changes.inserts)] = terms[message.content]
            changes.inserts.append((record, vectors[digest]))
            changes.events.append(Event(record.id, Op.ADD, raw.batch, stamp, new_text=record.text, source=source,
                                        actor="user"))
            known[digest] = record  # a later batch of this call holding the same text finds it here
            added.append({"id": record.id, "memory": record.text, "event": Op.ADD.value})
        results.append(added + noop)
    return changes, results


def _wanted(batches: list[RawBatch]) -> list[dict[str, Message]]:
    """Each batch's messages that may become memories, by hash (a repeat within a batch once)."""
    wanted: list[dict[str, Message]] = []
    for raw in batches:
        mine: dict[str, Message] = {}
        for message in raw.messages:
            if message.role != "system":  # instructions to the model are not facts about anyone
                mine.setdefault(content_hash(message.content), message)
        wanted.append(mine)
    return wanted
