"""An import's graph rules found ahead in worker processes (engram.rules_ahead), and the collector's pace during
bulk writes (engram.bulk)."""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from engram import InvalidInput, Memory
from engram.bulk import BULK_THRESHOLD, fewer_collections
from engram.embed import Embedder
from engram.graph_rules import rules_graph
from engram.rules_ahead import AUTO_MIN_ITEMS, RulesAhead, auto_workers
from engram.transfer import import_items, read_locomo

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


def graph_after_import(home: Path, embedder: Embedder, source: Path, workers: int) -> dict[str, Any]:
    with Memory(home=home, embedder=embedder) as memory:
        assert import_items(memory, read_locomo(source), per_write=8, workers=workers) == {"ADD": 30, "NOOP": 0}
        graph = memory.graph(user_id="conv-w")
    graph["relations"] = sorted((r["subject"], r["relation"], r["object"], r["memory"]) for r in graph["relations"])
    return graph


def test_graphs_found_by_worker_processes_are_those_found_at_the_write(tmp_path: Path, embedder: Embedder) -> None:
    # Names resolve against what earlier writes stored, so the workers' graphs must go through the same
    # resolution, in order: the scope's whole graph comes out the same, entity for entity
    source = conversation(tmp_path / "conv.json", sessions=5)
    here = graph_after_import(tmp_path / "here", embedder, source, workers=0)
    ahead = graph_after_import(tmp_path / "ahead", embedder, source, workers=2)
    assert ahead == here
    assert {"Lyon", "Acme Corp", "Eva", "Tom"} <= {e["name"] for e in here["entities"]}
    assert ("Eva", "lives_in", "Lyon", "Ana: My sister Eva moved to Lyon last March. (1)") in here["relations"]
    assert ("Ben's brother", "works_at", "Acme Corp",
            "Ben: Hey Ana! My brother works at Acme Corp and lives in Porto. (1)") in here["relations"]


def test_rules_ahead_hands_back_each_texts_graph_and_raises_a_workers_error() -> None:
    texts = [text for _, text in TURNS]
    with RulesAhead(2) as rules:
        assert rules.submit(texts)() == {text: rules_graph(text) for text in texts}
        assert rules.submit([])() == {}
        broken = rules.submit([None])  # type: ignore[list-item]
        with pytest.raises(AttributeError):
            broken()
    with RulesAhead(0) as none:
        assert none.submit(texts)() == {}  # found at the write


@pytest.mark.parametrize("workers", [-1, True, 1.5, "2"])
def test_rules_ahead_refuses_a_bad_number_of_workers(workers: Any) -> None:
    with pytest.raises(InvalidInput, match="workers"):
        RulesAhead(workers)


def test_auto_workers_leave_a_core_to_the_writer_and_small_imports_to_it() -> None:
    assert auto_workers(AUTO_MIN_ITEMS - 1, cores=16) == 0
    assert [auto_workers(AUTO_MIN_ITEMS, cores=c) for c in (1, 2, 3, 16)] == [0, 1, 2, 4]


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
