"""Figure 5: crash safety. A forked child adds in a loop (plain, large, or inferred with the offline pipeline) and
writes an intent line before each add and an acknowledgement after it returns; it is SIGKILLed at a random
moment. Then the database must pass `PRAGMA integrity_check` and engram's invariants."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _common import OBJECTS, SUBJECTS, VERBS
from _fakes import HashEmbedder, WordHashEmbedder

from engram import Memory
from engram.inputs import parse_messages
from engram.llm import Usage
from engram.offline import OfflineExtractor
from engram.stores.sqlite import SQLiteStore

__all__ = ["KINDS", "Crashes", "run_crashes"]

_FORK = multiprocessing.get_context("fork")
DIMENSION = 384
KINDS = {"plain": 0.25, "large": 1.2, "inferred": 0.5}  # kind -> longest wait before the kill, seconds
_GAMES = ["jazz", "chess", "tennis", "poker", "sushi", "opera", "yoga", "golf", "salsa", "rugby"]


@dataclass
class Crashes:
    kind: str
    kills: int = 0
    mid_add: int = 0  # kills that landed after an intent and before its acknowledgement
    acked: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    rows: int = 0
    whole: int = 0  # interrupted adds found whole (killed after the commit, before the acknowledgement)
    # per database: versions closed by a later add (inferred corrections), so writes that close were killed too
    superseded: dict[str, int] = field(default_factory=dict)

    def fail(self, what: str, detail: str) -> None:
        self.failures[what] += 1
        if len(self.examples) < 8:
            self.examples.append(f"kill {self.kills}: {what}: {detail}"[:300])


def _messages(kind: str, rng: random.Random, tag: str) -> list[dict[str, str]]:
    if kind == "inferred":
        said = []
        for j in range(rng.randint(1, 6)):
            game = rng.choice(_GAMES)
            said.append(f"Actually I don't play {game} anymore {tag}x{j}." if rng.random() < 0.3 else
                        f"I play {game} on Sundays {tag}x{j}.")
        return [{"role": "user", "content": " ".join(said)}, {"role": "assistant", "content": "Noted!"}]
    count = rng.randint(150, 400) if kind == "large" else rng.randint(1, 5)
    return [{"role": rng.choice(["user", "assistant"]),
             "content": f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {tag}m{j}"}
            for j in range(count)]


def _child(kind: str, home: Path, acks: Path, seed: int, prefix: str) -> None:
    """Add until killed; write 'I <tag> <messages>' before each add and 'A <tag> <batch> <ids>' after it returns."""
    fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        rng = random.Random(seed)
        with Memory(home=home, store=SQLiteStore(home / "engram.db"), embedder=_embedder(kind)) as m:
            m.get_all(user_id="crash", limit=1)
            os.write(fd, b"ready\n")
            for n in itertools.count():
                tag = f"zq{prefix}n{n}zq"
                messages = _messages(kind, rng, tag)
                os.write(fd, f"I {tag} {json.dumps(messages)}\n".encode())
                out = m.add(messages, user_id="crash", infer=kind == "inferred")
                written = [r["id"] for r in out["results"] if r["event"] in ("ADD", "UPDATE")]
                os.write(fd, f"A {tag} {out['batch_id']} {json.dumps(written)}\n".encode())
    except BaseException as exc:
        os.write(fd, f"E {type(exc).__name__}: {exc}\n".encode())
        raise


def _expected_rows(kind: str, messages: list[dict[str, str]]) -> int:
    """How many versions a whole add of `messages` writes: every message (plain), or every fact the offline
    extractor finds (each fact carries a unique tag, so none is a duplicate; a correction writes its fact too)."""
    if kind != "inferred":
        return len({m["content"] for m in messages})
    return len(OfflineExtractor().extract(parse_messages(messages, 4000), 0.0, ("other",), Usage()))


def _read_acks(acks: Path) -> tuple[list[tuple[str, str, list[str]]], tuple[str, list] | None, list[str]]:
    acked, intent, errors = [], None, []
    for line in acks.read_text(encoding="utf-8").splitlines():
        if line.startswith("I "):
            _, tag, messages = line.split(" ", 2)
            intent = (tag, json.loads(messages))
        elif line.startswith("A "):
            _, tag, batch, ids = line.split(" ", 3)
            acked.append((batch, tag, json.loads(ids)))
            intent = None
        elif line.startswith("E "):
            errors.append(line)
    return acked, intent, errors


_INVARIANTS = {
    "current memory without a vector": "SELECT count(*) FROM memories WHERE valid_to IS NULL AND length(vector) != ?",
    # (float16, the default vector storage: 2 bytes a dimension)
    "memory without its keyword terms": "SELECT count(*) FROM memories WHERE terms IS NULL",
    "current memory without its ADD/UPDATE event": "SELECT count(*) FROM memories m WHERE valid_to IS NULL AND "
        "NOT EXISTS "
        "(SELECT 1 FROM history h WHERE h.new_version = m.rowid AND h.memory_id = m.id AND h.op IN ('ADD', 'UPDATE'))",
    "batch whose versions and events disagree": "SELECT count(*) FROM (SELECT batch_id, count(*) AS n FROM memories "
        "GROUP BY batch_id) v FULL JOIN (SELECT batch_id, count(*) AS n FROM history WHERE new_version IS NOT NULL "
        "GROUP BY batch_id) e USING (batch_id) WHERE v.n IS NOT e.n",
    "event closing a version that is still current": "SELECT count(*) FROM history h JOIN memories m "
        "ON m.rowid = h.old_version WHERE h.op IN ('UPDATE', 'DELETE') AND m.valid_to IS NULL",
}


def check(db_path: Path, kind: str, acks: Path, out: Crashes) -> None:
    """Integrity, invariants, acknowledged writes, and the interrupted add: all of its versions or none."""
    acked, intent, errors = _read_acks(acks)
    out.acked += len(acked)
    for earlier in sorted(acks.parent.glob("acks-*.log")):  # what earlier children acknowledged must stay too
        if earlier != acks:
            acked += _read_acks(earlier)[0]
    for error in errors:
        out.fail("the child stopped on an error", error)
    db = sqlite3.connect(db_path, timeout=30)
    try:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            out.fail("integrity_check", str(db.execute("PRAGMA integrity_check").fetchall()[:3]))
        for what, sql in _INVARIANTS.items():
            bad = db.execute(sql, (2 * DIMENSION,) if "?" in sql else ()).fetchone()[0]
            if bad:
                out.fail(what, f"{bad} found")
        _check_acked(db, acked, out)
        if intent is not None:
            out.mid_add += 1
            _check_interrupted(db, kind, intent, out)
        out.rows = db.execute("SELECT count(*) FROM memories").fetchone()[0]
        out.superseded[str(db_path)] = db.execute("SELECT count(*) FROM history WHERE op = 'DELETE'").fetchone()[0]
    finally:
        db.close()


def _check_acked(db: sqlite3.Connection, acked: list, out: Crashes) -> None:
    rows = dict(db.execute("SELECT batch_id, count(*) FROM memories GROUP BY batch_id").fetchall())
    present = {row[0] for row in db.execute("SELECT id FROM memories")}
    for batch, tag, ids in acked:
        missing = [i for i in ids if i not in present]
        if missing:
            out.fail("acknowledged write missing", f"{tag}: {len(missing)} of {len(ids)} ids")
        if rows.get(batch, 0) != len(ids):
            out.fail("acknowledged batch not whole", f"{tag}: {rows.get(batch, 0)} versions, {len(ids)} acknowledged")


def _check_interrupted(db: sqlite3.Connection, kind: str, intent: tuple[str, list], out: Crashes) -> None:
    tag, messages = intent
    found = db.execute("SELECT batch_id, text FROM memories WHERE text LIKE ?", (f"%{tag}%",)).fetchall()
    found = [(b, t) for b, t in found if re.search(rf"{tag}[mx]\d+\b", t)]
    expected = _expected_rows(kind, messages)
    out.whole += len(found) == expected and expected > 0
    if found and (len(found) != expected or len({b for b, _ in found}) != 1):
        batches = len({b for b, _ in found})
        out.fail("half-applied batch", f"{tag}: {len(found)} of {expected} versions in {batches} batch(es)")


def _embedder(kind: str) -> HashEmbedder:
    return WordHashEmbedder(DIMENSION) if kind == "inferred" else HashEmbedder(DIMENSION)


def _reopen(kind: str, home: Path, out: Crashes) -> None:
    """The store opens after the crash as a user would open it, and reads."""
    try:
        with Memory(home=home, store=SQLiteStore(home / "engram.db"), embedder=_embedder(kind)) as m:
            m.get_all(user_id="crash", limit=5)
            m.search("chess", user_id="crash", limit=5)
    except Exception as exc:  # noqa: BLE001 - reported as the failure it is
        out.fail("reopen after the kill", f"{type(exc).__name__}: {exc}")


def _one_kill(kind: str, home: Path, rng: random.Random, n: int, out: Crashes) -> None:
    acks = home / f"acks-{n}.log"
    child = _FORK.Process(target=_child, args=(kind, home, acks, rng.randrange(2**32), str(n)), daemon=True)
    child.start()
    deadline = time.monotonic() + 60
    while not (acks.exists() and acks.read_bytes().startswith(b"ready")):
        if not child.is_alive() or time.monotonic() > deadline:
            out.fail("the child did not start", f"exit code {child.exitcode}")
            child.kill()
            child.join()
            return
        time.sleep(0.002)
    time.sleep(rng.uniform(0, KINDS[kind]))
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(timeout=30)
    out.kills += 1
    if child.exitcode != -signal.SIGKILL:
        out.fail("the child ended before the kill", f"exit code {child.exitcode}")
    check(home / "engram.db", kind, acks, out)
    _reopen(kind, home, out)


def run_crashes(kind: str, base: Path, seed: int, kills: int, per_database: int = 10) -> Crashes:
    """`kills` SIGKILLs of children doing `kind` adds; a fresh database every `per_database` kills."""
    rng = random.Random(seed)
    out = Crashes(kind)
    for n in range(kills):
        home = base / f"{kind}-{n // per_database}"
        home.mkdir(parents=True, exist_ok=True)
        _one_kill(kind, home, rng, n, out)
    return out
