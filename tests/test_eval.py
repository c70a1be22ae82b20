"""engram.eval: metrics on hand-computed cases, the LoCoMo harness end to end on a tiny synthetic file, memory
mode's answerer and judge against the fake OpenAI server, and the real dev split when it is present."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engram.cli import app
from engram.config import Settings
from engram.eval.locomo import load_locomo
from engram.eval.metrics import bleu1, ndcg_at_k, parse_evidence, percentile, recall_at_k, token_f1
from engram.eval.report import table, usage_table, write_report
from engram.eval.run import evaluate_locomo
from engram.testing import FakeOpenAI, dspy_reply

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo_dev.json"


# -- metrics -----------------------------------------------------------------------------------------------------

def test_evidence_is_split_normalised_and_deduplicated() -> None:
    raw = ["D8:6; D9:17", "D9:1 D4:4", "D30:05", "D", "D:11:26", "D8:6"]
    assert parse_evidence(raw) == ("D8:6", "D9:17", "D9:1", "D4:4", "D30:5", "D", "D:11:26")
    assert parse_evidence([]) == ()


def test_recall_at_k() -> None:
    evidence = ("D1:1", "D1:2")
    retrieved = [("D1:5",), ("D1:2",), ("D1:1",)]
    assert [recall_at_k(evidence, retrieved, k) for k in (1, 2, 3, 50)] == [0.0, 0.5, 1.0, 1.0]
    assert recall_at_k((), retrieved, 5) == 1.0  # no evidence counts 1, as in the paper
    assert recall_at_k(evidence, [("D1:1", "D1:2")], 1) == 1.0  # a memory made of several turns
    assert recall_at_k(("D",), retrieved, 50) == 0.0  # a malformed id is evidence nobody can retrieve


def test_ndcg_at_10() -> None:
    evidence = ("a", "b")
    ideal = 1 + 1 / math.log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / ideal
    assert ndcg_at_k(evidence, [("x",), ("a",), ("b",)], 10) == pytest.approx(expected)
    assert ndcg_at_k(evidence, [("a",), ("b",)], 10) == pytest.approx(1.0)
    assert ndcg_at_k(evidence, [("a", "b")], 10) == pytest.approx(1 / ideal)  # one item credits one position
    assert ndcg_at_k(evidence, [("a",), ("a",)], 10) == pytest.approx(1 / ideal)  # the same turn twice counts once
    assert ndcg_at_k((), [("x",)], 10) == 1.0
    assert ndcg_at_k(("a",), [("x",)] * 10 + [("a",)], 10) == 0.0


def test_token_f1_and_bleu1() -> None:
    assert token_f1("The cat sat", "a cat sat down") == pytest.approx(0.8)  # P 2/2, R 2/3
    assert token_f1("7 May, 2023", "7 may 2023") == 1.0
    assert token_f1("nothing", "Rex") == 0.0
    assert bleu1("cat sat", "the cat sat down") == pytest.approx(math.exp(1 - 3 / 2))  # precision 1, brevity penalty
    assert bleu1("cat cat cat", "cat sat") == pytest.approx(1 / 3)  # clipped counts, no penalty when longer
    assert bleu1("", "cat") == 0.0


def test_percentile() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 95) == 0.0


# -- the harness on a tiny LoCoMo-format file ----------------------------------------------------------------------

def tiny_locomo(path: Path) -> Path:
    turn = lambda i, who, text: {"speaker": who, "dia_id": i, "text": text}  # noqa: E731
    conversation = {
        "speaker_a": "Ann", "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            turn("D1:1", "Ann", "I adopted a puppy called Rex last week."),
            turn("D1:2", "Ben", "That's wonderful! What breed is he?"),
            turn("D1:3", "Ann", "He is a golden retriever, very fluffy."),
            turn("D1:4", "Ben", "I started learning the violin this spring."),
        ],
        "session_2_date_time": "10:00 am on 1 June, 2023",
        "session_2": [
            turn("D2:1", "Ann", "Rex learned to sit today."),
            turn("D2:2", "Ben", "My violin teacher says I'm improving quickly."),
            turn("D2:3", "Ann", "I'm planning a trip to Lisbon in July."),
            turn("D2:4", "Ben", "Lisbon is lovely in summer."),
        ],
        "session_3_date_time": "9:00 am on 2 July, 2023",  # a date without a session, as in conv-26
    }
    qa = [
        {"question": "What is the name of Ann's puppy?", "answer": "Rex", "evidence": ["D1:1"], "category": 4},
        {"question": "What instrument is Ben learning?", "answer": "violin", "evidence": ["D1:4; D2:2"], "category": 1},
        {"question": "Where is Ann travelling in July?", "answer": "Lisbon", "evidence": ["D2:3"], "category": 2},
        {"question": "Would Ann enjoy a dog park?", "answer": 2023, "evidence": [], "category": 3},
        {"question": "What did Ben say about his cello?", "adversarial_answer": "improving", "evidence": ["D2:2"],
         "category": 5},
    ]
    path.write_text(json.dumps([{"sample_id": "conv-t", "conversation": conversation, "qa": qa}]), encoding="utf-8")
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings.load(env={}, home=home)


def test_locomo_file_is_read_with_questions_and_turns(tmp_path: Path) -> None:
    [conv] = load_locomo(tiny_locomo(tmp_path / "tiny.json"))
    assert conv.sample_id == "conv-t" and len(conv.turns) == 8
    assert [t.source for t in conv.turns][:2] == ["D1:1", "D1:2"]
    assert conv.questions[1].evidence == ("D1:4", "D2:2")
    assert conv.questions[3].answer == "2023" and conv.questions[4].answer is None


def test_retrieval_mode_end_to_end(tmp_path: Path, settings: Settings, embedder) -> None:
    report = evaluate_locomo(tiny_locomo(tmp_path / "tiny.json"), settings, embedder=embedder)
    assert report["mode"] == "retrieval" and report["memories"] == 8 and report["sources_per_memory"] == 1
    groups = report["groups"]
    assert groups["all"]["questions"] == 5 and groups["all without 5"]["questions"] == 4
    assert groups["all"]["recall"]["50"] == 1.0  # eight turns: everything is retrieved at k=50
    by_question = {q["question"]: q for q in report["questions"]}
    assert by_question["What is the name of Ann's puppy?"]["recall"]["5"] == 1.0
    assert by_question["Would Ann enjoy a dog park?"]["recall"]["5"] == 1.0  # no evidence counts 1
    assert by_question["What instrument is Ben learning?"]["retrieved"][0] in (["D1:4"], ["D2:2"])
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]
    assert usage_table(report) is None  # no LLM: no usage table
    paths = write_report(report, tmp_path / "out", home=settings.home)
    assert json.loads(paths["json"].read_text())["groups"]["all"]["questions"] == 5
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_prints_the_table_and_writes_the_report(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["--home", str(home), "eval", "locomo", str(tiny_locomo(tmp_path / "t.json")),
                                      "--out", str(out), "--fusion", "rrf", "--context", "0", "--time-weight", "0"])
    assert result.exit_code == 0, result.output
    assert "R@50" in result.output and "all without 5" in result.output and "p95" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["search"] | {"source": "given"} == report["search"]
    assert (report["search"]["fusion"], report["search"]["context"]) == ("rrf", [])
    assert (out / "recall.png").exists()


def test_cli_searches_with_the_graph_when_asked(tmp_path: Path, home: Path) -> None:
    path, out = tiny_locomo(tmp_path / "t.json"), tmp_path / "out"
    result = CliRunner().invoke(app, ["--home", str(home), "eval", "locomo", str(path), "--out", str(out),
                                      "--graph", "--graph-weight", "0.5", "--context", "0"])
    assert result.exit_code == 0, result.output
    search = json.loads((out / "report.json").read_text())["search"]
    assert (search["graph"], search["graph_weight"], search["source"]) == (True, 0.5, "given")
    result = CliRunner().invoke(app, ["--home", str(home), "eval", "locomo", str(path), "--graph-weight", "-1"])
    assert result.exit_code == 2


def test_cli_rejects_an_unknown_conversation(tmp_path: Path, home: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(home), "eval", "locomo", str(tiny_locomo(tmp_path / "t.json")),
                                      "--conversation", "conv-nope"])
    assert result.exit_code == 2 and "conv-nope" in result.output


# -- memory mode: extraction, answers and judge through DSPy over HTTP -----------------------------------------

def _field(prompt: str, name: str) -> str:
    """The value DSPy's chat adapter sent for input field `name` in the last user message."""
    match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\n|\Z)", prompt, re.S)
    assert match, f"no field {name} in prompt"
    return match[1]


def scripted_llm(body: dict) -> str:
    """A fake LLM that extracts each message as a fact, adds every fact, answers from memories and judges."""
    prompt = body["messages"][-1]["content"]
    if "[[ ## conversation_date ## ]]" in prompt:
        messages = json.loads(_field(prompt, "conversation"))
        return dspy_reply(facts=[{"text": m["content"], "category": "personal", "about": "user", "happened_at": None}
                                 for m in messages])
    if "[[ ## existing_memories ## ]]" in prompt:
        count = len(json.loads(_field(prompt, "new_facts")))
        return dspy_reply(operations=[{"fact": i, "op": "ADD", "memory_id": None, "text": None, "reason": "new"}
                                      for i in range(count)])
    if "[[ ## gold_answer ## ]]" in prompt:
        same = _field(prompt, "gold_answer").strip().lower() == _field(prompt, "generated_answer").strip().lower()
        return dspy_reply(label="CORRECT" if same else "WRONG")
    memories, question = _field(prompt, "memories"), _field(prompt, "question")
    if "puppy" in question:
        return dspy_reply(answer="Rex" if "Rex" in memories else "not mentioned")
    return dspy_reply(answer="Lisbon" if "July" in question else "the violin")


def test_memory_mode_answers_and_judges_with_the_llm(tmp_path: Path, home: Path, embedder,
                                                     fake_openai: FakeOpenAI) -> None:
    fake_openai.default_chat = scripted_llm
    llm = Settings.load(env={}, home=home, llm_model="openai/fake-model", llm_api_base=fake_openai.base_url,
                        llm_api_key="sk-test", llm_retries=1, llm_timeout=10)
    report = evaluate_locomo(tiny_locomo(tmp_path / "tiny.json"), llm, infer=True, embedder=embedder)
    assert fake_openai.errors == []
    assert report["mode"] == "memory" and report["memories"] == 8
    assert report["sources_per_memory"] == 4  # a memory is credited with every turn of its add() call (a session)
    by_question = {q["question"]: q for q in report["questions"]}
    puppy = by_question["What is the name of Ann's puppy?"]
    assert (puppy["prediction"], puppy["correct"], puppy["f1"], puppy["bleu1"]) == ("Rex", True, 1.0, 1.0)
    violin = by_question["What instrument is Ben learning?"]
    assert violin["prediction"] == "the violin" and violin["correct"] is False and violin["f1"] == 1.0
    assert "prediction" not in by_question["What did Ben say about his cello?"]  # adversarial: not answered
    answered = report["groups"]["all without 5"]
    assert answered["answered"] == 4 and answered["judge"] == pytest.approx(2 / 4)  # Rex, Lisbon
    usage = report["usage"]
    assert usage["answer"]["calls"] == usage["judge"]["calls"] == 4
    total = sum(usage[stage]["calls"] for stage in ("ingest", "answer", "judge"))
    assert total == fake_openai.count("/chat/completions") and usage["answer"]["prompt_tokens"] > 0
    assert "LLM calls" in _render(table(report))
    assert "conv-t" in _render(usage_table(report))


def test_answering_without_an_llm_is_a_config_error(tmp_path: Path, settings: Settings, embedder) -> None:
    from engram.errors import ConfigError

    with pytest.raises(ConfigError, match="llm_model"):
        evaluate_locomo(tiny_locomo(tmp_path / "tiny.json"), settings, answer=True, embedder=embedder)


def _render(renderable) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


# -- the real dev split --------------------------------------------------------------------------------------------

# bench/README.md, "engram default" rows: recall@5/10/25/50 (%) on all questions of each conversation.
DEV_RECALL = {"all": (69.4, 79.7, 87.5, 92.1)}


@pytest.mark.skipif(not DEV.exists(), reason="the LoCoMo dev split (CC BY-NC) is not in ../shared/data")
def test_dev_split_matches_the_published_numbers(settings: Settings, embedder) -> None:
    report = evaluate_locomo(DEV, settings, embedder=embedder)
    recall = report["groups"]["all"]["recall"]
    got = tuple(round(100 * recall[k], 1) for k in ("5", "10", "25", "50"))
    assert got == pytest.approx(DEV_RECALL["all"], abs=0.15)
    assert report["groups"]["all"]["questions"] == 999


def test_the_report_records_the_search_settings_actually_used(tmp_path: Path, home: Path, embedder) -> None:
    from dataclasses import asdict

    from engram.retrieval import search_config

    settings = Settings.load(env={}, home=home, search_fusion="keyword", search_keyword_weight=0.7,
                             search_context="0.3")
    report = evaluate_locomo(tiny_locomo(tmp_path / "tiny.json"), settings, embedder=embedder)
    used = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(search_config(settings)).items()}
    recorded = {k: list(v) if isinstance(v, tuple) else v for k, v in report["search"].items()
                if k not in ("source", "graph")}
    assert recorded == used and report["search"]["graph"] is False
    assert (report["search"]["fusion"], report["search"]["keyword_weight"], report["search"]["source"]) == (
        "keyword", 0.7, "settings")
