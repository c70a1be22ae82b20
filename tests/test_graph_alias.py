"""Names resolving by similarity (engram.graph_alias) with the real MiniLM embedder: abbreviations and
misspellings join the known entity, similar names of different people stay apart, an ambiguous name and a name of
another kind never merge; the names are embedded in at most one call per add."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from engram import Memory
from engram.embed import Embedder
from engram.graph import pick_alias, spelling


class Counting(Embedder):
    """The session's MiniLM embedder, counting the calls made to it and the texts of each."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dimension = inner, inner.name, inner.dimension
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)


@pytest.fixture
def counted(embedder: Embedder) -> Counting:
    return Counting(embedder)


@pytest.fixture
def memory(home: Path, counted: Counting) -> Iterator[Memory]:
    with Memory(home=home, embedder=counted) as m:
        yield m


def entities(m: Memory, user: str = "u") -> dict[str, dict]:
    return {e["name"]: e for e in m.entities(user_id=user)["results"]}


def test_the_decision_merges_one_candidate_above_a_threshold_and_never_an_ambiguous_one() -> None:
    assert pick_alias({"New York City": 0.92, "Boston": 0.3}, {}, 0.875, 0.7) == "New York City"
    assert pick_alias({}, {"Melanie": 0.71}, 0.875, 0.7) == "Melanie"
    assert pick_alias({"New York City": 0.92}, {"New York City": 0.8}, 0.875, 0.7) == "New York City"
    assert pick_alias({"North Carolina": 0.9, "South Carolina": 0.88}, {}, 0.875, 0.7) is None
    assert pick_alias({"Marian": 0.5}, {"Marlon": 0.83}, 0.4, 0.7) is None  # one by meaning, one by spelling
    assert pick_alias({"Paris": 0.5}, {"Pariss": 0.6}, 0.875, 0.7) is None


def test_spelling_counts_edits_and_leaves_short_names_and_other_initials_apart() -> None:
    assert spelling("Melanie", "Melany") == pytest.approx(1 - 2 / 7)
    assert spelling("Michael", "Micheal") == pytest.approx(1 - 1 / 7)  # a swap is one edit
    assert spelling("Anna", "Hanna") == spelling("Tom", "Tim") == spelling("Justin", "Dustin") == 0.0
    assert spelling("the Boston", "boston!") == 1.0


def test_an_abbreviation_joins_the_place_it_abbreviates(memory: Memory) -> None:
    memory.add("I moved to New York City", user_id="u", infer=False)
    memory.add("My friend Tom lives in NYC", user_id="u", infer=False)
    found = entities(memory)
    assert "NYC" not in found and found["New York City"]["aliases"] == ["NYC"]
    assert found["New York City"]["memories"] == 2
    assert {r["object"] for r in memory.related("Tom", user_id="u", hops=1)["relations"]} >= {"New York City"}


def test_a_misspelled_name_joins_the_person_and_a_similar_name_stays_another_person(memory: Memory) -> None:
    memory.add("Melanie works at Acme Corp", user_id="u", infer=False)
    memory.add("Anna works at Globex Corp", user_id="u", infer=False)
    memory.add("Melany lives in Boston", user_id="u", infer=False)
    memory.add("Hanna lives in Oslo", user_id="u", infer=False)
    found = entities(memory)
    assert "Melany" in found["Melanie"]["aliases"] and "Melany" not in found
    assert found["Anna"]["kind"] == found["Hanna"]["kind"] == "person"
    assert found["Anna"]["aliases"] == found["Hanna"]["aliases"] == []


def test_an_ambiguous_name_and_a_name_of_another_kind_stay_apart(memory: Memory) -> None:
    memory.add("Marian works at Acme Corp", user_id="u", infer=False)
    memory.add("Marlon works at Globex Corp", user_id="u", infer=False)  # 2 edits in 6 letters: not Marian
    memory.add("Marion lives in Lyon", user_id="u", infer=False)  # one edit from each of them
    memory.add("I moved to Georgia", user_id="u", infer=False)
    memory.add("Georgina works at Initech Corp", user_id="u", infer=False)  # a person, one letter from a place
    found = entities(memory)
    assert {"Marian", "Marlon", "Marion", "Georgia", "Georgina"} <= found.keys()
    assert all(found[n]["aliases"] == [] for n in ("Marian", "Marlon", "Marion", "Georgia", "Georgina"))


def test_names_are_embedded_once_per_add_and_once_per_process(memory: Memory, counted: Counting) -> None:
    memory.add("Ana lives in Lyon", user_id="u", infer=False)
    assert counted.calls[-1] == ["ana", "lyon"]  # after the text: its new names, in one call
    counted.calls.clear()
    memory.add([{"role": "user", "content": "Tom works at Acme Corp"},
                {"role": "user", "content": "Lena moved to Paris and works at Globex Corp"}], user_id="u", infer=False)
    assert len(counted.calls) == 2  # the two texts in one call, the names in another
    assert sorted(counted.calls[1]) == ["acme corp", "globex corp", "lena", "paris", "tom"]  # Ana and Lyon: known
    counted.calls.clear()
    memory.add("Tom and Lena visited Lyon", user_id="u", infer=False)  # every name known: nothing to compare
    assert len(counted.calls) == 1


def test_the_setting_above_one_turns_similarity_off(home: Path, counted: Counting) -> None:
    with Memory(home=home, embedder=counted, graph_alias_similarity=1.5, graph_alias_spelling=1.5) as m:
        m.add("I moved to New York City", user_id="u", infer=False)
        m.add("Melanie works at Acme Corp", user_id="u", infer=False)
        counted.calls.clear()
        m.add("My friend Tom lives in NYC", user_id="u", infer=False)
        m.add("Melany lives in Boston", user_id="u", infer=False)
        assert len(counted.calls) == 2  # the two texts, no names
        assert {"NYC", "Melany"} <= entities(m).keys()


def test_name_vectors_embed_only_what_they_lack_and_keep_the_last_used() -> None:
    from engram.graph_alias import NameVectors

    asked: list[list[str]] = []

    def embed(names: list[str]) -> np.ndarray:
        asked.append(names)
        return np.array([[len(n), 1.0] for n in names], dtype=np.float32)

    vectors = NameVectors(embed, limit=2)
    vectors.fill(["ana", "lyon"])
    vectors.fill(["ana"])
    vectors.fill(["paris"])  # "lyon" was used least recently: it goes
    assert asked == [["ana", "lyon"], ["paris"]]
    assert "ana" in vectors and "paris" in vectors and "lyon" not in vectors
    paris = vectors.get("paris")
    assert paris is not None and float(np.linalg.norm(paris)) == pytest.approx(1.0)
