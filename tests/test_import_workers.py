"""What an import's texts give by themselves, found ahead in worker processes (engram.ahead), and the collector's
pace during bulk writes (engram.bulk)."""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from engram import InvalidInput, Memory
from engram.ahead import AUTO_MIN_ITEMS, TextsAhead, auto_workers, find
from engram.bulk import BULK_THRESHOLD, fewer_collections
from engram.embed import Embedder
from engram.graph_rules import rules_graph
from engram.stores.base import Criteria
from engram.stores.keywords import pack
from engram.stores.sparse import term_counts
from engram.transfer import import_items, read_locomo
from engram.types import Scope

TURNS = [
    ("Ana", "My sister Eva moved to Lyon last March."),
    ("Ben", "Hey Ana! My brother works at Acme Corp and lives in Porto."),
    ("Ana", "Eva is Tom's girlfriend, they got married in 2021."),
    ("Ben", "I'm from Spain. Thanks, Ana!"),
    ("Ana", "Mel and I went to the Louvre Museum in Paris."),
    ("Ben", "Tom said Eva studies at Lyon University."),
]


def conversation(path: Path, sessions: int) -> Path:
    body: dict[str, Any] = {"speaker_a": "Ana", "speaker_b": "Ben"}
    for s in range(1, sessions + 1):
        body[f"session_{s}_date_time"] = f"1:56 pm on {s} May, 2023"
        body[f"session_{s}"] = [{"speaker": who, "dia_id": f"D{s}:{i}", "text": f"{text} ({s})"}
                                for i, (who, text) in enumerate(TURNS, 1)]
    path.write_text(json.dumps({"sample_id": "conv-w", "conversation": body}), encoding="utf-8")
    return path


def after_import(home: Path, embedder: Embedder, source: Path, workers: int) -> dict[str, Any]:
    """The scope's graph and what keyword search finds, once `source` is imported."""
    with Memory(home=home, embedder=embedder) as memory:
        assert import_items(memory, read_locomo(source), per_write=8, workers=workers) == {"ADD": 30, "NOOP": 0}
        graph = memory.graph(user_id="conv-w")
        store = memory.store
        hits = [(r.text, round(score, 9)) for r, score in store.keyword("Lyon sister Porto", Criteria(
            Scope(user_id="conv-w")), 10)]
        store._cache.clear()  # type: ignore[attr-defined]  # then as a fresh reader finds them
        assert hits == [(r.text, round(score, 9)) for r, score in store.keyword("Lyon sister Porto", Criteria(
            Scope(user_id="conv-w")), 10)]
    graph["relations"] = sorted((r["subject"], r["relation"], r["object"], r["memory"]) for r in graph["relations"])
    return {**graph, "keyword hits": hits}


def test_what_worker_processes_find_is_what_the_write_finds(tmp_path: Path, embedder: Embedder) -> None:
    # Names resolve against what earlier writes stored, so the workers' graphs must go through the same
    # resolution, in order: the scope's whole graph comes out the same, entity for entity; and the term counts
    # they find score keyword search as those counted at the write
    source = conversation(tmp_path / "conv.json", sessions=5)
    here = after_import(tmp_path / "here", embedder, source, workers=0)
    ahead = after_import(tmp_path / "ahead", embedder, source, workers=2)
    assert ahead == here and len(here["keyword hits"]) == 10
    assert {"Lyon", "Acme Corp", "Eva", "Tom"} <= {e["name"] for e in here["entities"]}
    assert ("Eva", "lives_in", "Lyon", "Ana: My sister Eva moved to Lyon last March. (1)") in here["relations"]
    assert ("Ben's brother", "works_at", "Acme Corp",
            "Ben: Hey Ana! My brother works at Acme Corp and lives in Porto. (1)") in here["relations"]


def test_workers_hand_back_each_texts_graph_and_terms_and_raise_a_workers_error() -> None:
    texts = [text for _, text in TURNS]
    with TextsAhead(2) as ahead:
        found = ahead.submit(texts)()
        assert found.graphs == {text: rules_graph(text) for text in texts}
        assert found.terms == {text: pack(*term_counts(text)) for text in texts}
        assert found == find(texts)
        assert ahead.submit([])() == find([])
        broken = ahead.submit([None])  # type: ignore[list-item]
        with pytest.raises(AttributeError):
            broken()
    with TextsAhead(0) as none:
        assert none.submit(texts)() == find([])  # found at the write


@pytest.mark.parametrize("workers", [-1, True, 1.5, "2"])
def test_a_bad_number_of_workers_is_refused(workers: Any) -> None:
    with pytest.raises(InvalidInput, match="workers"):
        TextsAhead(workers)


def test_auto_workers_leave_a_core_to_the_writer_and_small_imports_to_it() -> None:
    assert auto_workers(AUTO_MIN_ITEMS - 1, cores=16) == 0
    assert [auto_workers(AUTO_MIN_ITEMS, cores=c) for c in (1, 2, 3, 16)] == [0, 1, 2, 2]


def test_bulk_writes_slow_the_collector_until_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    assert gc.get_threshold() == (max(before[0], BULK_THRESHOLD), *before[1:])
    done = threading.Event()

    def other() -> None:
        with second:
            done.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == max(before[0], BULK_THRESHOLD)  # the other write still runs
    done.set()
    thread.join()
    assert gc.get_threshold() == before
