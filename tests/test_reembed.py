"""`engram reembed`: every version embedded again by another embedder (the fake OpenAI server's, and back to the
local MiniLM), into a new binding; resumable after a failure, verified, and no write lost at the swap."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from test_archive import busy_store, cli, new_home, tables

from engram import Memory
from engram.embed import Embedder
from engram.stores.vectors import decode
from engram.testing import FakeOpenAI, Reply, hash_embedding

DIM = 32


def openai_env(fake: FakeOpenAI) -> dict[str, str]:
    return {"ENGRAM_EMBEDDER": "openai", "ENGRAM_EMBEDDER_BASE_URL": fake.base_url,
            "ENGRAM_EMBEDDER_MODEL": "fake-embed", "ENGRAM_EMBEDDER_API_KEY": "k",
            "ENGRAM_EMBEDDER_DIMENSIONS": str(DIM)}


def to_openai(home: Path, fake: FakeOpenAI, *args: str, code: int = 0) -> str:
    result = cli(home, "reembed", "--embedder", "openai", "--base-url", fake.base_url, "--model", "fake-embed",
                 "--api-key", "k", "--dimensions", str(DIM), *args, code=code)
    return result.stdout + result.stderr


def vectors(db: Path) -> dict[int, np.ndarray]:
    with sqlite3.connect(db) as conn:
        dimension = int(conn.execute("SELECT value FROM engram_meta WHERE key='dimension'").fetchone()[0])
        rows = conn.execute("SELECT rowid, vector FROM memories")
        return {rowid: decode([blob], dimension)[0] for rowid, blob in rows}


def without_vectors(db: Path) -> dict[str, list]:
    found = tables(db)
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(memories)")]
    at = columns.index("vector") + 1  # after the rowid that TABLES selects first
    found["memories"] = [row[:at] + row[at + 1:] for row in found["memories"]]
    found["engram_meta"] = [row for row in found["engram_meta"] if row[0] not in ("embedder", "dimension")]
    return found


def test_from_minilm_to_openai_and_back(tmp_path: Path, models_dir: Path, embedder: Embedder,
                                        fake_openai: FakeOpenAI) -> None:
    home = new_home(tmp_path, models_dir, "home")
    busy_store(home, embedder)
    before, minilm = without_vectors(home / "engram.db"), vectors(home / "engram.db")
    out = to_openai(home, fake_openai)
    assert "re-embedded 8 memories (9 versions, 13 events, 2 chat sessions) with openai:fake-embed:32" in out
    assert "ENGRAM_EMBEDDER=openai" in out and "ENGRAM_EMBEDDER_DIMENSIONS=32" in out
    assert without_vectors(home / "engram.db") == before  # ids, versions, history, sessions: all as they were
    with sqlite3.connect(home / "engram.db") as db:
        texts = dict(db.execute("SELECT rowid, text FROM memories"))
    for rowid, vector in vectors(home / "engram.db").items():
        np.testing.assert_allclose(vector, hash_embedding(texts[rowid], DIM), atol=1e-3)  # stored as float16
    assert sorted(p.name for p in home.iterdir() if "reembed" in p.name) == []
    hits = cli(home, "search", "what can't she eat?", "-u", "alice", "--json", env=openai_env(fake_openai)).stdout
    assert "peanuts" in hits
    assert "holds vectors of embedder 'openai:fake-embed:32'" in cli(home, "search", "x", "-u", "alice", code=1).stderr
    assert "re-embedded 8 memories" in cli(home, "reembed", "--embedder", "local", env=openai_env(fake_openai)).stdout
    for rowid, vector in vectors(home / "engram.db").items():
        np.testing.assert_allclose(vector, minilm[rowid], atol=1e-5)
    assert without_vectors(home / "engram.db") == before
    assert "peanuts" in cli(home, "search", "what can't she eat?", "-u", "alice").stdout


def test_an_interrupted_reembed_resumes_and_the_store_is_untouched_meanwhile(
        tmp_path: Path, models_dir: Path, embedder: Embedder, fake_openai: FakeOpenAI) -> None:
    home = new_home(tmp_path, models_dir, "home")
    busy_store(home, embedder)
    before = vectors(home / "engram.db")
    fake_openai.script_embeddings(Reply(), Reply(status=400, content="no"))
    assert "error:" in to_openai(home, fake_openai, "--chunk", "2", code=1)
    assert len(fake_openai.embedding_requests) == 2
    after = vectors(home / "engram.db")
    assert {k: v.tobytes() for k, v in after.items()} == {k: v.tobytes() for k, v in before.items()}
    assert "peanuts" in cli(home, "search", "what can't she eat?", "-u", "alice").stdout  # still MiniLM, working
    assert [p.name for p in home.iterdir() if "reembed" in p.name]  # the copy so far is kept for the rerun
    with Memory(home=home, embedder=embedder) as memory:  # a write between the two runs
        memory.add("I am learning Portuguese", user_id="alice", infer=False)
    out = to_openai(home, fake_openai, "--chunk", "2")
    assert "re-embedded 9 memories" in out
    assert len(fake_openai.embedding_requests) == 2 + 4  # chunks 2 to 5 only: the first was not embedded again
    hits = cli(home, "search", "which language am I learning?", "-u", "alice", env=openai_env(fake_openai)).stdout
    assert "Portuguese" in hits


def test_a_write_made_during_the_copy_is_embedded_at_the_swap(tmp_path: Path, models_dir: Path,
                                                              embedder: Embedder, fake_openai: FakeOpenAI) -> None:
    from engram.embed.openai import OpenAIEmbedder
    from engram.migrate import migrate
    from engram.stores.sqlite import SQLiteStore
    from engram.stores.sqlite_maintenance import swap_vectors

    home = new_home(tmp_path, models_dir, "home")
    busy_store(home, embedder)
    new = OpenAIEmbedder("fake-embed", base_url=fake_openai.base_url, api_key="k", dimensions=DIM)
    live, copy = SQLiteStore(home / "engram.db"), SQLiteStore(tmp_path / "copy.db")
    migrate(live, copy, embedder=live.binding(), keep_ids=True, reembed=new)
    live.close()
    copy.close()
    with Memory(home=home, embedder=embedder) as memory:
        late = memory.add("I am learning Portuguese", user_id="alice", infer=False)["results"][0]["id"]
    assert swap_vectors(home / "engram.db", tmp_path / "copy.db", (new.name, new.dimension), new.embed) == 1
    with sqlite3.connect(home / "engram.db") as db:
        blob = db.execute("SELECT vector FROM memories WHERE id=?", (late,)).fetchone()[0]
        assert db.execute("SELECT value FROM engram_meta WHERE key='embedder'").fetchone() == (new.name,)
    np.testing.assert_allclose(decode([blob], DIM)[0], hash_embedding("I am learning Portuguese", DIM),
                               atol=1e-6)
    new.close()


def test_qdrant_is_copied_into_a_new_collection(tmp_path: Path, models_dir: Path, embedder: Embedder,
                                                fake_openai: FakeOpenAI) -> None:
    home = new_home(tmp_path, models_dir, "home")
    qdrant = {"ENGRAM_STORE": "qdrant"}
    cli(home, "add", "I'm allergic to peanuts", "-u", "alice", env=qdrant)
    result = cli(home, "reembed", "--embedder", "openai", "--base-url", fake_openai.base_url, "--model", "fake-embed",
                 "--api-key", "k", "--dimensions", str(DIM), env=qdrant)
    assert "into collection engram-openai_fake-embed_32" in result.stdout
    assert "ENGRAM_QDRANT_COLLECTION=engram-openai_fake-embed_32" in result.stdout
    env = {**qdrant, **openai_env(fake_openai), "ENGRAM_QDRANT_COLLECTION": "engram-openai_fake-embed_32"}
    assert "peanuts" in cli(home, "search", "allergic to peanuts?", "-u", "alice", env=env).stdout
    assert "peanuts" in cli(home, "search", "what can't she eat?", "-u", "alice", env=qdrant).stdout  # the old one


@pytest.mark.parametrize(("setup", "message"), [("empty", "nothing to re-embed"), ("same", "already holds vectors")])
def test_what_is_refused(tmp_path: Path, models_dir: Path, embedder: Embedder, setup: str, message: str) -> None:
    home = new_home(tmp_path, models_dir, "home")
    if setup == "same":
        busy_store(home, embedder)
    else:
        cli(home, "list", "-u", "alice")
    assert message in cli(home, "reembed", "--embedder", "local", code=2).stderr
