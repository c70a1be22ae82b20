"""What the web page shows of a store (engram.server.browse): pure functions over what the routes read."""

from __future__ import annotations

from engram.server.browse import latest_versions, users, versions_of
from engram.stores.base import UserStats
from engram.types import MemoryRecord


def version(text: str, *, written: float, version: int, valid_to: float | None = None,
            superseded_by: str | None = None, mid: str = "m1") -> MemoryRecord:
    return MemoryRecord(id=mid, text=text, hash=text, user_id="u", created_at=100.0, updated_at=written,
                        valid_from=written, valid_to=valid_to, superseded_by=superseded_by, version=version)


# An update (v2 closes v1), then a revert (v2 closed, v1 current again). Version numbers need not rise with time
# (Qdrant's are random), so the order is when each was written.
FIRST = version("likes tea", written=100.0, version=900)
SECOND = version("likes green tea", written=200.0, version=7, valid_to=300.0)


def test_a_reverted_memorys_latest_version_is_its_current_one() -> None:
    assert latest_versions([SECOND, FIRST]) == [FIRST]
    rising = [version("likes tea", written=100.0, version=1), version("likes green tea", written=200.0, version=2,
                                                                      valid_to=300.0)]
    assert latest_versions(rising) == [rising[0]]  # SQLite's numbers rise: the closed one has the larger
    closed_first = version("likes tea", written=100.0, version=900, valid_to=200.0)
    current_second = version("likes green tea", written=200.0, version=7)
    assert latest_versions([closed_first, current_second]) == [current_second]


def test_versions_are_shown_in_the_order_written_with_their_states() -> None:
    closed_first = version("likes tea", written=100.0, version=900, valid_to=200.0)
    current_second = version("likes green tea", written=200.0, version=7)
    assert [(v["memory"], v["state"]) for v in versions_of([closed_first, current_second])] == \
        [("likes tea", "superseded"), ("likes green tea", "current")]
    assert [(v["memory"], v["state"]) for v in versions_of([FIRST, SECOND])] == \
        [("likes tea", "current"), ("likes green tea", "deleted")]


def test_users_are_listed_most_recently_changed_first() -> None:
    rows = users([UserStats("ann", 2, 3, 100.0), UserStats("bob", 1, 1, 300.0), UserStats("cid", 0, 1, 100.0)])
    assert [(r["user_id"], r["current"], r["memories"]) for r in rows] == [("bob", 1, 1), ("ann", 2, 3),
                                                                           ("cid", 0, 1)]
    assert rows[0]["last_change"].startswith("1970-01-01T00:05:00")
