"""Graph memory through the library: entities and relations from the offline rules and from the LLM's own
extraction answer (fake server, no extra call), aliases, closing with their facts, as_of, revert, search."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engram import Memory, NotFound
from engram.graph import Entity, Graph, Relation, resolve
from engram.graph_rules import rules_graph
from engram.retrieval import SearchConfig, search
from engram.stores.base import Criteria
from engram.testing import FakeOpenAI, dspy_reply
from engram.types import Scope


def names(m: Memory, **kw) -> dict[str, dict]:
    return {e["name"]: e for e in m.entities(**kw)["results"]}


def triples(out: dict) -> set[tuple[str, str, str]]:
    return {(r["subject"], r["relation"], r["object"]) for r in out["relations"]}


def test_the_rules_find_kin_places_and_work() -> None:
    graph = rules_graph("My sister Ana lives in Lyon and works at Acme Corp")
    assert set(graph.relations) == {Relation("User", "sister", "Ana"), Relation("Ana", "lives_in", "Lyon"),
                                    Relation("Ana", "works_at", "Acme Corp")}
    kinds = {e.name: (e.kind, e.aliases) for e in graph.entities}
    assert kinds["Ana"] == ("person", ("User's sister",)) and kinds["Lyon"][0] == "place"
    assert kinds["Acme Corp"][0] == "organisation"
    assert {e.name for e in rules_graph("I saw Mel at the gym on 7 May 2023.").entities} == {"Mel", "7 May 2023"}


def test_a_speaker_label_makes_the_first_person_the_speaker() -> None:
    graph = rules_graph("Nate: I've lived in Lyon since 2019. My sister Ana works at Acme Corp.")
    assert {Relation("Nate", "lives_in", "Lyon"), Relation("Nate", "sister", "Ana"),
            Relation("Ana", "works_at", "Acme Corp")} <= set(graph.relations)
    assert "User" not in graph.names() and ("Nate", "person") in {(e.name, e.kind) for e in graph.entities}
    # a label that is no name is not a speaker: the text stays the user's
    assert Relation("User", "lives_in", "Berlin") in rules_graph("Note: I moved to Berlin.").relations
    assert rules_graph("Hey Ana: I moved to Berlin.").relations == (Relation("User", "lives_in", "Berlin"),)


@pytest.mark.parametrize("text", ["Hey Mel! Good to see you.", "Thanks, Mel! That means a lot.",
                                  "Wow, Mel, that sounds awesome!", "Mel, look at this.", "What a photo, Mel!",
                                  "Thank you Mel."])
def test_a_name_the_text_addresses_is_not_what_it_is_about(text: str) -> None:
    assert "Mel" not in rules_graph(text).names()
    assert "Mel" not in rules_graph(f"Caroline: {text}").names()


def test_names_near_addresses_and_contractions() -> None:
    # named, not addressed: in a list, before "and", after a comma in a place
    assert {"Luna", "Oliver"} <= rules_graph("Luna and Oliver! They are sweet.").names()
    assert {"Lyon", "France"} <= rules_graph("I moved to Lyon, France.").names()
    assert {"Paris"} <= rules_graph("Hey Tom! I moved to Paris.").names() - {"Tom"}
    # "I'm" is the speaker, and a contraction is never a name
    names = rules_graph("Ana: I'm happy. You're great, can't wait. Don't worry, they've said so.").names()
    assert names == {"Ana"}
    assert rules_graph("I'm living in Oslo").relations == (Relation("User", "lives_in", "Oslo"),)


@pytest.mark.parametrize(("text", "names"), [
    ("I'm allergic to peanuts", set()),
    ("I've been to Paris with Ana", {"Paris", "Ana"}),
    ("I\u2019ll visit Lyon", {"Lyon"}),
    ("I'd love to see Rome", {"Rome"}),
])
def test_first_person_contractions_are_not_names(text: str, names: set[str]) -> None:
    assert {e.name for e in rules_graph(text).entities} - {"User"} == names


def test_names_resolve_to_known_entities_and_an_ambiguous_one_stays_apart() -> None:
    known = [Entity("Melanie", "person"), Entity("Ana", "person", ("User's sister",))]
    sister = resolve(rules_graph("My sister moved to Paris"), known)
    assert Relation("Ana", "lives_in", "Paris") in sister.relations
    mel = resolve(Graph((Entity("Mel", "person"),)), known)
    assert mel.entities == (Entity("Melanie", "person", ("Mel",)),)
    two = [Entity("Melanie", "person"), Entity("Melissa", "person")]
    assert resolve(Graph((Entity("Mel", "person"),)), two).entities == (Entity("Mel", "person"),)


def test_offline_family_and_work_graph(memory: Memory) -> None:
    memory.add("My sister Ana lives in Lyon.", user_id="alice", timestamp="2024-01-01")
    memory.add("I work at Acme Corp.", user_id="alice", timestamp="2024-01-02")
    found = names(memory, user_id="alice")
    assert found["Ana"]["kind"] == "person" and "User's sister" in found["Ana"]["aliases"]
    assert found["Lyon"]["kind"] == "place" and found["Acme Corp"]["kind"] == "organisation"
    out = memory.related("ana", user_id="alice", hops=2)
    assert out["entity"]["name"] == "Ana"
    assert {("User", "sister", "Ana"), ("Ana", "lives_in", "Lyon"), ("User", "works_at", "Acme Corp")} <= triples(out)
    assert {e["name"]: e["distance"] for e in out["entities"]}["Acme Corp"] == 2
    near = triples(memory.related("Ana", user_id="alice", hops=1))
    assert near == {("User", "sister", "Ana"), ("Ana", "lives_in", "Lyon")}
    assert names(memory, user_id="bob") == {}
    with pytest.raises(NotFound):
        memory.related("Zed", user_id="alice")


def test_relations_close_with_their_fact_and_as_of_reads_the_old_graph(memory: Memory) -> None:
    first = memory.add("My sister Ana lives in Lyon.", user_id="alice", timestamp="2024-01-01")
    lyon = first["results"][0]["id"]
    memory.update(lyon, "User's sister Ana lives in Paris", timestamp="2024-03-01")
    now = triples(memory.related("Ana", user_id="alice"))
    assert ("Ana", "lives_in", "Paris") in now and ("Ana", "lives_in", "Lyon") not in now
    then = triples(memory.related("Ana", user_id="alice", as_of="2024-02-01"))
    assert ("Ana", "lives_in", "Lyon") in then and ("Ana", "lives_in", "Paris") not in then
    assert "Lyon" not in names(memory, user_id="alice") and "Lyon" in names(memory, user_id="alice", as_of="2024-02-01")
    memory.delete(lyon)
    assert names(memory, user_id="alice") == {}


def test_revert_takes_the_batch_relations_away(memory: Memory) -> None:
    memory.add("My sister Ana lives in Lyon.", user_id="alice")
    second = memory.add("My brother Tom works at Globex Corp.", user_id="alice")
    assert "Tom" in names(memory, user_id="alice")
    memory.revert(second["batch_id"])
    assert "Tom" not in names(memory, user_id="alice") and "Ana" in names(memory, user_id="alice")


def test_raw_turns_get_entities_and_short_names_merge(memory: Memory) -> None:
    memory.add([{"role": "user", "content": "Melanie works at Acme Corp."}], user_id="c", infer=False)
    memory.add([{"role": "user", "content": "I saw Mel's painting in Boston."}], user_id="c", infer=False)
    found = names(memory, user_id="c")
    assert "Mel" in found["Melanie"]["aliases"] and found["Melanie"]["memories"] == 2 and "Boston" in found


def test_search_with_graph_brings_memories_of_the_named_entity(memory: Memory) -> None:
    memory.add([{"role": "user", "content": "My sister Ana lives in Lyon."},
                {"role": "user", "content": "The weather was grey all week."}], user_id="a", infer=False)
    for i in range(8):
        memory.add(f"I tried recipe number {i} for dinner", user_id="a", infer=False)
    plain = memory.search("Where does Ana live?", user_id="a", limit=3, explain=True)["results"]
    graphed = memory.search("Where does Ana live?", user_id="a", limit=3, graph=True, explain=True)["results"]
    assert graphed[0]["memory"] == "My sister Ana lives in Lyon."
    assert "graph" not in plain[0]["explain"]
    # linked memories keep their score (strength 1), the others give a share of theirs to the graph's weight
    assert graphed[0]["explain"]["graph"] >= 0 and all(h["explain"]["graph"] <= 0 for h in graphed[1:])
    top = graphed[0]["explain"]
    assert abs(top["fused"] + top["graph"] + top["time"] + top["context"] - graphed[0]["score"]) < 1e-5


def test_a_transcript_is_about_its_speakers_and_search_prefers_the_one_asked_about(memory: Memory) -> None:
    turns = ["Ann: Ben, do you still play the violin?", "Ben: I play the cello now, my violin was too squeaky.",
             "Ann: Thanks, Ben! I moved to Lisbon in May."]
    memory.add([{"role": "user", "content": t} for t in turns], user_id="t", infer=False)
    found = names(memory, user_id="t")
    assert (found["Ann"]["memories"], found["Ben"]["memories"]) == (2, 1)  # addressed is not named
    assert ("Ann", "lives_in", "Lisbon") in triples(memory.related("Ann", user_id="t"))
    hits = memory.search("What does Ben play?", user_id="t", graph=True, explain=True, limit=3)["results"]
    assert {h["memory"]: h["explain"]["graph"] < 0 for h in hits} == {turns[0]: True, turns[1]: False, turns[2]: True}
    query, criteria = "What does Ben play?", Criteria(Scope(user_id="t"))
    vector = memory.embedder.embed([query])[0]
    strong = SearchConfig(graph_weight=1.0)
    assert search(memory.store, vector, query, criteria, 1, config=strong, graph=True)[0].record.text == turns[1]


def _facts(*items: tuple[str, list[tuple[str, str, str]]]) -> str:
    return dspy_reply(facts=[{"text": text, "category": "relationships", "about": "user", "happened_at": None,
                              "triplets": [{"subject": s, "relation": r, "object": o} for s, r, o in triplets]}
                             for text, triplets in items])


@pytest.fixture
def llm_memory(home, embedder, fake_openai: FakeOpenAI) -> Iterator[Memory]:
    with Memory(home=home, embedder=embedder, llm_model="openai/fake-model", llm_api_base=fake_openai.base_url,
                llm_api_key="sk-test", llm_retries=1, llm_timeout=5) as m:
        yield m


def test_llm_triplets_come_in_the_extraction_answer_with_no_extra_call(llm_memory: Memory,
                                                                        fake_openai: FakeOpenAI) -> None:
    fake_openai.script_chat(_facts(("Melanie is User's colleague", [("User", "colleague", "Melanie")]),
                                   ("Melanie plays the violin", [("Melanie", "plays", "violin")])))
    out = llm_memory.add("My colleague Melanie plays the violin", user_id="u")
    assert out["usage"]["llm_calls"] == 1 == fake_openai.count("/chat/completions")
    assert "triplets" in fake_openai.chat_requests[0].body["messages"][0]["content"]  # type: ignore[index]
    related = llm_memory.related("Mel", user_id="u", hops=1)
    assert related["entity"]["name"] == "Melanie"
    assert {("User", "colleague", "Melanie"), ("Melanie", "plays", "violin")} <= triples(related)


def test_the_agent_explores_an_entity(home, embedder, fake_openai: FakeOpenAI) -> None:
    from engram.agent import Agent

    with Memory(home=home, embedder=embedder, llm_model="openai/fake-model", llm_api_base=fake_openai.base_url,
                llm_api_key="k", llm_retries=0) as memory, Agent(memory, save_every=100) as agent:
        memory.add([{"role": "user", "content": "My sister Ana lives in Lyon."}], user_id="alice", infer=False)
        fake_openai.script_chat(
            dspy_reply(profile="- User has a sister"),
            dspy_reply(next_thought="look her up", next_tool_name="explore_entity", next_tool_args={"name": "Ana"}),
            dspy_reply(next_thought="done", next_tool_name="finish", next_tool_args={}),
            dspy_reply(reasoning="from memory", response="Ana lives in Lyon.", save_memory=False))
        reply = agent.reply("alice", "Where does my sister live?")
    assert reply.response == "Ana lives in Lyon." and reply.trace[0]["tool"] == "explore_entity"
    observation = reply.trace[0]["observation"]
    assert {"subject": "Ana", "relation": "lives_in", "object": "Lyon"} in observation["relations"]
    assert observation["memories"] == ["My sister Ana lives in Lyon."]
