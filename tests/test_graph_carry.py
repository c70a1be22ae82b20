"""Graph memory travels with the memories: a full export and its import, `engram migrate` between the three
stores, backup and restore, and a revert made after the copy; a graph edited into something a store could not
hold is refused before anything is written, and an export from before graphs existed still imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_archive import cli, new_home, tables

from engram import Memory
from engram.archive import read_archive
from engram.config import Settings
from engram.embed import Embedder
from engram.errors import InvalidInput, StoreError


def family(home: Path, embedder: Embedder) -> dict[str, str]:
    """Alice's family and work, with a move (an update), a delete, a delete_all and a raw turn naming Melanie;
    returns the batch ids a revert takes."""
    with Memory(home=home, embedder=embedder) as m:
        lyon = m.add("My sister Ana lives in Lyon.", user_id="alice", infer=False, timestamp="2024-01-01")
        m.add("I work at Acme Corp.", user_id="alice", timestamp="2024-01-02")  # the offline rules pipeline
        tom = m.add("My brother Tom works at Globex Corp.", user_id="alice", infer=False, timestamp="2024-01-03")
        m.update(lyon["results"][0]["id"], "My sister Ana lives in Paris.", timestamp="2024-03-01")
        m.add([{"role": "user", "content": "Melanie works at Initech Corp."},
               {"role": "user", "content": "Hey Mel! I saw your painting in Boston."}], user_id="carol", infer=False)
        gone = m.add("My cousin Zoe lives in Rome.", user_id="carol", infer=False)
        m.delete(gone["results"][0]["id"])
        m.add("Bob's friend Sam lives in Oslo.", user_id="bob", infer=False)
        everything = m.delete_all(user_id="bob")
    return {"tom": tom["batch_id"], "bob": everything["batch_id"]}


def view(m: Memory) -> dict[str, Any]:
    """Everything graph memory answers for these users, now and in the past; memories by what stays across
    stores (a copy between stores may number versions anew)."""
    def related(name: str, user: str, as_of: str | None = None) -> dict[str, Any]:
        out = m.related(name, user_id=user, as_of=as_of)
        return {"entity": out["entity"], "entities": out["entities"],
                "relations": sorted((r["subject"], r["relation"], r["object"], r["memory_id"], r["memory"])
                                    for r in out["relations"]),
                "memories": sorted((r["id"], r["memory"], r["valid_from"], r["valid_to"]) for r in out["memories"])}

    return {
        "entities": {user: m.entities(user_id=user)["results"] for user in ("alice", "bob", "carol")},
        "then": m.entities(user_id="alice", as_of="2024-02-01")["results"],
        "ana": related("Ana", "alice"), "ana then": related("Ana", "alice", "2024-02-01"),
        "mel": related("mel", "carol", None),
    }


def memory_in(home: Path, embedder: Embedder, store: str) -> Memory:
    return Memory(Settings.load(env={}, home=home, store=store), embedder=embedder)


def test_sqlite_to_an_export_to_files_to_qdrant_keeps_the_same_graph(tmp_path: Path, models_dir: Path,
                                                                      embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    family(source, embedder)
    with Memory(home=source, embedder=embedder) as m:
        before = view(m)
    assert ("Ana", "lives_in", "Lyon") in {r[:3] for r in before["ana then"]["relations"]}
    assert "Melanie" in {e["name"] for e in before["entities"]["carol"]} and before["entities"]["bob"] == []
    out = tmp_path / "all.jsonl"
    cli(source, "export", "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[-1]["end"]["graphs"] == sum(1 for row in rows if "graph" in row) > 5
    files = new_home(tmp_path, models_dir, "files")
    cli(files, "import", str(out), env={"ENGRAM_STORE": "files"})
    with memory_in(files, embedder, "files") as m:
        assert view(m) == before
    cli(files, "migrate", "--to", "qdrant", env={"ENGRAM_STORE": "files"})  # into <files>/qdrant, numbered anew
    with memory_in(files, embedder, "qdrant") as m:
        assert view(m) == before
    back = new_home(tmp_path, models_dir, "back")
    cli(files, "migrate", "--from", "qdrant", "--to", "sqlite", "--path", str(back / "engram.db"))
    with Memory(home=back, embedder=embedder) as m:
        assert view(m) == before


@pytest.mark.parametrize("store", ["sqlite", "files", "qdrant"])
def test_a_revert_after_an_import_closes_and_reopens_relations(tmp_path: Path, models_dir: Path, embedder: Embedder,
                                                               store: str) -> None:
    source = new_home(tmp_path, models_dir, "source")
    batches = family(source, embedder)
    out = tmp_path / "all.jsonl"
    cli(source, "export", "--out", str(out))
    target = new_home(tmp_path, models_dir, "target")
    cli(target, "import", str(out), env={"ENGRAM_STORE": store})
    with memory_in(target, embedder, store) as m:
        m.revert(batches["bob"])  # the delete_all: Sam and Oslo come back with their memory
        assert {(r["subject"], r["relation"], r["object"]) for r in m.related("Sam", user_id="bob")["relations"]} == {
            ("Bob", "friend", "Sam"), ("Sam", "lives_in", "Oslo")}
        m.revert(batches["tom"])  # an add: Tom and Globex leave with it
        names = {e["name"] for e in m.entities(user_id="alice")["results"]}
        assert "Tom" not in names and "Globex Corp" not in names and {"Ana", "Paris", "Acme Corp"} <= names


def test_backup_and_restore_keep_the_graph(tmp_path: Path, models_dir: Path, embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    family(source, embedder)
    copy = tmp_path / "engram-backup.db"
    cli(source, "backup", str(copy))
    target = new_home(tmp_path, models_dir, "target")
    cli(target, "restore", str(copy))
    assert tables(target / "engram.db") == tables(source / "engram.db")
    with Memory(home=source, embedder=embedder) as m:
        before = view(m)
    with Memory(home=target, embedder=embedder) as m:
        assert view(m) == before


def _edited(lines: list[str], graph: Any) -> str:
    """The export with the first version line's graph replaced by `graph`."""
    out, done = [], False
    for line in lines:
        row = json.loads(line)
        if not done and "graph" in row:
            row["graph"], done = graph, True
        out.append(json.dumps(row) + "\n")
    assert done
    return "".join(out)


@pytest.mark.parametrize(("graph", "message"), [
    ([], "graph must be an object"),
    ({"entities": [["Ana", "person", []]], "relations": [], "colour": 1}, "unknown graph field"),
    ({"entities": [["Ana", "person"]], "relations": []}, "an entity is [name, kind, aliases]"),
    ({"entities": [["Ana", "wizard", []]], "relations": []}, "kind must be one of"),
    ({"entities": [["", "person", []]], "relations": []}, "entity name"),
    ({"entities": [["A" * 101, "person", []]], "relations": []}, "entity name"),
    ({"entities": [["Ana", "person", [3]]], "relations": []}, "alias"),
    ({"entities": [["Ana", "person", []], ["Ana", "place", []]], "relations": []}, "twice"),
    ({"entities": [["Ana", "person", []]], "relations": [["Ana", "lives_in", "Lyon"]]}, "not one of its entities"),
    ({"entities": [["Ana", "person", []], ["Lyon", "place", []]], "relations": [["Ana", "", "Lyon"]]},
     "relation"),
    ({"entities": [["Ana\x00", "person", []]], "relations": []}, "entity name"),
])
def test_a_malformed_graph_in_an_export_is_refused(tmp_path: Path, models_dir: Path, embedder: Embedder,
                                                   graph: Any, message: str) -> None:
    source = new_home(tmp_path, models_dir, "source")
    with Memory(home=source, embedder=embedder) as m:
        m.add("My sister Ana lives in Lyon.", user_id="alice", infer=False)
    out = tmp_path / "all.jsonl"
    cli(source, "export", "--out", str(out))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_edited(out.read_text().splitlines(), graph))
    with pytest.raises(InvalidInput, match="line 2: "):
        read_archive(bad)
    target = new_home(tmp_path, models_dir, "target")
    said = cli(target, "import", str(bad), code=2).stderr
    assert "line 2" in said and message in said, said
    assert not (target / "engram.db").exists() or tables(target / "engram.db")["memories"] == []


def test_an_export_from_before_graphs_imports_with_the_graph_the_rules_give(tmp_path: Path, models_dir: Path,
                                                                           embedder: Embedder) -> None:
    source = new_home(tmp_path, models_dir, "source")
    family(source, embedder)
    out = tmp_path / "all.jsonl"
    cli(source, "export", "--out", str(out))
    old = []
    for line in out.read_text().splitlines():
        row = json.loads(line)
        row.pop("graph", None)
        if "engram" in row:
            row["format"] = 1
        if "end" in row:
            del row["end"]["graphs"]
        old.append(json.dumps(row) + "\n")
    (tmp_path / "old.jsonl").write_text("".join(old))
    target = new_home(tmp_path, models_dir, "target")
    cli(target, "import", str(tmp_path / "old.jsonl"))
    with Memory(home=source, embedder=embedder) as m:
        before = view(m)
    with Memory(home=target, embedder=embedder) as m:
        assert view(m) == before  # these memories came from the rules, which give the same graph again
    assert tables(target / "engram.db")["graph_relations"] == tables(source / "engram.db")["graph_relations"]


def test_migrate_carries_graphs_to_new_version_numbers_and_refuses_a_copy_without_them(tmp_path: Path) -> None:
    import numpy as np

    from engram.graph import Entity, Graph, Relation
    from engram.migrate import migrate
    from engram.stores.base import ChangeSet
    from engram.stores.sqlite import SQLiteStore
    from engram.types import MemoryRecord, content_hash

    def record(text: str) -> MemoryRecord:
        return MemoryRecord(id=text[:8], text=text, hash=content_hash(text), user_id="u", created_at=1.0,
                            updated_at=1.0, valid_from=1.0)

    ana = Graph((Entity("Ana", "person"), Entity("Lyon", "place")), (Relation("Ana", "lives_in", "Lyon"),))
    vector = np.ones(4, dtype=np.float32) / 2
    source, target, older = (SQLiteStore(tmp_path / f"{name}.db") for name in ("source", "target", "older"))
    for store in (source, target, older):
        store.bind_embedder("test", 4)
    target.apply(ChangeSet(inserts=[(record("someone else's memory"), vector)]))  # the copy gets other numbers
    [lyon, _] = source.apply(ChangeSet(inserts=[(record("Ana lives in Lyon"), vector), (record("plain"), vector)],
                                       graph={0: ana}))
    assert migrate(source, target)["graphs"] == 1
    [copied] = [r for r, _ in target.dump() if r.id == lyon.id]
    assert copied.version != lyon.version and target.graphs([copied.version]) == {copied.version: ana}  # type: ignore[list-item]
    older.apply(ChangeSet(inserts=[(r, v) for r, v in source.dump()], keep_versions=True))  # a copy without graphs
    with pytest.raises(StoreError, match="hold another graph than the source's"):
        migrate(source, older)
    for store in (source, target, older):
        store.close()
