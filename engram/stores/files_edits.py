"""What edits by hand to a files store's memories.md mean as a write, as a pure function: each line added an ADD,
each line changed an UPDATE (the old version closed), each line removed a DELETE, all with actor `file`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engram.stores.base import ChangeSet, Close
from engram.stores.files_format import Edits
from engram.types import Event, MemoryRecord, Op, Scope, content_hash, new_batch_id, new_id

__all__ = ["hand_changes"]


def hand_changes(scope: Scope, path: str, edits: Edits, vectors: list[np.ndarray], stamp: float) -> ChangeSet:
    """The write `edits` of the file at `path` make at `stamp`, one batch; `vectors`: those of the added texts,
    then of the changed ones, in order."""
    batch = f"file-{new_batch_id()}"
    changes = ChangeSet(dedup=False)
    why = f"edited by hand in {path}"
    for i, text in enumerate(edits.added):
        record = MemoryRecord(id=new_id(), text=text, hash=content_hash(text), user_id=scope.user_id,
                              agent_id=scope.agent_id, run_id=scope.run_id, created_at=stamp, updated_at=stamp,
                              valid_from=stamp, batch_id=batch, position=i)
        changes.inserts.append((record, vectors[i]))
        changes.events.append(Event(record.id, Op.ADD, batch, stamp, new_text=text, reason=why, actor="file"))
    for (old, text), vector in zip(edits.changed, vectors[len(edits.added):], strict=True):
        new = replace(old, text=text, hash=content_hash(text), version=None, updated_at=stamp,
                      valid_from=max(stamp, old.valid_from), batch_id=batch, position=None)
        changes.inserts.append((new, vector))
        changes.closes.append(Close(old.id, new.valid_from, version=old.version))
        changes.events.append(Event(old.id, Op.UPDATE, batch, stamp, old_text=old.text, new_text=text, reason=why,
                                    actor="file"))
    for old in edits.removed:
        changes.closes.append(Close(old.id, max(stamp, old.valid_from), version=old.version))
        changes.events.append(Event(old.id, Op.DELETE, batch, stamp, old_text=old.text, reason=why, actor="file"))
    return changes
