"""What graph memory's triplets cost in LLM tokens, per LoCoMo conversation: no LLM call, no download.

    python bench/graph_tokens.py [../shared/data/locomo_dev.json]

Graph memory asks for the triplets in the extraction call that already runs (no extra call); they cost
  - prompt tokens: the instructions and the answer's schema grow by the triplets' part, in every extraction call
    (one per session of at most 8,000 characters, engram.extract.pieces, as `engram eval locomo --infer` adds
    them), counted as the difference between the prompt DSPy's ChatAdapter writes for engram's ExtractFacts
    signature and for the same signature without `triplets` (the field and its instruction);
  - answer tokens: the triplets a model writes beside each fact. No LLM runs here, so the facts stand in for a
    model's: LoCoMo's own per-session observations (third-person facts about the speakers, each citing its
    turns), and their triplets are what engram's rules find in them (engram.graph_rules.rules_graph), an
    estimate of what a model would give. Both answers are serialised as ChatAdapter writes an answer to the
    signature, and the difference counted.
Tokens are cl100k_base's, read from the copy LiteLLM ships (TIKTOKEN_CACHE_DIR); without it the script stops.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engram.extract import DEFAULT_CATEGORIES, pieces, render_messages
from engram.graph_rules import rules_graph
from engram.inputs import parse_messages
from engram.transfer import read_locomo

CL100K = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def encoding() -> Any:
    """cl100k_base from LiteLLM's bundled copy, never from the network."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("error: litellm is not installed; its copy of cl100k_base is what this script counts with")
    cache = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    if not (cache / hashlib.sha1(CL100K.encode()).hexdigest()).exists():
        sys.exit(f"error: no offline copy of cl100k_base in {cache}")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def signatures(dspy: Any) -> tuple[Any, Any, Any, Any]:
    """engram's ExtractFacts and ExtractedFact, and the same without triplets (field and instruction)."""
    from pydantic import create_model

    from engram.signatures import EXTRACT_INSTRUCTIONS, ExtractedFact, ExtractFacts

    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in ExtractedFact.model_fields.items() if n != "triplets"}
    plain_fact = create_model("ExtractedFact", **fields)
    start = EXTRACT_INSTRUCTIONS.index("- In `triplets`")
    end = EXTRACT_INSTRUCTIONS.index("\n- ", start) + 1
    facts_type: Any = list[plain_fact]  # type: ignore[valid-type]
    plain = ExtractFacts.with_updated_fields("facts", type_=facts_type).with_instructions(
        EXTRACT_INSTRUCTIONS[:start] + EXTRACT_INSTRUCTIONS[end:])
    assert "triplets" not in plain.instructions and "triplets" in ExtractFacts.instructions
    return ExtractFacts, ExtractedFact, plain, plain_fact


def sessions(path: Path) -> dict[str, list[list[Any]]]:
    """Each conversation's sessions, as the messages one add(infer=True) gets (engram eval locomo --infer)."""
    out: dict[str, list[list[Any]]] = {}
    for item in read_locomo(path):
        groups = out.setdefault(str(item.scope.user_id), [])
        if groups and groups[-1][0].timestamp == item.timestamp:
            groups[-1].append(item)
        else:
            groups.append([item])
    return out


def observations(conversation: dict[str, Any], session: int) -> list[tuple[str, str, list[str]]]:
    """(speaker, fact, cited dia_ids) LoCoMo observed in a session."""
    found = conversation.get("observation", {}).get(f"session_{session}_observation", {})
    return [(speaker, text, [str(e) for e in (cited if isinstance(cited, list) else [cited])])
            for speaker, facts in found.items() for text, cited in facts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=Path("../shared/data/locomo_dev.json"))
    args = parser.parse_args()
    if not args.path.exists():
        print(f"skipped: {args.path} is not here (LoCoMo is not part of this repository)")
        return
    tokens = encoding()
    from engram.llm import import_dspy

    with tempfile.TemporaryDirectory() as home:
        dspy = import_dspy(Path(home))
        full, fact, plain, plain_fact = signatures(dspy)
        adapter = dspy.ChatAdapter()
        data = {c["sample_id"]: c for c in json.loads(args.path.read_text())}
        print("| conversation | sessions | extraction calls | facts | triplets | prompt +tokens per call | "
              "prompt +tokens | answer +tokens | answer tokens without / with | total +tokens | + % of all tokens |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        total = [0] * 10
        for name, groups in sessions(args.path).items():
            row = conversation_cost(data[name], groups, adapter, tokens, (full, fact, plain, plain_fact))
            total = [a + b for a, b in zip(total, row, strict=True)]
            print(_row(name, row))
        print(_row("all", total))
        facts, triplets, answer0, answer1, empty = total[2], total[3], total[6], total[7], total[9]
        field, each = (empty - answer0) / facts, (answer1 - empty) / max(triplets, 1)
        print(f"\nIn the answers, an empty `triplets` list costs {field:.1f} tokens per fact and each triplet "
              f"{each:.1f} more (the rules found {triplets} triplets in {facts} facts; a model names more). At one "
              f"triplet per fact the answers would grow by {facts * (field + each):,.0f} tokens over the "
              f"{len(data)} conversations instead of {answer1 - answer0:,}.")


def conversation_cost(conversation: dict[str, Any], groups: list[list[Any]], adapter: Any, tokens: Any,
                      models: tuple[Any, Any, Any, Any]) -> list[int]:
    """[sessions, calls, facts, triplets, prompt tokens without, with, answer tokens without, with, prompt
    tokens per call added, answer tokens with empty triplets] of one conversation."""
    full, fact, plain, plain_fact = models
    out = [len(groups), 0, 0, 0, 0, 0, 0, 0, 0, 0]
    for number, group in enumerate(groups, start=1):
        messages = parse_messages([item.message() for item in group], 10**7, whole=True)
        date = datetime.fromtimestamp(group[0].timestamp, tz=UTC).strftime("%Y-%m-%d (%A) %H:%M UTC")
        for piece in pieces(messages):
            inputs = {"conversation": render_messages(piece), "conversation_date": date,
                      "categories": list(DEFAULT_CATEGORIES)}
            without, with_ = (_count(tokens, adapter.format(s, demos=[], inputs=inputs)) for s in (plain, full))
            out[1] += 1
            out[4] += without
            out[5] += with_
            out[8] = with_ - without
        position = {item.source: i for i, item in enumerate(group)}
        facts, plain_facts, empty_facts = [], [], []
        for speaker, text, cited in observations(conversation, number):
            base = {"text": text, "category": "other", "about": speaker, "happened_at": None,
                    "sources": [position[c] for c in cited if c in position]}
            triplets = [{"subject": r.subject, "relation": r.relation, "object": r.object}
                        for r in rules_graph(text).relations]
            facts.append(fact(**base, triplets=triplets))
            plain_facts.append(plain_fact(**base))
            empty_facts.append(fact(**base, triplets=[]))
            out[3] += len(triplets)
        out[2] += len(facts)
        out[6] += len(tokens.encode(adapter.format_assistant_message_content(plain, {"facts": plain_facts})))
        out[7] += len(tokens.encode(adapter.format_assistant_message_content(full, {"facts": facts})))
        out[9] += len(tokens.encode(adapter.format_assistant_message_content(full, {"facts": empty_facts})))
    return out


def _count(tokens: Any, messages: list[dict[str, Any]]) -> int:
    return sum(len(tokens.encode(m["content"])) for m in messages)


def _row(name: str, row: list[int]) -> str:
    sessions, calls, facts, triplets, prompt0, prompt1, answer0, answer1, per_call, _ = row
    extra = (prompt1 - prompt0) + (answer1 - answer0)
    share = 100.0 * extra / max(prompt0 + answer0, 1)
    return (f"| {name} | {sessions} | {calls} | {facts} | {triplets} | {per_call if name != 'all' else '—'} | "
            f"{prompt1 - prompt0:,} | {answer1 - answer0:,} | {answer0:,} / {answer1:,} | {extra:,} | {share:.1f} |")


if __name__ == "__main__":
    main()
