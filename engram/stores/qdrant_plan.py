"""How the Qdrant store writes one checked change set: the journal's `Plan` (engram.stores.qdrant_journal).

The plan holds the new versions as points written pending, the events, and what each close and reopen expects
to find: the transaction that last wrote the point, so that replaying the plan never undoes a later write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from qdrant_client.http import models

from engram.stores.base import ChangeSet
from engram.stores.changes import Checked, with_versions
from engram.stores.qdrant_journal import Plan, new_ids
from engram.stores.qdrant_schema import PENDING, content_key, event_payload, to_payload
from engram.stores.sparse import encode_document
from engram.types import tick

__all__ = ["plan"]


def plan(changes: ChangeSet, checked: Checked, written_by: Mapping[int, int], saved: dict[str, Any] | None) -> Plan:
    """The plan of `changes` as `check` decided it. `written_by`: the transaction that last wrote each version it
    closes or reopens; `saved`: the session turns to mark (the journal intent's `saved`)."""
    closing = {before.version for _, before, _ in checked.closes}
    closes = [{"id": before.id, "v": before.version, "expect": written_by[before.version],  # type: ignore[index]
               "valid_to": ended.valid_to, "superseded_by": ended.superseded_by} for _, before, ended in checked.closes]
    reopens = [{"id": r.id, "v": r.version, "expect": None if r.version in closing else written_by[r.version]}  # type: ignore[index]
               for r in checked.reopens]
    kept = [changes.inserts[i] for i in checked.kept]
    txn, *versions = new_ids(1 + len(kept))
    if changes.keep_versions:  # checked free and valid
        versions = [record.version for record, _ in kept]  # type: ignore[misc]
    written = Plan(txn, [], closes, reopens, saved=saved)
    for i, (record, vector), version in zip(checked.kept, kept, versions, strict=True):
        indices, values = encode_document(record.text)
        payload = to_payload(record, status=PENDING, txn=txn, written=tick())
        if changes.graph.get(i):  # the version's entities and relations travel in its own point
            payload["graph"] = changes.graph[i].to_json()
        written.points.append(models.PointStruct(
            id=version, payload=payload,
            vector={"dense": np.asarray(vector, dtype=np.float32).reshape(-1).tolist(),
                    "words": models.SparseVector(indices=indices, values=values)}))
        written.inserted.append(replace(record, version=version))
    closed, inserted = checked.closed, {r.id: r.version for r in written.inserted}
    for event, event_id in zip(checked.events, new_ids(len(checked.events)), strict=True):
        filled = with_versions(event, closed, inserted)
        written.events.append(models.PointStruct(id=event_id, vector={}, payload=event_payload(
            filled, filled.old_version, filled.new_version,
            seq=event.seq if changes.keep_versions and event.seq is not None else tick(), txn=txn)))
    # Two writers adding the same text to the same scope touch no common memory: their content keys clash.
    contents = {content_key(r) for r in written.inserted if r.valid_to is None}
    written.memory_ids = sorted(set(closed) | set(inserted) | {r.id for r in checked.reopens}
                                | {e.memory_id for e in checked.events} | contents)
    return written
