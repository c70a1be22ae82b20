"""How the Qdrant store lays a memory out as a point payload, and engram filters as Qdrant filters.

The two halves live together because each filter operator relies on a payload field written for it:

    metadata        the caller's metadata, minus list items no engram filter can match (objects, lists,
                    nulls inside lists), so that Qdrant's path flattening sees exactly what `Cond` sees
    metadata_json   the original metadata, only when cleaning changed it
    metadata_keys   every dotted path that exists (not missing, not null): `{"key": "*"}`
    metadata_nulls  paths of lists that hold a null: `eq None` matches such a list in `Cond`
    folded          case-folded copies of every string field: `icontains` is a substring match on them
    scope           the exact (user_id, agent_id, run_id) triple as one keyword
    status          pending | current | closed (pending versions are invisible to every read)

A filter is translated to a Qdrant condition, or folded to a constant when its outcome does not depend on the
record. What Qdrant cannot express exactly raises InvalidFilter instead of answering differently.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from typing import Any

from qdrant_client.http import models

from engram.errors import InvalidFilter
from engram.filters import ALL, RECORD_FIELDS, TIME_FIELDS, And, Cond, Filter, Not, Or
from engram.stores.base import Criteria, scope_key
from engram.types import SCOPE_FIELDS, Event, MemoryRecord, Op

__all__ = [
    "INDEXES",
    "Node",
    "batch_of",
    "collection_specs",
    "content_key",
    "event_payload",
    "match",
    "read_filter",
    "scope_key",
    "session_turns",
    "to_event",
    "to_payload",
    "to_record",
    "translate",
    "unexpired",
]

Node = bool | models.Condition  # True / False: the filter does not depend on the record
PENDING, CURRENT, CLOSED = "pending", "current", "closed"
_STRING_FIELDS = (*SCOPE_FIELDS, "role", "id", "hash")
_ALWAYS_PRESENT = ("memory", "categories", "id", "hash", "created_at", "updated_at", "valid_from")
_BARE_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_ORDER = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_RANGE = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
_KEYWORD, _INTEGER, _FLOAT = (models.PayloadSchemaType.KEYWORD, models.PayloadSchemaType.INTEGER,
                              models.PayloadSchemaType.FLOAT)
# Payload indexes (servers only; local mode has none). user_id is the tenant: Qdrant co-locates each user's points.
INDEXES: dict[str, dict[str, Any]] = {
    "memories": {"user_id": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
                 **dict.fromkeys(["agent_id", "run_id", "scope", "id", "hash", "status", "categories",
                                  "metadata_keys", "metadata_nulls"], _KEYWORD),
                 **dict.fromkeys(["created_at", "updated_at", "valid_from", "valid_to", "expires_at"], _FLOAT),
                 "txn": _INTEGER, "written": _INTEGER, "batch_id": _KEYWORD},
    "events": {"memory_id": _KEYWORD, "batch_id": _KEYWORD, "txn": _INTEGER, "seq": _INTEGER,
               "pending": models.PayloadSchemaType.BOOL},
    "journal": {"state": _KEYWORD, "memory_ids": _KEYWORD},
    "sessions": {"kind": _KEYWORD, "session_id": _KEYWORD, "scope": _KEYWORD, "user_id": _KEYWORD, "seq": _INTEGER},
}


def content_key(record: MemoryRecord) -> str:
    """A journal key for "this text, current in this scope": writers adding the same text clash on it."""
    return "content:" + hashlib.sha256(f"{scope_key(record.scope)}\x00{record.hash}".encode()).hexdigest()


# -- payload ------------------------------------------------------------------------------------------------

def to_payload(record: MemoryRecord, *, status: str, txn: int, written: int) -> dict[str, Any]:
    metadata, nulls = _clean(record.metadata)
    payload: dict[str, Any] = {
        "id": record.id, "text": record.text, "hash": record.hash, "role": record.role,
        "user_id": record.user_id, "agent_id": record.agent_id, "run_id": record.run_id,
        "scope": scope_key(record.scope), "categories": list(record.categories), "metadata": metadata,
        "metadata_keys": _paths(record.metadata), "metadata_nulls": nulls, "source": list(record.source),
        "folded": _folded(record, metadata), "created_at": record.created_at, "updated_at": record.updated_at,
        "valid_from": record.valid_from, "valid_to": record.valid_to, "superseded_by": record.superseded_by,
        "status": status, "txn": txn, "written": written, "batch_id": record.batch_id, "position": record.position,
        "expires_at": record.expires_at,
    }
    if metadata != record.metadata:
        payload["metadata_json"] = json.dumps(record.metadata, ensure_ascii=False)
    return payload


def to_record(payload: dict[str, Any], version: int) -> MemoryRecord:
    raw = payload.get("metadata_json")
    return MemoryRecord(
        version=version, id=payload["id"], text=payload["text"], hash=payload["hash"], role=payload.get("role"),
        user_id=payload.get("user_id"), agent_id=payload.get("agent_id"), run_id=payload.get("run_id"),
        categories=tuple(payload.get("categories") or ()),
        metadata=json.loads(raw) if raw is not None else payload.get("metadata") or {},
        source=tuple(payload.get("source") or ()), created_at=payload["created_at"],
        updated_at=payload["updated_at"], valid_from=payload["valid_from"], valid_to=payload.get("valid_to"),
        superseded_by=payload.get("superseded_by"),
        # versions written before batches were recorded: grouped by created_at, as they were then
        batch_id=batch_of(payload),
        position=payload["position"] if payload.get("position") is not None else payload.get("written"),
        expires_at=payload.get("expires_at"),
    )


def batch_of(payload: dict[str, Any]) -> str | None:
    """A version's batch; versions written before batches were recorded are grouped by created_at, as then."""
    return payload["batch_id"] if "batch_id" in payload else f"legacy-{payload['created_at']}"


def collection_specs(embedder: str, dimension: int, cluster: dict[str, int]) -> dict[str, dict[str, Any]]:
    """create_collection arguments per collection. The embedder binding is the memories collection's metadata:
    fixed when it is created, by whichever process creates it first."""
    return {
        "memories": dict(vectors_config={"dense": models.VectorParams(size=dimension, distance=models.Distance.DOT)},
                         sparse_vectors_config={"words": models.SparseVectorParams(modifier=models.Modifier.IDF)},
                         metadata={"engram": 1, "embedder": embedder, "dimension": dimension}, **cluster),
        "events": dict(vectors_config={}, **cluster),
        # the journal is tiny: one shard, but as replicated as the data it protects
        "journal": dict(vectors_config={}, **{k: v for k, v in cluster.items() if k != "shard_number"}),
    }


def event_payload(event: Event, old: int | None, new: int | None, *, seq: int, txn: int) -> dict[str, Any]:
    return {"memory_id": event.memory_id, "op": event.op.value, "batch_id": event.batch_id,
            "created_at": event.created_at, "old_text": event.old_text, "new_text": event.new_text,
            "reason": event.reason, "source": list(event.source), "old_version": old, "new_version": new,
            "actor": event.actor, "seq": seq, "txn": txn, "pending": True}


def to_event(p: dict[str, Any]) -> Event:
    return Event(memory_id=p["memory_id"], op=Op(p["op"]), batch_id=p["batch_id"], created_at=p["created_at"],
                 old_text=p["old_text"], new_text=p["new_text"], reason=p["reason"], source=tuple(p["source"]),
                 old_version=p["old_version"], new_version=p["new_version"], actor=p["actor"], seq=p["seq"])



def _clean(value: Any, path: str | None = "", nulls: list[str] | None = None) -> tuple[Any, list[str]]:
    """Drop list items `Cond` can never match (objects, lists, nulls); note where a list held a null. `path` is
    None below a key with a dot, which `Cond` cannot reach (it splits field names on dots)."""
    nulls = [] if nulls is None else nulls
    if isinstance(value, dict):
        def below(key: str) -> str | None:
            return None if path is None or "." in key else f"{path}.{key}" if path else key
        return {k: _clean(v, below(k), nulls)[0] for k, v in value.items()}, nulls
    if isinstance(value, list):
        if path is not None and any(item is None for item in value):
            nulls.append(path)
        return [item for item in value if item is not None and not isinstance(item, (dict, list))], nulls
    return value, nulls


def _paths(value: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths `Cond` can reach (keys with a dot never are: it splits on dots) whose value is not null."""
    out = []
    for key, item in value.items():
        if "." in key or item is None:
            continue
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(item, dict):
            out += _paths(item, path + ".")
    return out


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, dict):
        return {k: _fold(v) for k, v in value.items() if isinstance(v, (str, dict, list))}
    if isinstance(value, list):
        return [v.casefold() for v in value if isinstance(v, str)]
    return None


def _folded(record: MemoryRecord, metadata: dict[str, Any]) -> dict[str, Any]:
    folded: dict[str, Any] = {"memory": record.text.casefold(), "categories": _fold(list(record.categories)),
                              "metadata": _fold(metadata)}
    for name in _STRING_FIELDS:
        if getattr(record, name) is not None:
            folded[name] = getattr(record, name).casefold()
    return folded


# -- filters ------------------------------------------------------------------------------------------------

def match(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def session_turns(session_id: str, key: str | None, legacy: bool) -> models.Filter:
    """The turn points of the session (session_id, owner `key`). Turns an older engram wrote, when sessions were
    named by id alone, carry no scope: they belong to the `legacy` session of that id. `key=None`: every turn
    of that id (a journal intent from then)."""
    must: list[models.Condition] = [match("kind", "turn"), match("session_id", session_id)]
    if key is not None:
        own = match("scope", key)
        must.append(models.Filter(should=[own, models.IsEmptyCondition(is_empty=models.PayloadField(key="scope"))])
                    if legacy else own)
    return models.Filter(must=must)


def unexpired(cutoff: float) -> models.Filter:
    """Points that never expire (no or a null expires_at: points written before expiry existed too) or expire
    after `cutoff`."""
    return models.Filter(should=[models.IsEmptyCondition(is_empty=models.PayloadField(key="expires_at")),
                                 models.FieldCondition(key="expires_at", range=models.Range(gt=cutoff))])


def read_filter(criteria: Criteria, *, with_where: bool = True) -> models.Filter | None:
    """Everything a read must check, as one Qdrant filter; None when nothing can match."""
    must: list[models.Condition] = [match(name, value) for name, value in criteria.scope.items()]
    if criteria.as_of is None:
        must.append(match("status", CURRENT))
    else:
        at = criteria.as_of
        must.append(models.FieldCondition(key="status", match=models.MatchAny(any=[CURRENT, CLOSED])))
        must.append(models.FieldCondition(key="valid_from", range=models.Range(lte=at)))
        must.append(models.Filter(should=[match("status", CURRENT),
                                          models.FieldCondition(key="valid_to", range=models.Range(gt=at))]))
    if criteria.categories:
        must.append(models.FieldCondition(key="categories", match=models.MatchAny(any=list(criteria.categories))))
    cutoff = criteria.expiry_cutoff
    if cutoff is not None:
        must.append(unexpired(cutoff))
    where = translate(criteria.where) if with_where else True
    if where is False:
        return None
    if where is not True:
        must.append(where)
    return models.Filter(must=must)


def translate(node: Filter) -> Node:
    """An engram filter tree as a Qdrant condition with the same meaning as `Filter.matches`."""
    if node is ALL:
        return True
    if isinstance(node, And):
        return _all([translate(part) for part in node.parts])
    if isinstance(node, Or):
        return _any([translate(part) for part in node.parts])
    if isinstance(node, Not):
        return _not(translate(node.part))
    if isinstance(node, Cond):
        return _cond(node)
    raise InvalidFilter(f"the Qdrant store cannot translate filter {node!r}")


def _all(parts: list[Node]) -> Node:
    if any(part is False for part in parts):
        return False
    kept = [part for part in parts if not isinstance(part, bool)]
    return True if not kept else kept[0] if len(kept) == 1 else models.Filter(must=kept)


def _any(parts: list[Node]) -> Node:
    if any(part is True for part in parts):
        return True
    kept = [part for part in parts if not isinstance(part, bool)]
    return False if not kept else kept[0] if len(kept) == 1 else models.Filter(should=kept)


def _not(part: Node) -> Node:
    return (not part) if isinstance(part, bool) else models.Filter(must_not=[part])


def _cond(cond: Cond) -> Node:
    key = _key(cond.field)
    if cond.op == "exists":
        return _exists(cond.field, key)
    if cond.op in ("ne", "nin"):  # `Cond` defines them as exactly the negation of eq / in, lists and all
        return _not(_cond(Cond(cond.field, "eq" if cond.op == "ne" else "in", cond.value)))
    if cond.op == "eq":
        return _eq(cond.field, key, cond.value)
    if cond.op == "in":
        strings = [v for v in cond.value if isinstance(v, str)]
        parts = [_eq(cond.field, key, v) for v in cond.value if not isinstance(v, str)]
        if strings:
            parts.append(models.FieldCondition(key=key, match=models.MatchAny(any=strings)))
        return _any(parts)
    if cond.op in _ORDER:
        return _order(cond, key)
    if cond.op in ("contains", "icontains"):
        return _contains(cond, key)
    raise InvalidFilter(f"unknown operator {cond.op!r} on {cond.field!r}")


def _contains(cond: Cond, key: str) -> Node:
    if cond.field in TIME_FIELDS:
        return False  # numbers never contain text
    folded = cond.op == "icontains"
    needle = cond.value.casefold() if folded else cond.value
    return models.FieldCondition(key=_folded_key(cond.field) if folded else key,
                                 match=models.MatchSubstring(substring=needle))


def _eq(name: str, key: str, value: Any) -> Node:
    if value is None:  # a null scalar never equals anything, but a list holding a null equals None
        if name in RECORD_FIELDS:
            return False
        return match("metadata_nulls", name)
    if isinstance(value, (bool, str)):
        return match(key, value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return False
        # A range, not MatchValue: `Cond` counts 1 == 1.0, and MatchValue does not match floats.
        return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
    raise InvalidFilter(f"cannot compare {name!r} with {value!r}")


def _order(cond: Cond, key: str) -> Node:
    value = cond.value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, bool):  # booleans order False < True and compare only with booleans
        return _any([match(key, b) for b in (False, True) if _ORDER[cond.op](b, value)])
    if isinstance(value, str):
        raise InvalidFilter(
            f"{cond.op} on {cond.field!r} compares strings by order, which Qdrant filters cannot do; "
            "store the value as a number (e.g. epoch seconds) or use eq / in"
        )
    return models.FieldCondition(key=key, range=models.Range(**{_RANGE[cond.op]: value}))


def _exists(name: str, key: str) -> Node:
    if name in _ALWAYS_PRESENT:
        return True
    if name in RECORD_FIELDS:  # scope fields, role and valid_to: a scalar or null
        return models.Filter(must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=key))])
    return match("metadata_keys", name)


def _key(name: str) -> str:
    if name == "memory":
        return "text"
    if name in RECORD_FIELDS:
        return name
    return "metadata." + ".".join(_segment(part, name) for part in name.split("."))


def _folded_key(name: str) -> str:
    if name in RECORD_FIELDS:
        return f"folded.{name}"
    return "folded." + _key(name)


def _segment(part: str, name: str) -> str:
    if _BARE_SEGMENT.fullmatch(part):
        return part
    if not part or '"' in part:
        raise InvalidFilter(f"the Qdrant store cannot address metadata key {name!r} (empty or quoted segment)")
    return f'"{part}"'
