"""SQLite schema as small migrations, each applied once and recorded in `engram_migrations`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from engram.stores.base import scope_key
from engram.types import Scope

__all__ = ["APP_ID", "MIGRATIONS", "migrate"]

APP_ID = "engram"
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    # `rowid` keys one version of a memory (vectors and the FTS index follow it); `id` is the memory's stable
    # id shared by its versions. At most one version of a memory is current (valid_to IS NULL).
    db.execute("""
        CREATE TABLE memories (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            text TEXT NOT NULL,
            hash TEXT NOT NULL,
            user_id TEXT, agent_id TEXT, run_id TEXT,
            role TEXT,
            categories TEXT NOT NULL DEFAULT '[]',
            metadata TEXT NOT NULL DEFAULT '{}',
            source TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            valid_from REAL NOT NULL,
            valid_to REAL,
            superseded_by TEXT,
            vector BLOB NOT NULL
        )""")
    db.execute("CREATE UNIQUE INDEX memories_current ON memories(id) WHERE valid_to IS NULL")
    db.execute("CREATE INDEX memories_id ON memories(id)")
    db.execute("CREATE INDEX memories_user ON memories(user_id)")
    # Most memories have no agent or run: partial indexes keep those rows out of two B-trees on every write.
    db.execute("CREATE INDEX memories_agent ON memories(agent_id) WHERE agent_id IS NOT NULL")
    db.execute("CREATE INDEX memories_run ON memories(run_id) WHERE run_id IS NOT NULL")
    db.execute("CREATE INDEX memories_hash ON memories(hash) WHERE valid_to IS NULL")
    # `scope` holds hashed scope tokens plus `cur` while the version is current, so one MATCH restricts
    # keyword search to a user's current memories without scanning everyone's matches.
    db.execute("""
        CREATE VIRTUAL TABLE memories_fts USING fts5(
            text, scope, tokenize = 'porter unicode61 remove_diacritics 2'
        )""")
    db.execute("""
        CREATE TABLE history (
            seq INTEGER PRIMARY KEY,
            memory_id TEXT NOT NULL,
            op TEXT NOT NULL,
            old_text TEXT, new_text TEXT, reason TEXT,
            source TEXT NOT NULL DEFAULT '[]',
            old_version INTEGER, new_version INTEGER,
            actor TEXT,
            batch_id TEXT NOT NULL,
            created_at REAL NOT NULL
        )""")
    db.execute("CREATE INDEX history_memory ON history(memory_id)")
    db.execute("CREATE INDEX history_batch ON history(batch_id)")
    db.execute("CREATE TABLE engram_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO engram_meta VALUES ('app', ?)", (APP_ID,))
    # Bumped by every write touching a scope key; readers compare it to their cached matrices.
    db.execute("CREATE TABLE scope_versions (key TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID")


@migration
def m002_sessions(db: sqlite3.Connection) -> None:
    # Chat sessions belong to one scope; their turns are kept in order, with whether they were saved yet.
    db.execute("""
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY, user_id TEXT, agent_id TEXT, run_id TEXT,
            created_at REAL NOT NULL, updated_at REAL NOT NULL
        )""")
    db.execute("CREATE INDEX sessions_user ON sessions(user_id)")
    db.execute("""
        CREATE TABLE turns (
            seq INTEGER PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
            role TEXT NOT NULL, content TEXT NOT NULL, created_at REAL NOT NULL, saved INTEGER NOT NULL DEFAULT 0
        )""")
    db.execute("CREATE INDEX turns_session ON turns(session_id, seq)")


@migration
def m003_batches(db: sqlite3.Connection) -> None:
    # Which write (batch) wrote a version, and its place in that write: conversational context follows these,
    # never equal timestamps. Versions written before this migration: one batch per (scope, created_at), as
    # they were grouped then, in write order.
    db.execute("ALTER TABLE memories ADD COLUMN batch_id TEXT")
    db.execute("ALTER TABLE memories ADD COLUMN position INTEGER")
    db.execute("UPDATE memories SET batch_id = 'legacy-' || created_at, position = rowid")


@migration
def m004_expiry(db: sqlite3.Connection) -> None:
    # When a memory stops being shown (Mem0's expiration_date); NULL: never. An expired memory stays current.
    db.execute("ALTER TABLE memories ADD COLUMN expires_at REAL")


@migration
def m005_session_owners(db: sqlite3.Connection) -> None:
    # A session is its owner's: (owner, id) is its key, so two scopes may each have a session "s1". `owner` is the
    # exact scope as one string (scope_key); existing sessions keep theirs, and their turns follow them.
    db.execute("""
        CREATE TABLE sessions_owned (
            owner TEXT NOT NULL, id TEXT NOT NULL, user_id TEXT, agent_id TEXT, run_id TEXT,
            created_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (owner, id)
        ) WITHOUT ROWID""")
    rows = db.execute("SELECT id, user_id, agent_id, run_id, created_at, updated_at FROM sessions").fetchall()
    db.executemany("INSERT INTO sessions_owned VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(scope_key(Scope(*row[1:4])), *row) for row in rows])
    db.execute("""
        CREATE TABLE turns_owned (
            seq INTEGER PRIMARY KEY, owner TEXT NOT NULL, session_id TEXT NOT NULL,
            role TEXT NOT NULL, content TEXT NOT NULL, created_at REAL NOT NULL, saved INTEGER NOT NULL DEFAULT 0,
            FOREIGN KEY (owner, session_id) REFERENCES sessions_owned (owner, id)
        )""")
    db.execute("INSERT INTO turns_owned SELECT t.seq, s.owner, t.session_id, t.role, t.content, t.created_at, t.saved "
               "FROM turns t JOIN sessions_owned s ON s.id = t.session_id")
    db.execute("DROP TABLE turns")
    db.execute("DROP TABLE sessions")
    db.execute("ALTER TABLE sessions_owned RENAME TO sessions")  # turns_owned's reference follows the new name
    db.execute("ALTER TABLE turns_owned RENAME TO turns")
    db.execute("CREATE INDEX sessions_user ON sessions(user_id)")
    db.execute("CREATE INDEX turns_session ON turns(owner, session_id, seq)")


@migration
def m006_keyword_terms(db: sqlite3.Connection) -> None:
    # Keyword search reads each version's sparse vector (engram.stores.keywords) with its scope's rows, so its
    # cost follows the scope's size; the FTS5 index, whose posting lists spanned every user, goes. Versions
    # written before this migration have NULL here and are encoded from their text when their scope loads.
    db.execute("ALTER TABLE memories ADD COLUMN terms BLOB")
    db.execute("DROP TABLE memories_fts")


@migration
def m007_graph(db: sqlite3.Connection) -> None:
    # Graph memory (engram.graph): the entities each version names and the relations it states, keyed by the
    # version (memories.rowid), so that they hold exactly while it does. Names are indexed for lookups and hops.
    db.execute("""
        CREATE TABLE graph_entities (
            version INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, aliases TEXT NOT NULL DEFAULT '[]'
        )""")
    db.execute("CREATE INDEX graph_entities_version ON graph_entities(version)")
    db.execute("CREATE INDEX graph_entities_name ON graph_entities(name)")
    db.execute("""
        CREATE TABLE graph_relations (
            version INTEGER NOT NULL, subject TEXT NOT NULL, relation TEXT NOT NULL, object TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX graph_relations_version ON graph_relations(version)")
    db.execute("CREATE INDEX graph_relations_subject ON graph_relations(subject)")
    db.execute("CREATE INDEX graph_relations_object ON graph_relations(object)")


@migration
def m008_scope_hash_index(db: sqlite3.Connection) -> None:
    # Duplicate checks look a text's hash up within one scope. Keyed by hash alone, the index took each new
    # version at a random page, so a bulk write dirtied (and the WAL wrote, then the checkpoint wrote again) one
    # page of it per memory: half of an import's disk writes at 100k memories. Keyed by user, then hash, one
    # user's inserts fall on a few neighbouring pages (bench/import_store.py).
    db.execute("DROP INDEX memories_hash")
    db.execute("CREATE INDEX memories_scope_hash ON memories(user_id, hash) WHERE valid_to IS NULL")


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this database has not seen, each in its own transaction."""
    db.execute("CREATE TABLE IF NOT EXISTS engram_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    applied = {row[0] for row in db.execute("SELECT name FROM engram_migrations")}
    unknown = applied - {name for name, _ in MIGRATIONS}
    if unknown:
        from engram.errors import StoreError

        raise StoreError(f"database was written by a newer engram (unknown migrations: {sorted(unknown)})")
    for name, fn in MIGRATIONS:
        if name in applied:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            if name not in {row[0] for row in db.execute("SELECT name FROM engram_migrations")}:
                fn(db)
                db.execute("INSERT INTO engram_migrations VALUES (?, julianday('now'))", (name,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


@migration
def m009_graph_version_indexes_only(db: sqlite3.Connection) -> None:
    # A scope's graphs are read by version (the in-memory engram.graph_index answers lookups by name), so the
    # indexes by entity name, subject and object were never read, while a bulk write dirtied a random page of
    # each for every entity and relation it stored.
    for index in ("graph_entities_name", "graph_relations_subject", "graph_relations_object"):
        db.execute(f"DROP INDEX {index}")
