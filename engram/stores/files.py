"""The files store: a user's memory as Markdown files people and agents can read, grep, edit and version.

The directory is the source of truth: `<scope path>/memories.md` per scope (current memories, one line each, see
`engram.stores.files_format`), `versions.jsonl` and `history.jsonl` (every version with its vector and graph, and every
event; see `engram.stores.files_log`) and `engram.json` (the embedder binding). Each write is one journaled
batch across them (`engram.stores.files_journal`). `.index.db` is a SQLite store derived from the files, which
answers reads (search is SQLite's); deleting it loses nothing. Chat sessions live in `.sessions.db`.

Before each access the files' sizes and times are compared with those the index recorded: when the logs changed
(a writer killed before its index caught up, a `git pull`) the index is rebuilt from them; when a memories.md
changed, what was edited by hand becomes a write with actor `file` (UPDATE, DELETE, ADD; a new line gets its id
written back). Lines that cannot be read are kept and reported (`problems()`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engram.errors import InvalidInput, NotFound, StoreError
from engram.graph import Graph
from engram.graph_index import GraphView
from engram.graph_memory import add_graph
from engram.stores.base import ChangeSet, Criteria, Store, UserStats, scope_key
from engram.stores.changes import Checked
from engram.stores.files_edits import hand_changes
from engram.stores.files_format import (
    FILE,
    Edits,
    Item,
    Problem,
    diff,
    parse,
    render,
    render_item,
    scope_of_path,
    scope_path,
)
from engram.stores.files_journal import Batch, commit, locked, recover
from engram.stores.files_log import (
    EVENTS,
    VERSIONS,
    closed_line,
    event_line,
    inserted_line,
    read_events,
    read_versions,
    reopened_line,
)
from engram.stores.sqlite import SQLiteStore
from engram.stores.sqlite_graph import write_graphs
from engram.stores.sqlite_open import BINDING, record_binding
from engram.stores.sqlite_rows import COLUMNS, insert_version, log_event, to_record
from engram.types import Event, MemoryRecord, Op, Scope, now

__all__ = ["FilesStore", "grep"]

log = logging.getLogger(__name__)
Embed = Callable[[list[str]], np.ndarray]
BINDING_FILE = "engram.json"
ROOT_FILES = (VERSIONS, EVENTS, BINDING_FILE)
_SEEN = ("CREATE TABLE IF NOT EXISTS files_seen (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, sha TEXT, "
         "scope TEXT)")
_EVENT_COLUMNS = ("seq, memory_id, op, old_text, new_text, reason, source, old_version, new_version, actor, "
                  "batch_id, created_at")


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_size, found.st_mtime_ns


class _Index(SQLiteStore):
    """The derived index: a SQLite store whose every write also writes the files, inside its transaction."""

    def __init__(self, path: Path, files: FilesStore, cache_rows: int) -> None:
        super().__init__(path, cache_rows=cache_rows)
        self.files = files

    def _apply(self, db: sqlite3.Connection, changes: ChangeSet,
               terms: list[bytes]) -> tuple[dict[int, MemoryRecord], Checked, dict, int]:
        last_seq = db.execute("SELECT coalesce(max(seq), 0) FROM history").fetchone()[0]
        saved = changes.saved
        result = super()._apply(db, replace(changes, saved=None), terms)  # the session mark is in the files' batch
        if saved is not None and not self.files.sessions_db.sessions.started(self.files.sessions_db._db, *saved[:2]):
            raise NotFound(f"no session {saved[0]!r} in this scope")
        self.files.written(db, changes, result[0], result[1], last_seq)
        return result


class FilesStore(Store):
    def __init__(self, root: str | Path, *, embed: Embed | None = None, git: bool = False,
                 cache_rows: int = 500_000) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.embed = embed  # makes the vectors of memories written by hand; None: such edits raise StoreError
        self.git = git
        self._lock = threading.RLock()
        self.sessions_db = SQLiteStore(self.root / ".sessions.db")
        self.sessions = self.sessions_db.sessions
        self.index = _Index(self.root / ".index.db", self, cache_rows)
        with self.index._write() as db:
            db.execute(_SEEN)
        self._synced_once = False
        self._last_batch: str | None = None
        self._fresh()

    # -- keeping the index up to date with the files ------------------------------------------------------------

    def _seen(self) -> dict[str, tuple[int, int]]:
        rows = self.index._read("SELECT path, size, mtime FROM files_seen")
        return {row[0]: (row[1], row[2]) for row in rows if row[1] is not None}

    def _unchanged(self) -> bool:
        if not self._synced_once or (self.root / ".journal").exists():
            return False
        seen = self._seen()
        names = set(ROOT_FILES) | set(seen)
        return all(_stat(self.root / name) == seen.get(name) for name in names)

    def _fresh(self) -> None:
        """Bring the index up to date with the files when any of them changed since it last looked."""
        if self._unchanged():
            return
        with self._lock, locked(self.root):
            self._sync()

    def _sync(self) -> None:
        """With the lock held: finish an interrupted batch, rebuild from changed logs, take in edits by hand."""
        batch = recover(self.root)
        if batch is not None and batch.saved:
            self._mark(batch.saved)
        seen = self._seen()
        if any(_stat(self.root / name) != seen.get(name) for name in ROOT_FILES):
            self._rebuild()
            seen = self._seen()
        paths = set(seen) - set(ROOT_FILES)
        if not self._synced_once:  # memories.md files the index does not know: made by hand, or after a rebuild
            paths |= {str(p.relative_to(self.root)) for p in self.root.rglob(FILE) if not _hidden(p, self.root)}
        for path in sorted(paths):
            if _stat(self.root / path) != seen.get(path):
                self._take_in(path)
        self._synced_once = True

    def _rebuild(self) -> None:
        """Make the index's memories, history and binding those the logs hold."""
        versions, graphs = read_versions(self.root / VERSIONS)
        events = read_events(self.root / EVENTS)
        binding = self._binding_file()
        with self.index._write() as db:
            keys = [row[0] for row in db.execute("SELECT key FROM scope_versions")]
            for table in ("memories", "history", "files_seen", "graph_entities", "graph_relations"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM engram_meta WHERE key IN ('embedder', 'dimension')")
            if binding is not None:
                record_binding(db, *binding)
            for _, (record, vector) in sorted(versions.items()):
                insert_version(db, record, vector, keep=True)
            write_graphs(db, [(version, graphs[version]) for version in sorted(versions) if version in graphs])
            for event in events:
                log_event(db, event, keep=True)
            scopes = {r.scope for r, _ in versions.values()}
            SQLiteStore._bump(db, set(keys) | {f"{k}\x00{v}" for s in scopes for k, v in s.items()})
            for name in ROOT_FILES:
                self._record(db, name, None)
            for scope in scopes:  # compared with the index's current memories next
                db.execute("INSERT OR REPLACE INTO files_seen VALUES (?, NULL, NULL, NULL, ?)",
                           (f"{scope_path(scope)}/{FILE}", scope_key(scope)))
            self.index._cache.clear()

    def _binding_file(self) -> tuple[str, int] | None:
        path = self.root / BINDING_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["embedder"]), int(data["dimension"])

    def _record(self, db: sqlite3.Connection, path: str, scope: Scope | None, sha: str | None = None) -> None:
        stat = _stat(self.root / path)
        db.execute("INSERT OR REPLACE INTO files_seen VALUES (?, ?, ?, ?, ?)",
                   (path, *(stat or (None, None)), sha, scope_key(scope) if scope else None))

    def _scope_of(self, path: str) -> Scope | None:
        rows = self.index._read("SELECT scope FROM files_seen WHERE path=?", (path,))
        if rows and rows[0][0]:
            return Scope(*json.loads(rows[0][0]))
        return scope_of_path(str(Path(path).parent))

    def _take_in(self, path: str) -> None:
        """Read one memories.md: what was edited by hand becomes a write (actor `file`)."""
        scope = self._scope_of(path)
        content = _read(self.root / path)
        if scope is None:
            log.warning("%s: not a scope directory engram knows; left alone", path)
            return
        lines, problems = parse(content, path)
        for problem in problems:
            log.warning("unreadable memory line, kept as it is: %s", problem)
        current = [r for r in self.index.select(Criteria(scope, show_expired=True)) if r.scope == scope]
        edits = diff(lines, current)
        if edits:
            self.index.apply(self._hand_changes(scope, path, edits))
        else:
            with self.index._write() as db:
                self._record(db, path, scope)

    def _hand_changes(self, scope: Scope, path: str, edits: Edits) -> ChangeSet:
        texts = edits.added + [text for _, text in edits.changed]
        if texts and self.embed is None:
            raise StoreError(f"{path} has memories added or changed by hand, and this store has no embedder to "
                             "make their vectors: open it through Memory (or give FilesStore(embed=...))")
        vectors = list(self.embed(texts)) if texts and self.embed is not None else []
        changes = hand_changes(scope, path, edits, vectors, now())
        add_graph(changes, self.index, scope)  # by the rules of any add(infer=False); the index is up to date
        return changes

    # -- writing -----------------------------------------------------------------------------------------------

    def written(self, db: sqlite3.Connection, changes: ChangeSet, stored: dict[int, MemoryRecord], checked: Checked,
                last_seq: int) -> None:
        """Inside the index's write of `changes`: write the same change to the files, as one batch."""
        batch = Batch()
        versions = [inserted_line(stored[i], changes.inserts[i][1], changes.graph.get(i)) for i in checked.kept]
        versions += [closed_line(ended.version, ended.valid_to, ended.superseded_by)  # type: ignore[arg-type]
                     for _, _, ended in checked.closes]
        versions += [reopened_line(r.version) for r in checked.reopens]  # type: ignore[arg-type]
        given = [e.seq for e in changes.events if e.seq is not None] if changes.keep_versions else []
        rows = db.execute(f"SELECT {_EVENT_COLUMNS} FROM history WHERE seq > ? OR seq IN "
                          f"({','.join('?' * len(given))}) ORDER BY seq", (last_seq, *given)).fetchall()
        events = [_event(row) for row in rows]
        for name, logged in ((VERSIONS, versions), (EVENTS, [event_line(e) for e in events])):
            if logged:
                batch.append[name] = (_size(self.root / name), "".join(logged))
        scopes = {r.scope for r in [stored[i] for i in checked.kept] + [e for _, _, e in checked.closes]
                  + checked.reopens}
        only_added = not checked.closes and not checked.reopens
        for scope in scopes:
            path = f"{scope_path(scope)}/{FILE}"
            size = self._appendable(db, path) if only_added else None
            if size is not None:  # new memories only, in a file as engram last saw it: appended, not rewritten
                lines = [render_item(stored[i]) + "\n" for i in checked.kept if stored[i].scope == scope]
                batch.append[path] = (size, "".join(lines))
                continue
            current = [to_record(row) for row in db.execute(
                f"SELECT {COLUMNS} FROM memories WHERE valid_to IS NULL AND user_id IS ? AND agent_id IS ? "
                "AND run_id IS ? ORDER BY rowid", (scope.user_id, scope.agent_id, scope.run_id))]
            parsed, _problems = parse(_read(self.root / path), path)
            batch.replace[path] = render(parsed, current, scope)
        binding = dict(db.execute(BINDING))
        if binding and self._binding_file() != (binding["embedder"], int(binding["dimension"])):
            batch.replace[BINDING_FILE] = json.dumps({"embedder": binding["embedder"],
                                                      "dimension": int(binding["dimension"])}) + "\n"
        if changes.saved is not None:
            session, owner, seq = changes.saved
            batch.saved = [session, owner.user_id, owner.agent_id, owner.run_id, seq]
        commit(self.root, batch)
        if batch.saved:
            self._mark(batch.saved)
        for name in [*batch.append, *batch.replace]:
            self._record(db, name, None if name in ROOT_FILES else self._scope_for(name, scopes))
        self._last_batch = next((e.batch_id for e in events), None)

    def _appendable(self, db: sqlite3.Connection, path: str) -> int | None:
        """The size of a memories.md lines may be appended to: unchanged since recorded, ending a line."""
        row = db.execute("SELECT size, mtime FROM files_seen WHERE path=?", (path,)).fetchone()
        stat = _stat(self.root / path)
        if row is None or stat is None or stat != tuple(row) or stat[0] == 0:
            return None
        with open(self.root / path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return stat[0] if fh.read(1) == b"\n" else None

    @staticmethod
    def _scope_for(path: str, scopes: set[Scope]) -> Scope | None:
        return next((s for s in scopes if f"{scope_path(s)}/{FILE}" == path), None)

    def _mark(self, saved: list) -> None:
        session, user_id, agent_id, run_id, seq = saved
        self.sessions_db.sessions.mark_saved(session, Scope(user_id, agent_id, run_id), seq)

    def apply(self, changes: ChangeSet) -> list[MemoryRecord]:
        with self._lock, locked(self.root):
            self._sync()
            self._last_batch = None
            stored = self.index.apply(changes)
            if self.git and changes:
                self._commit_git(self._last_batch)
        return stored

    def _commit_git(self, batch: str | None) -> None:
        """files_git: each batch a commit of the machine's git, its batch id in the message."""
        def git(*args: str) -> None:
            done = subprocess.run(["git", "-C", str(self.root), *args], check=False, capture_output=True, text=True)
            if done.returncode != 0:
                raise StoreError(f"git {args[0]} in {self.root} failed: {done.stderr.strip() or done.stdout.strip()}")

        if not (self.root / ".git").exists():
            git("init", "-q")
            (self.root / ".gitignore").write_text(".index.db*\n.sessions.db*\n.lock\n.journal\n*.tmp\n")
        git("add", "-A")
        git("-c", "user.name=engram", "-c", "user.email=engram@localhost", "commit", "-q", "--allow-empty", "-m",
            f"engram batch {batch or 'write'}")

    def bind_embedder(self, name: str, dimension: int) -> None:
        self._fresh()
        self.index.bind_embedder(name, dimension)

    def binding(self) -> tuple[str, int] | None:
        self._fresh()
        return self.index.binding()

    def reset(self) -> None:
        with self._lock, locked(self.root):
            commit(self.root, Batch(reset=True))
            self.index.reset()
            self.sessions_db.reset()
            with self.index._write() as db:
                db.execute("DELETE FROM files_seen")
                for name in ROOT_FILES:
                    self._record(db, name, None)

    def close(self) -> None:
        self.index.close()
        self.sessions_db.close()

    # -- reading: the index answers, once it is up to date -------------------------------------------------------

    def get(self, memory_id: str) -> MemoryRecord | None:
        self._fresh()
        return self.index.get(memory_id)

    def find_hashes(self, scope: Scope, hashes: list[str]) -> dict[str, MemoryRecord]:
        self._fresh()
        return self.index.find_hashes(scope, hashes)

    def select(self, criteria: Criteria, limit: int | None = None) -> list[MemoryRecord]:
        self._fresh()
        return self.index.select(criteria, limit)

    def dense(self, vector: np.ndarray, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        self._fresh()
        return self.index.dense(vector, criteria, k)

    def keyword(self, text: str, criteria: Criteria, k: int) -> list[tuple[MemoryRecord, float]]:
        self._fresh()
        return self.index.keyword(text, criteria, k)

    def neighbours(self, versions: list[int], criteria: Criteria,
                   window: int) -> dict[int, list[tuple[MemoryRecord | None, MemoryRecord | None]]]:
        self._fresh()
        return self.index.neighbours(versions, criteria, window)

    def vectors(self, versions: list[int]) -> np.ndarray:
        self._fresh()
        return self.index.vectors(versions)

    keeps_graph = True  # each version's graph travels in its line of versions.jsonl; the index answers reads

    def graph(self, criteria: Criteria) -> list[tuple[MemoryRecord, Graph]]:
        self._fresh()
        return self.index.graph(criteria)

    @contextmanager
    def graph_view(self, criteria: Criteria) -> Iterator[GraphView]:
        self._fresh()
        with self.index.graph_view(criteria) as view:
            yield view

    def graphs(self, versions: list[int]) -> dict[int, Graph]:
        self._fresh()
        return self.index.graphs(versions)

    def history(self, memory_id: str) -> list[Event]:
        self._fresh()
        return self.index.history(memory_id)

    def batch(self, batch_id: str) -> list[Event]:
        self._fresh()
        return self.index.batch(batch_id)

    def all_events(self) -> list[Event]:
        self._fresh()
        return self.index.all_events()

    def ids_with_prefix(self, prefix: str, *, kind: Literal["memory", "batch"] = "memory",
                        limit: int = 10) -> list[str]:
        self._fresh()
        return self.index.ids_with_prefix(prefix, kind=kind, limit=limit)

    def dump(self) -> Iterator[tuple[MemoryRecord, np.ndarray]]:
        self._fresh()
        return self.index.dump()

    def versions(self, memory_id: str) -> list[MemoryRecord]:
        self._fresh()
        return self.index.versions(memory_id)

    def owned(self, user_id: str) -> list[MemoryRecord]:
        self._fresh()
        return self.index.owned(user_id)

    def user_stats(self) -> list[UserStats]:
        self._fresh()
        return self.index.user_stats()

    def count(self) -> int:
        self._fresh()
        return self.index.count()

    # -- what only files can do ------------------------------------------------------------------------------

    def _files_of(self, scope: Scope) -> list[tuple[str, Scope]]:
        rows = self.index._read("SELECT path, scope FROM files_seen WHERE scope IS NOT NULL ORDER BY path")
        found = [(path, Scope(*json.loads(key))) for path, key in rows]
        return [(path, owner) for path, owner in found if all(getattr(owner, n) == v for n, v in scope.items())]

    def grep(self, pattern: str, scope: Scope, limit: int = 100) -> list[dict[str, Any]]:
        """Current memories of `scope` whose text the regular expression matches, with their file and line."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise InvalidInput(f"not a regular expression: {pattern!r} ({exc})") from None
        self._fresh()
        found: list[dict[str, Any]] = []
        for path, owner in self._files_of(scope):
            lines, _problems = parse(_read(self.root / path), path)
            for line in lines:
                if isinstance(line, Item) and regex.search(line.text):
                    found.append({"id": line.memory_id, "memory": line.text, "file": path, "line": line.line,
                                  **dict(owner.items())})
                    if len(found) >= limit:
                        return found
        return found

    def problems(self, scope: Scope | None = None) -> list[Problem]:
        """The lines of memories.md files that cannot be read as memories (kept in the files as they are)."""
        self._fresh()
        found: list[Problem] = []
        for path, _owner in self._files_of(scope or Scope()):
            found += parse(_read(self.root / path), path)[1]
        return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path} is not UTF-8 text: {exc}") from exc


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _event(row: tuple) -> Event:
    return Event(memory_id=row[1], op=Op(row[2]), old_text=row[3], new_text=row[4], reason=row[5],
                 source=tuple(json.loads(row[6])), old_version=row[7], new_version=row[8], actor=row[9],
                 batch_id=row[10], created_at=row[11], seq=row[0])


def grep(store: Store, pattern: str, scope: Scope, limit: int = 100) -> list[dict[str, Any]]:
    """Current memories of `scope` whose text the regular expression matches: with their file and line from a
    files store, from any other store without them (file and line None)."""
    if isinstance(store, FilesStore):
        return store.grep(pattern, scope, limit)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InvalidInput(f"not a regular expression: {pattern!r} ({exc})") from None
    found = [r for r in sorted(store.select(Criteria(scope)), key=lambda r: r.version or 0) if regex.search(r.text)]
    return [{"id": r.id, "memory": r.text, "file": None, "line": None, **dict(r.scope.items())} for r in found[:limit]]
