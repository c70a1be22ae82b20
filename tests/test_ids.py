"""Memory and batch ids: UUIDs that the CLI can shorten to 8 characters and that a store's indexes take in order."""

from __future__ import annotations

import itertools
import threading
import uuid

from engram.types import new_batch_id, new_id


def test_ids_are_uuids_whose_first_8_characters_differ_and_which_rise_within_a_process() -> None:
    made = [new_id() for _ in range(20_000)]  # faster than one a microsecond: the counter still rises
    assert all(uuid.UUID(i).version == 8 and uuid.UUID(i).variant == uuid.RFC_4122 for i in made)
    assert len({i[:8] for i in made}) == len(made)  # what `engram` shows of an id names it
    firsts = [int(i[:8], 16) for i in made]
    wraps = sum(b < a for a, b in itertools.pairwise(firsts))
    assert wraps <= 1  # neighbours in an index, but for the wrap every 71 minutes
    assert len({i[9:] for i in made}) == len(made)  # 90 random bits beside the count


def test_ids_made_in_threads_at_once_are_all_different() -> None:
    made: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [new_id() for _ in range(2000)]
        with lock:
            made.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({i[:8] for i in made}) == len(made) == 8000


def test_batch_ids_are_the_same_ids_in_hex() -> None:
    batch = new_batch_id()
    assert len(batch) == 32 and uuid.UUID(hex=batch).version == 8
