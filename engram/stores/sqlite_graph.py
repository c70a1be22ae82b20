"""How the SQLite store keeps graph memory: rows of `graph_entities` and `graph_relations` per version (m007)."""

from __future__ import annotations

import json
import sqlite3

from engram.graph import Entity, Graph, Relation
from engram.stores.sqlite_rows import json_list, rows_in

__all__ = ["read_graphs", "write_graphs"]


def write_graphs(db: sqlite3.Connection, graphs: list[tuple[int, Graph]]) -> None:
    """Store each graph as the graph of its version, inside the write that inserts the versions (two statements
    for the whole write: an import stores hundreds of graphs a write)."""
    db.executemany("INSERT INTO graph_entities (version, name, kind, aliases) VALUES (?, ?, ?, ?)",
                   [(version, e.name, e.kind, json_list(e.aliases)) for version, graph in graphs
                    for e in graph.entities])
    db.executemany("INSERT INTO graph_relations (version, subject, relation, object) VALUES (?, ?, ?, ?)",
                   [(version, r.subject, r.relation, r.object) for version, graph in graphs for r in graph.relations])


def read_graphs(db: sqlite3.Connection, versions: list[int]) -> dict[int, Graph]:
    """The graph of each of `versions` that has one."""
    entities: dict[int, list[Entity]] = {}
    relations: dict[int, list[Relation]] = {}
    for version, name, kind, aliases in rows_in(
            db, "SELECT version, name, kind, aliases FROM graph_entities WHERE version IN", versions, tuple):
        entities.setdefault(version, []).append(Entity(name, kind, tuple(json.loads(aliases))))
    for version, subject, relation, obj in rows_in(
            db, "SELECT version, subject, relation, object FROM graph_relations WHERE version IN", versions, tuple):
        relations.setdefault(version, []).append(Relation(subject, relation, obj))
    return {v: Graph(tuple(entities.get(v, ())), tuple(relations.get(v, ()))) for v in {*entities, *relations}}
