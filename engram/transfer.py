"""Moving memories in and out: JSONL (engram's own export, or similar shapes), LoCoMo conversations, Markdown.

Readers check a whole file before returning, so a bad line is reported before anything is written. Imports go
as `Memory.add(..., infer=False)` stores them, many batches to a transaction: a killed import leaves whole
batches only, and running it again adds just what is missing (exact duplicates come back as NOOP).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engram import private
from engram.ahead import Ready, TextsAhead
from engram.bulk import fewer_collections
from engram.errors import InvalidInput
from engram.inputs import check_categories, check_metadata, parse_messages
from engram.raw import Lookahead, RawBatch, look_ahead
from engram.stores.base import Criteria
from engram.types import MemoryRecord, Op, Scope, content_hash, iso, new_batch_id, now, to_epoch, to_expiry

if TYPE_CHECKING:
    import numpy as np

    from engram.memory import Memory

__all__ = [
    "Item", "read_jsonl", "read_locomo", "detect_format", "import_items", "current_records", "export_jsonl",
    "export_markdown", "safe_filename",
]

LOCOMO_DATE = "%I:%M %p on %d %B, %Y"
ROLES = ("user", "assistant", "tool")  # add() skips system messages, so an import must not offer them
_SESSION = re.compile(r"session_(\d+)")


@dataclass(frozen=True)
class Item:
    """One memory to import: a message plus everything `Memory.add` takes with it. `origin` names it in errors."""

    content: str
    scope: Scope
    origin: str
    role: str = "user"
    name: str | None = None
    source: str | None = None  # the message id kept as the memory's source (a LoCoMo dia_id, an export's source)
    timestamp: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    expires_at: float | None = None  # the exact instant it leaves reads (Mem0's expiration_date), None: never

    def message(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.source is not None:
            out["id"] = self.source
        return out

    def batch_key(self) -> tuple[Any, ...]:
        """Items with equal keys may share one add() call."""
        return (self.scope, self.timestamp, json.dumps(self.metadata, sort_keys=True), self.categories, self.expires_at)


# -- reading ---------------------------------------------------------------------------------------------------

def read_jsonl(path: str | Path, user_id: str | None = None) -> list[Item]:
    """Every line of a JSONL file as an Item, all checked first. `user_id` replaces each line's user_id."""
    items = []
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"line {number}: not UTF-8 text") from None
            if number == 1 and '"engram": "archive"' in line:
                raise InvalidInput("this is a full export (engram export's default): import it with --format full")
            if line.strip():
                items.append(_jsonl_item(line, f"line {number}", user_id))
    return items


def _jsonl_item(line: str, origin: str, user_id: str | None) -> Item:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{origin}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise InvalidInput(f"{origin}: expected a JSON object, got {type(row).__name__}")
    try:
        text = next((row[k] for k in ("memory", "text", "content") if row.get(k) is not None), None)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("needs a non-empty string in 'memory' (or 'text' / 'content')")
        role = row.get("role") or "user"
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        when = next((row[k] for k in ("valid_from", "timestamp", "created_at") if row.get(k) is not None), None)
        return Item(
            content=text, scope=_scope(row, user_id), origin=origin, role=role, source=_source(row.get("source")),
            timestamp=None if when is None else to_epoch(when, "timestamp"),
            metadata=check_metadata(row.get("metadata")), categories=check_categories(row.get("categories")),
            expires_at=_expiry(row),
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{origin}: {exc}") from None


def _expiry(row: dict[str, Any]) -> float | None:
    """The line's expiry: its exact `expires_at` (as engram's export writes it), else Mem0's `expiration_date`."""
    if row.get("expires_at") is not None:
        return to_epoch(row["expires_at"], "expires_at")
    return to_expiry(row.get("expiration_date"))


def _scope(row: dict[str, Any], user_id: str | None) -> Scope:
    scope = Scope(user_id or row.get("user_id"), row.get("agent_id"), row.get("run_id"))
    if scope.is_empty():
        raise InvalidInput("has no user_id, agent_id or run_id (give one, or import with a user id)")
    return scope


def _source(value: Any) -> str | None:
    # add() keeps one message id per memory; an export's source list (one id with infer=False) maps back to it
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidInput(f"source must be a string or a list of strings, not {type(value).__name__}")


def read_locomo(path: str | Path, user_id: str | None = None) -> list[Item]:
    """LoCoMo conversations (a list, or one object): each turn one message, timed by its session's date."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    conversations = data if isinstance(data, list) else [data]
    items: list[Item] = []
    for index, conv in enumerate(conversations):
        if not isinstance(conv, dict) or not isinstance(conv.get("conversation"), dict):
            raise InvalidInput(f"conversation {index}: expected an object with a 'conversation' object")
        owner = user_id or conv.get("sample_id")
        if not isinstance(owner, str) or not owner.strip():
            raise InvalidInput(f"conversation {index} has no sample_id; give a user id")
        items += _locomo_turns(conv["conversation"], Scope(user_id=owner), str(conv.get("sample_id", index)))
    return items


def _locomo_turns(conv: dict[str, Any], scope: Scope, label: str) -> Iterator[Item]:
    sessions = sorted((int(m[1]), key) for key in conv if (m := _SESSION.fullmatch(key)))
    for _, key in sessions:  # numeric session order
        where = f"{label} {key}"
        turns, date = conv[key], conv.get(f"{key}_date_time")
        if not isinstance(turns, list):
            raise InvalidInput(f"{where}: expected a list of turns")
        try:
            when = datetime.strptime(str(date), LOCOMO_DATE).replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise InvalidInput(f"{where}_date_time: {date!r} is not like '1:56 pm on 8 May, 2023'") from None
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or not all(isinstance(turn.get(k), str) for k in ("speaker", "text")):
                raise InvalidInput(f"{where}[{i}]: a turn needs string 'speaker' and 'text'")
            content = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                content += f" [shares a photo: {turn['blip_caption']}]"
            dia_id = turn.get("dia_id")
            yield Item(content=content, scope=scope, origin=f"{where} turn {dia_id or i + 1}", name=turn["speaker"],
                       source=None if dia_id is None else str(dia_id), timestamp=when)


def detect_format(path: str | Path) -> str:
    """'full', 'jsonl' or 'locomo': a file that starts with a full export's header is 'full' (engram.archive); one
    that parses as one JSON list, or as one object with a 'conversation', is LoCoMo."""
    from engram.archive import is_archive

    path = Path(path)
    if is_archive(path):
        return "full"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "jsonl"  # several JSON lines do not parse as one document
    return "locomo" if isinstance(data, list) or (isinstance(data, dict) and "conversation" in data) else "jsonl"


# -- importing -------------------------------------------------------------------------------------------------

def import_items(memory: Memory, items: Iterable[Item], *, chunk: int = 64, per_write: int = 1024,
                 progress: Callable[[int], None] | None = None, workers: int = 0) -> dict[str, int]:
    """Store items as add(..., infer=False) would, one batch per chunk of consecutive items sharing scope,
    timestamp, metadata and categories (at most `chunk`), and consecutive batches of one scope written together
    (up to `per_write` items: one embedding call, one transaction). Returns {"ADD": n, "NOOP": n}, which add up
    to the number of items (a text the scope holds already is a NOOP): an interrupted import run again skips
    what it wrote, without embedding it again. Each write's new texts are embedded in a thread, and their graph
    rules and term counts found in `workers` processes (engram.ahead; `engram import` uses auto_workers), while
    the write before is stored, so a fast (GPU) embedder and the store work at once. Workers are spawned: a script that
    asks for them must guard its own work with `if __name__ == "__main__":`, as multiprocessing requires."""
    items = list(items)
    limit = memory.settings.max_memory_chars
    for item in items:  # fail before the first write
        if len(item.content.strip()) > limit:
            raise InvalidInput(f"{item.origin}: {len(item.content.strip())} characters; the limit is {limit}")
    counts = {Op.ADD.value: 0, Op.NOOP.value: 0}
    items.sort(key=lambda item: [(name, value or "") for name, value in vars(item.scope).items()])  # stable
    embedder = memory._bound_embedder()  # a store bound to another embedder refuses before anything is embedded
    ahead = TextsAhead(workers)
    with ThreadPoolExecutor(1, thread_name_prefix="engram-import-embed") as embedding, ahead, fewer_collections():
        pending: _Write | None = None
        for scope, groups in _writes(_chunks(items, chunk), per_write):
            if pending is not None and any(_expired(group[0], now()) for group in groups):
                _store(memory, pending, counts, progress)  # its batches depend on what the write before holds
                pending = None
            batches = [_batch(memory, group, limit) for group in groups]
            known, texts = look_ahead(memory.store, scope, batches)
            new = list(texts.values())
            write = _Write(scope, groups, batches, known, texts, embedding.submit(embedder.embed, new),
                           ahead.submit(new))
            if pending is not None:
                _store(memory, pending, counts, progress)
            pending = write
        if pending is not None:
            _store(memory, pending, counts, progress)
    return counts


@dataclass(frozen=True)
class _Write:
    """One write of an import, its new texts being embedded."""

    scope: Scope
    groups: list[list[Item]]
    batches: list[RawBatch]
    known: dict[str, MemoryRecord]
    texts: dict[str, str]  # by hash, the texts `vectors` embeds
    vectors: Future[np.ndarray]
    found: Ready  # what the workers find in those texts


def _store(memory: Memory, write: _Write, counts: dict[str, int],
           progress: Callable[[int], None] | None) -> None:
    ahead = Lookahead(write.known, dict(zip(write.texts, write.vectors.result(), strict=True)), write.found())
    stored = memory._add_raw(write.scope, write.batches, ahead)
    for group, results in zip(write.groups, stored, strict=True):
        for row in results:
            counts[row["event"]] += 1
        counts[Op.NOOP.value] += len(group) - len(results)  # repeats, and what an expired memory holds
        if progress is not None:
            progress(len(group))


def _batch(memory: Memory, group: list[Item], limit: int) -> RawBatch:
    """What add(infer=False) of this group would store, as one batch."""
    first, missing = group[0], _unless_held_expired(memory, group)
    messages = parse_messages([item.message() for item in missing], limit) if missing else []
    return RawBatch(messages, now() if first.timestamp is None else first.timestamp, new_batch_id(),
                    first.metadata, first.categories, first.expires_at)


def _writes(groups: Iterator[list[Item]], size: int) -> Iterator[tuple[Scope, list[list[Item]]]]:
    """Consecutive groups of one scope, up to `size` items a write."""
    if size <= 0:
        raise InvalidInput(f"per_write must be a positive integer, got {size!r}")
    run: list[list[Item]] = []
    held = 0  # items in `run`
    for group in groups:
        if run and (run[0][0].scope != group[0].scope or held + len(group) > size):
            yield run[0][0].scope, run
            run, held = [], 0
        run.append(group)
        held += len(group)
    if run:
        yield run[0][0].scope, run


def _unless_held_expired(memory: Memory, group: list[Item]) -> list[Item]:
    """The group without the items an expired memory of exactly their scope already says. add() folds only
    duplicates of memories still shown; this keeps an expired line imported again from being added twice."""
    first, at = group[0], now()
    if not _expired(first, at):
        return group
    held = {r.hash for r in memory.store.select(Criteria(first.scope, show_expired=True, read_at=at))
            if r.scope == first.scope and r.expired_by(at)}
    return [item for item in group if content_hash(item.content) not in held]


def _expired(item: Item, at: float) -> bool:
    return item.expires_at is not None and item.expires_at <= at


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    if size <= 0:
        raise InvalidInput(f"chunk must be a positive integer, got {size!r}")
    group: list[Item] = []
    shared: tuple[Any, ...] = ()  # the group's batch key, made once
    for item in items:
        key = item.batch_key()
        if group and (len(group) >= size or key != shared):
            yield group
            group = []
        if not group:
            shared = key
        group.append(item)
    if group:
        yield group


# -- exporting -------------------------------------------------------------------------------------------------

def current_records(memory: Memory, scope: Scope | None = None) -> Iterator[MemoryRecord]:
    """Every current memory (in `scope`, if given), oldest first: the order an import should replay."""
    for record, _vector in memory.store.dump():
        if record.is_current and (scope is None or scope.contains(record)):
            yield record


def export_jsonl(memory: Memory, out: TextIO, *, user_id: str | None = None, agent_id: str | None = None,
                 run_id: str | None = None) -> int:
    """One JSON line per current memory (the dicts get_all returns); every scope when none is given."""
    scope = Scope(user_id, agent_id, run_id)
    count = 0
    for record in current_records(memory, None if scope.is_empty() else scope):
        out.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count


def export_markdown(memory: Memory, out_dir: str | Path, *, user_id: str | None = None) -> list[Path]:
    """One Markdown file per user id in `out_dir` (memories without a user id go to `_no_user.md`)."""
    by_user: dict[str | None, list[MemoryRecord]] = {}
    for record in current_records(memory, Scope(user_id=user_id) if user_id else None):
        by_user.setdefault(record.user_id, []).append(record)
    out = private.make_dirs(out_dir)
    written = []
    for owner, records in sorted(by_user.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
        path = out / ("_no_user.md" if owner is None else f"{safe_filename(owner)}.md")
        private.write_text(path, _markdown(owner, records))
        written.append(path)
    return written


def _markdown(owner: str | None, records: list[MemoryRecord]) -> str:
    groups: dict[str | None, list[MemoryRecord]] = {}
    for record in records:  # a memory sits under its first category; the others are shown on its line
        groups.setdefault(record.categories[0] if record.categories else None, []).append(record)
    title = "memories without a user id" if owner is None else f"Memories of {_one_line(owner)}"
    lines = [f"# {title}", "", f"{len(records)} memories, exported {_day(datetime.now(UTC).timestamp())}."]
    for category in sorted(groups, key=lambda c: (c is None, c or "")):
        lines += ["", f"## {'Uncategorised' if category is None else category.capitalize()}", ""]
        for record in sorted(groups[category], key=lambda r: r.valid_from):
            also = f" _(also: {', '.join(record.categories[1:])})_" if len(record.categories) > 1 else ""
            lines.append(f"- {_one_line(record.text)} — {_day(record.valid_from)}{also}")
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _day(ts: float) -> str:
    return (iso(ts) or "")[:10]


def safe_filename(name: str, max_len: int = 80) -> str:
    """A file name for `name` with no path separators or traversal; different names give different files."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:max_len]
    if safe and safe == name:
        return safe
    # Whatever was changed, a hash of the original keeps "a/b" and "a_b" apart
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{safe or 'user'}-{digest}"

