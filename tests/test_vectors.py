"""Vector storage (setting vector_storage, float16 by default): half the bytes, the same search, stores holding both."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engram import Memory
from engram.embed import Embedder
from engram.errors import ConfigError, CorruptStore
from engram.stores.vectors import decode, encode

FACTS = ["I am allergic to peanuts", "My sister Ana lives in Lyon", "I play the cello on Sundays",
         "Our dog is called Rex", "I work at a bakery in Ghent", "My favourite tea is genmaicha"]


def test_decode_reads_each_row_as_it_was_written() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 8)).astype(np.float32)
    blobs = [encode(vectors[0], "float32"), encode(vectors[1], "float16"), encode(vectors[2], "float32")]
    assert [len(b) for b in blobs] == [32, 16, 32]
    rows = decode(blobs, 8)
    assert rows.dtype == np.float32 and rows.shape == (3, 8)
    assert np.array_equal(rows[[0, 2]], vectors[[0, 2]])
    assert np.allclose(rows[1], vectors[1], atol=1e-2)
    assert decode([], 8).shape == (0, 8)
    with pytest.raises(CorruptStore, match="neither float32 nor float16"):
        decode([b"\x00" * 12], 8)


def test_a_float16_store_finds_the_same_memories_in_half_the_bytes(tmp_path: Path,
                                                                   embedder: Embedder) -> None:
    found = {}
    for storage in ("float32", "float16"):
        with Memory(home=tmp_path / storage, embedder=embedder, vector_storage=storage) as memory:
            memory.add(FACTS, user_id="u", infer=False)
            found[storage] = [[(h["memory"], round(h["score"], 2)) for h in memory.search(q, user_id="u")["results"]]
                              for q in ("what am I allergic to?", "where does my sister live?", "pets")]
        with sqlite3.connect(tmp_path / storage / "engram.db") as db:
            assert {row[0] for row in db.execute("SELECT length(vector) FROM memories")} == \
                {embedder.dimension * (4 if storage == "float32" else 2)}
    assert [[m for m, _ in hits] for hits in found["float16"]] == [[m for m, _ in hits] for hits in found["float32"]]


def test_switching_the_setting_keeps_what_was_written(tmp_path: Path, embedder: Embedder) -> None:
    with Memory(home=tmp_path, embedder=embedder, vector_storage="float32") as memory:
        memory.add(FACTS[:3], user_id="u", infer=False)
    with Memory(home=tmp_path, embedder=embedder, vector_storage="float16") as memory:
        memory.add(FACTS[3:], user_id="u", infer=False)
        assert memory.search("dog", user_id="u")["results"][0]["memory"] == "Our dog is called Rex"
        assert memory.search("peanuts", user_id="u")["results"][0]["memory"] == "I am allergic to peanuts"
        assert len(memory.get_all(user_id="u")["results"]) == 6
    with sqlite3.connect(tmp_path / "engram.db") as db:
        assert sorted(row[0] for row in db.execute("SELECT DISTINCT length(vector) FROM memories")) == \
            [2 * embedder.dimension, 4 * embedder.dimension]


def test_an_unknown_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="float16"):
        Memory(home=tmp_path, vector_storage="int4")


def test_the_writing_process_scores_what_a_fresh_reader_scores(tmp_path: Path, embedder: Embedder) -> None:
    # The writer's cached scope is patched with the rows it writes: holding them unrounded while the file holds
    # float16 would make its scores differ from every other process's, and ties fall differently
    with Memory(home=tmp_path, embedder=embedder) as writer:
        writer.add(FACTS[:2], user_id="u", infer=False)
        writer.search("tea", user_id="u")  # the scope is cached now, and patched by the next add
        writer.add(FACTS[2:], user_id="u", infer=False)
        mine = {h["memory"]: h["score"] for h in writer.search("what do I drink?", user_id="u", limit=10)["results"]}
    with Memory(home=tmp_path, embedder=embedder) as reader:
        theirs = {h["memory"]: h["score"] for h in reader.search("what do I drink?", user_id="u", limit=10)["results"]}
    assert mine == theirs and len(mine) == len(FACTS)
