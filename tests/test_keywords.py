"""Keyword search inside a scope (engram.stores.keywords): FTS5's BM25, read from the scope's postings only."""

from __future__ import annotations

import random
import re
import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engram.stores.base import ChangeSet, Criteria
from engram.stores.keywords import ScopeTerms, pack, unpack
from engram.stores.sparse import STOPWORDS, query_terms, term_counts
from engram.stores.sqlite import SQLiteStore
from engram.types import MemoryRecord, Scope, content_hash

WORDS = ("coffee tea jazz piano hiking used uses using us berlin lyon sister works runs running ran the a of is "
         "café naïve 2023 december Ana's photo").split()


def document(text: str) -> tuple[np.ndarray, np.ndarray, int]:
    return unpack(pack(*term_counts(text)))


def fts5_ranking(texts: list[str], query: str) -> list[tuple[int, float]]:
    """What the FTS5 index engram used before scored: a text column beside two scope tokens per row."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5(text, scope, tokenize='porter unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO f (rowid, text, scope) VALUES (?, ?, 'u1 u1c')", enumerate(texts))
    words = [w for w in dict.fromkeys(re.findall(r"\w+", query.casefold())) if w not in STOPWORDS]
    match = "scope : u1c AND text : (" + " OR ".join(f'"{w}"' for w in words) + ")"
    rows = db.execute("SELECT rowid, bm25(f, 1.0, 0.0) FROM f WHERE f MATCH ? ORDER BY bm25(f, 1.0, 0.0), rowid",
                      (match,)).fetchall()
    return [(rowid, -score) for rowid, score in rows]


def ranking(index: ScopeTerms, query: str, admitted: np.ndarray) -> list[tuple[int, float]]:
    scores = index.scores(query_terms(query), admitted)
    rows = np.flatnonzero(scores > 0)
    rows = rows[np.lexsort((rows, -scores[rows]))]
    return [(int(r), float(scores[r])) for r in rows]


def same(mine: list[tuple[int, float]], theirs: list[tuple[int, float]]) -> bool:
    return [r for r, _ in mine] == [r for r, _ in theirs] and \
        [s for _, s in mine] == pytest.approx([s for _, s in theirs], rel=1e-9)


texts_strategy = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join), min_size=1,
                          max_size=30)


@settings(max_examples=150, deadline=None)
@given(texts=texts_strategy, query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join))
def test_scores_are_fts5_bm25(texts: list[str], query: str) -> None:
    index = ScopeTerms([document(t) for t in texts])
    if not query_terms(query):
        return
    assert same(ranking(index, query, np.ones(len(texts), bool)), fts5_ranking(texts, query))


@settings(max_examples=50, deadline=None)
@given(texts=texts_strategy, later=texts_strategy, query=st.sampled_from(WORDS))
def test_rows_appended_score_as_if_built_at_once(texts: list[str], later: list[str], query: str) -> None:
    grown = ScopeTerms([document(t) for t in texts])
    for text in later:  # one by one, as writes arrive (the tail merges on the way when it grows)
        grown.append([document(text)])
    whole = ScopeTerms([document(t) for t in texts + later])
    admitted = np.ones(len(texts) + len(later), bool)
    assert same(ranking(grown, query, admitted), ranking(whole, query, admitted))


def test_the_tail_merges_into_the_sorted_postings() -> None:
    rng = random.Random(3)
    texts = [" ".join(rng.choices(WORDS, k=8)) for _ in range(600)]
    grown = ScopeTerms([])
    for text in texts:
        grown.append([document(text)])
    assert len(grown._tail) < 600  # merged at least once (2,048 postings)
    admitted = np.ones(600, bool)
    whole = ScopeTerms([document(t) for t in texts])
    assert same(ranking(grown, "coffee berlin", admitted), ranking(whole, "coffee berlin", admitted))


def test_statistics_count_only_admitted_rows() -> None:
    texts = ["coffee in berlin", "coffee", "tea", "coffee and tea"]
    index = ScopeTerms([document(t) for t in texts])
    admitted = np.array([True, False, True, False])
    hits = ranking(index, "coffee", admitted)
    assert [row for row, _ in hits] == [0]
    # the same scores as a scope holding only the admitted rows
    alone = ScopeTerms([document(texts[0]), document(texts[2])])
    assert hits[0][1] == pytest.approx(ranking(alone, "coffee", np.ones(2, bool))[0][1])
    assert ranking(index, "coffee", np.zeros(4, bool)) == []


def test_a_query_word_that_stems_like_a_stopword_still_matches() -> None:
    # "used" stems to "us", a stopword: documents keep stopword stems so the query word finds "us" as FTS5 did
    index = ScopeTerms([document("nature refreshes us"), document("nothing here")])
    assert [row for row, _ in ranking(index, "used", np.ones(2, bool))] == [0]


def _fill(store: SQLiteStore, users: list[str], per_user: int, rng: np.random.Generator, words: list[str]) -> None:
    changes = ChangeSet()
    for user in users:
        for _ in range(per_user):
            text = " ".join(rng.choice(words, size=6))
            vector = rng.normal(size=8).astype(np.float32)
            record = MemoryRecord(id=str(uuid.uuid4()), text=text, hash=content_hash(text + str(uuid.uuid4())),
                                  user_id=user, created_at=1.7e9, updated_at=1.7e9, valid_from=1.7e9)
            changes.inserts.append((record, vector / np.linalg.norm(vector)))
    store.apply(changes)


def test_a_scopes_keyword_results_ignore_other_scopes_data(tmp_path: Path) -> None:
    words = "coffee tea jazz piano hiking berlin lyon sister works photo garden bread".split()
    rng = np.random.default_rng(0)
    store = SQLiteStore(tmp_path / "k.db")
    store.bind_embedder("e", 8)
    _fill(store, ["alice"], 200, rng, words)
    queries = ["coffee in berlin", "jazz piano", "sister works", "bread and tea", "photo of the garden"]
    criteria = Criteria(Scope(user_id="alice"))
    before = [store.keyword(q, criteria, 20) for q in queries]
    assert all(before)
    # 10,000 memories of 1,000 other users, whose texts lean hard on alice's words
    _fill(store, [f"user{i}" for i in range(1000)], 10, rng, ["coffee", "coffee", "jazz", *words])
    store._cache.clear()
    after = [store.keyword(q, criteria, 20) for q in queries]
    assert [[(r.id, round(s, 9)) for r, s in hits] for hits in after] == \
        [[(r.id, round(s, 9)) for r, s in hits] for hits in before]
    store.close()


def test_versions_written_before_the_terms_column_are_encoded_when_read(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    store.bind_embedder("e", 8)
    _fill(store, ["alice"], 30, np.random.default_rng(1), "coffee tea jazz berlin".split())
    fresh = store.keyword("coffee berlin", Criteria(Scope(user_id="alice")), 10)
    store.close()
    with sqlite3.connect(tmp_path / "k.db") as db:
        db.execute("UPDATE memories SET terms = NULL")  # as migration m006 leaves older versions
    store = SQLiteStore(tmp_path / "k.db")
    assert store.keyword("coffee berlin", Criteria(Scope(user_id="alice")), 10) == fresh
    store.close()


def test_a_write_into_a_cached_scope_counts_each_texts_terms_once(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The store writes a version's term counts and patches its cached scope with the same ones; the patched
    # scope scores as a fresh read of the file does
    from engram.stores import matrix, sqlite

    store = SQLiteStore(tmp_path / "k.db")
    store.bind_embedder("e", 8)
    rng = np.random.default_rng(2)
    words = "coffee tea jazz berlin lyon piano".split()
    _fill(store, ["alice"], 5, rng, words)
    criteria = Criteria(Scope(user_id="alice"))
    assert store.keyword("coffee", criteria, 50)  # the scope and its terms are cached now
    counted: list[str] = []

    def counting(text: str) -> tuple[list[int], list[int], int]:
        counted.append(text)
        return term_counts(text)

    monkeypatch.setattr(sqlite, "term_counts", counting)
    monkeypatch.setattr(matrix, "term_counts", counting)
    _fill(store, ["alice"], 7, rng, words)
    assert len(counted) == 7
    patched = store.keyword("coffee jazz", criteria, 50)
    store._cache.clear()
    assert [(r.id, round(s, 9)) for r, s in store.keyword("coffee jazz", criteria, 50)] == \
        [(r.id, round(s, 9)) for r, s in patched]
    store.close()
