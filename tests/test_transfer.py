"""engram.transfer: JSONL and LoCoMo readers, chunked imports, JSONL and Markdown exports."""

from __future__ import annotations

import io
import json
import threading
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from engram import EmbedderError, InvalidInput, Memory
from engram.embed import Embedder
from engram.transfer import (
    detect_format,
    export_jsonl,
    export_markdown,
    import_items,
    read_jsonl,
    read_locomo,
    safe_filename,
)


def write_lines(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


LOCOMO = {
    "sample_id": "conv-x",
    "conversation": {
        "speaker_a": "Ann", "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a puppy called Rex."},
            {"speaker": "Ben", "dia_id": "D1:2", "text": "Look at this!", "img_url": ["http://x"],
             "blip_caption": "a photo of a red bicycle"},
        ],
        "session_2_date_time": "9:05 am on 1 June, 2023",
        "session_2": [{"speaker": "Ann", "dia_id": "D2:1", "text": "Rex learned to sit."}],
        "session_3_date_time": "10:00 am on 2 July, 2023",  # a date with no session: ignored
    },
    "qa": [],
}


# -- reading JSONL ---------------------------------------------------------------------------------------------

def test_read_jsonl_accepts_export_shape_and_aliases(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [
        {"memory": "likes tea", "user_id": "u", "metadata": {"k": 1}, "categories": ["Food"],
         "valid_from": "2024-01-02T03:04:05+00:00", "created_at": "2025-01-01T00:00:00Z", "source": ["m1"],
         "role": "assistant", "id": "ignored", "hash": "ignored"},
        {"text": "plays chess", "agent_id": "bot", "timestamp": 1700000000},
        "",
        {"content": "runs daily", "run_id": "r1", "created_at": "2024-05-06T00:00:00"},
    ])
    first, second, third = read_jsonl(path)
    assert (first.content, first.scope.user_id) == ("likes tea", "u")
    assert (first.metadata, first.categories) == ({"k": 1}, ("food",))
    assert first.timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()  # valid_from wins
    assert (first.source, first.role) == ("m1", "assistant")
    assert (second.content, second.scope.agent_id, second.timestamp) == ("plays chess", "bot", 1700000000.0)
    assert (third.content, third.scope.run_id) == ("runs daily", "r1")
    assert third.timestamp == datetime(2024, 5, 6, tzinfo=UTC).timestamp()


def test_read_jsonl_user_id_replaces_and_fills_scope(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [{"memory": "a", "user_id": "old"}, {"memory": "b"}])
    assert [i.scope.user_id for i in read_jsonl(path, user_id="new")] == ["new", "new"]


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"memory": "x"}', "no user_id"),
    ('{"memory": "", "user_id": "u"}', "non-empty string"),
    ('{"memory": 5, "user_id": "u"}', "non-empty string"),
    ('{"memory": "x", "user_id": "u", "timestamp": "yesterday"}', "ISO 8601"),
    ('{"memory": "x", "user_id": "u", "metadata": [1]}', "metadata"),
    ('{"memory": "x", "user_id": "u", "categories": [""]}', "category"),
    ('{"memory": "x", "user_id": "u", "role": "system"}', "role"),
    ('{"memory": "x", "user_id": 7}', "user_id"),
    ('{"memory": "x", "user_id": "u", "source": {"a": 1}}', "source"),
])
def test_read_jsonl_names_the_bad_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_lines(tmp_path / "in.jsonl", [{"memory": "fine", "user_id": "u"}, line])
    with pytest.raises(InvalidInput, match=f"line 2: .*{message}"):
        read_jsonl(path)


def test_read_jsonl_rejects_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"memory": "ok", "user_id": "u"}\n{"memory": "\xff", "user_id": "u"}\n')
    with pytest.raises(InvalidInput, match="line 2: not UTF-8"):
        read_jsonl(path)


# -- reading LoCoMo --------------------------------------------------------------------------------------------

def test_read_locomo_turns_become_timed_messages(tmp_path: Path) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([LOCOMO]))
    items = read_locomo(path)
    assert [i.message() for i in items] == [
        {"role": "user", "content": "Ann: I adopted a puppy called Rex.", "name": "Ann", "id": "D1:1"},
        {"role": "user", "content": "Ben: Look at this! [shares a photo: a photo of a red bicycle]", "name": "Ben",
         "id": "D1:2"},
        {"role": "user", "content": "Ann: Rex learned to sit.", "name": "Ann", "id": "D2:1"},
    ]
    assert {i.scope.user_id for i in items} == {"conv-x"}
    may8 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC).timestamp()
    june1 = datetime(2023, 6, 1, 9, 5, tzinfo=UTC).timestamp()
    assert [i.timestamp for i in items] == [may8, may8, june1]


def test_read_locomo_single_object_and_user_override(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(LOCOMO))
    assert {i.scope.user_id for i in read_locomo(path, user_id="me")} == {"me"}
    assert len(read_locomo(path)) == 3


def test_read_locomo_sessions_in_numeric_order(tmp_path: Path) -> None:
    conversation: dict[str, object] = {f"session_{n}_date_time": f"1:00 pm on {n} May, 2023" for n in (10, 2)}
    conversation.update({f"session_{n}": [{"speaker": "A", "text": f"turn {n}"}] for n in (10, 2)})
    conv = {"sample_id": "c", "conversation": conversation}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(conv))
    assert [i.content for i in read_locomo(path)] == ["A: turn 2", "A: turn 10"]


@pytest.mark.parametrize(("change", "message"), [
    ({"session_1_date_time": "yesterday"}, "session_1_date_time"),
    ({"session_1": [{"speaker": "Ann"}]}, "speaker' and 'text'"),
    ({"session_1": "not a list"}, "list of turns"),
])
def test_read_locomo_bad_input(tmp_path: Path, change: dict, message: str) -> None:
    conv = json.loads(json.dumps(LOCOMO))
    conv["conversation"].update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(conv))
    with pytest.raises(InvalidInput, match=message):
        read_locomo(path)


def test_detect_format(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([LOCOMO]))
    (tmp_path / "b.json").write_text(json.dumps(LOCOMO))
    write_lines(tmp_path / "c.txt", [{"memory": "x", "user_id": "u"}, {"memory": "y", "user_id": "u"}])
    write_lines(tmp_path / "d.json", [{"memory": "x", "user_id": "u"}])
    write_lines(tmp_path / "e.jsonl", ["[]"])
    assert [detect_format(tmp_path / n) for n in ("a.json", "b.json", "c.txt", "d.json", "e.jsonl")] == [
        "locomo", "locomo", "jsonl", "jsonl", "jsonl"]


# -- importing -------------------------------------------------------------------------------------------------

def test_import_items_chunks_by_size_and_shared_fields(memory: Memory, tmp_path: Path) -> None:
    rows = [{"memory": f"fact number {i}", "user_id": "u"} for i in range(130)]
    rows += [{"memory": "other time", "user_id": "u", "timestamp": "2024-01-01T00:00:00"},
             {"memory": "other user", "user_id": "v", "timestamp": "2024-01-01T00:00:00"}]
    chunks: list[int] = []
    counts = import_items(memory, read_jsonl(write_lines(tmp_path / "in.jsonl", rows)), chunk=64,
                          progress=chunks.append)
    assert chunks == [64, 64, 2, 1, 1]
    assert counts == {"ADD": 132, "NOOP": 0}
    assert len(memory.get_all(user_id="u", limit=1000)["results"]) == 131
    other = memory.get_all(user_id="v")["results"][0]
    assert other["valid_from"] == "2024-01-01T00:00:00+00:00"


def test_import_items_counts_duplicates_as_noop(memory: Memory, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [{"memory": m, "user_id": "u"} for m in ("a", "b", "A ", "c")])
    assert import_items(memory, read_jsonl(path)) == {"ADD": 3, "NOOP": 1}
    assert import_items(memory, read_jsonl(path)) == {"ADD": 0, "NOOP": 4}


def test_import_items_checks_length_before_writing(memory: Memory, tmp_path: Path) -> None:
    rows = [{"memory": f"fine {i}", "user_id": "u"} for i in range(70)] + [{"memory": "x" * 5000, "user_id": "u"}]
    with pytest.raises(InvalidInput, match="line 71"):
        import_items(memory, read_jsonl(write_lines(tmp_path / "in.jsonl", rows)), chunk=8)
    assert memory.get_all(user_id="u")["results"] == []


def test_import_locomo_keeps_dates_and_dia_ids(memory: Memory, tmp_path: Path) -> None:
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps(LOCOMO))
    assert import_items(memory, read_locomo(path)) == {"ADD": 3, "NOOP": 0}
    rows = {r["memory"]: r for r in memory.get_all(user_id="conv-x")["results"]}
    assert rows["Ann: Rex learned to sit."]["source"] == ["D2:1"]
    assert rows["Ann: Rex learned to sit."]["valid_from"] == "2023-06-01T09:05:00+00:00"


def test_a_text_repeated_in_the_next_write_is_found_though_it_was_embedded_ahead(memory: Memory,
                                                                                  tmp_path: Path) -> None:
    # The second write's texts are looked up and embedded while the first is stored: they are new then
    rows = [{"memory": f"fact {i}", "user_id": "u", "timestamp": when} for when in ("2024-01-01", "2024-02-01")
            for i in range(5)]
    assert import_items(memory, read_jsonl(write_lines(tmp_path / "in.jsonl", rows)), chunk=5, per_write=5) == \
        {"ADD": 5, "NOOP": 5}
    assert sorted(r["memory"] for r in memory.get_all(user_id="u")["results"]) == [f"fact {i}" for i in range(5)]


class Refusing(Embedder):
    """Seeded random vectors; refuses a text holding "poison", and notes the threads it is called in."""

    name = "test-refusing"
    dimension = 16

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        if any("poison" in t for t in texts):
            raise EmbedderError("this embedder refuses poison")
        return np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(16) for t in texts])


def test_an_embedding_error_ahead_stops_the_import_after_whole_writes_and_a_rerun_resumes(tmp_path: Path) -> None:
    rows = [{"memory": f"fact {i}", "user_id": "u"} for i in range(12)]
    rows[9]["memory"] = "poison"
    path = write_lines(tmp_path / "in.jsonl", rows)
    embedder = Refusing()
    with Memory(home=tmp_path, embedder=embedder) as memory:
        with pytest.raises(EmbedderError, match="poison"):
            import_items(memory, read_jsonl(path), chunk=4, per_write=4)
        assert threading.current_thread().name not in embedder.threads  # embedded in the import's thread
        assert sorted(r["memory"] for r in memory.get_all(user_id="u")["results"]) == \
            sorted(f"fact {i}" for i in range(8))  # the two writes before the refused one
        rows[9]["memory"] = "fact 9"
        assert import_items(memory, read_jsonl(write_lines(path, rows)), chunk=4, per_write=4) == \
            {"ADD": 4, "NOOP": 8}


# -- exporting -------------------------------------------------------------------------------------------------

def seed(memory: Memory) -> dict[str, str]:
    ids = {}
    for text, user, agent, cats in [
        ("likes tea", "alice", None, ["food"]),
        ("lives in Lisbon", "alice", None, None),
        ("plays chess", "alice", "coach", ["hobby", "games"]),
        ("runs daily", "bob", None, ["sport"]),
        ("speaks French", None, "tutor", None),
        ("old news", "bob", None, None),
    ]:
        ids[text] = memory.add(text, infer=False, categories=cats, user_id=user, agent_id=agent)["results"][0]["id"]
    memory.update(ids["lives in Lisbon"], "lives in Porto")
    memory.delete(ids["old news"])
    return ids


def exported(memory: Memory, **scope: str) -> list[dict]:
    out = io.StringIO()
    count = export_jsonl(memory, out, **scope)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(rows)
    return rows


def test_export_jsonl_all_scopes_current_only(memory: Memory) -> None:
    seed(memory)
    rows = exported(memory)
    assert [r["memory"] for r in rows] == ["likes tea", "plays chess", "runs daily", "speaks French", "lives in Porto"]
    by_text = {r["memory"]: r for r in rows}
    assert by_text["speaks French"]["agent_id"] == "tutor" and "user_id" not in by_text["speaks French"]
    alice = memory.get_all(user_id="alice")["results"]
    assert sorted(alice, key=lambda r: r["id"]) == sorted(exported(memory, user_id="alice"), key=lambda r: r["id"])
    assert [r["memory"] for r in exported(memory, agent_id="coach")] == ["plays chess"]


def test_export_then_import_gives_the_same_memories(memory: Memory, tmp_path: Path, models_dir: Path) -> None:
    seed(memory)
    path = tmp_path / "out.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        export_jsonl(memory, fh)
    other_home = tmp_path / "other"
    other_home.mkdir()
    (other_home / "models").symlink_to(models_dir)
    with Memory(home=other_home) as fresh:
        assert import_items(fresh, read_jsonl(path)) == {"ADD": 5, "NOOP": 0}
        assert comparable(exported(fresh)) == comparable(exported(memory))


def comparable(rows: list[dict]) -> list[dict]:
    """What must survive a round trip: everything but ids and the times of storing."""
    drop = {"id", "created_at", "updated_at", "version", "batch_id"}
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows), key=lambda r: r["memory"])


def test_export_markdown_per_user_grouped_by_category(memory: Memory, tmp_path: Path) -> None:
    seed(memory)
    files = export_markdown(memory, tmp_path / "md")
    assert sorted(f.name for f in files) == ["_no_user.md", "alice.md", "bob.md"]
    text = (tmp_path / "md" / "alice.md").read_text()
    assert text.startswith("# Memories of alice")
    assert text.index("## Food") < text.index("## Hobby") < text.index("## Uncategorised")
    assert "- plays chess — " in text and "_(also: games)_" in text
    assert "lives in Porto" in text and "Lisbon" not in text
    assert "old news" not in (tmp_path / "md" / "bob.md").read_text()
    only = export_markdown(memory, tmp_path / "one", user_id="bob")
    assert [f.name for f in only] == ["bob.md"]


def test_export_markdown_file_names_are_safe(memory: Memory, tmp_path: Path) -> None:
    for user in ("../evil", "a/b", "a_b", "..", "/etc/passwd"):
        memory.add(f"a fact of {user}", user_id=user, infer=False)
    out = tmp_path / "deep" / "md"
    files = export_markdown(memory, out)
    assert len({f.name for f in files}) == 5
    for f in files:
        assert f.parent == out and f.resolve().parent == out.resolve()
        assert "/" not in f.name and not f.name.startswith(".")
    assert sorted(p.name for p in tmp_path.rglob("*.md")) == sorted(f.name for f in files)


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".", "x\\y", "\x00", "é" * 200, "a" * 300])
def test_safe_filename(name: str) -> None:
    safe = safe_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".") and len(safe) <= 100
    assert safe_filename("alice") == "alice"
    assert safe_filename("a/b") != safe_filename("a_b")
