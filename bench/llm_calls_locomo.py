"""LLM calls and prompt tokens per LoCoMo conversation for add(infer=True), through a counting fake LLM.

    python bench/llm_calls_locomo.py ../shared/data/locomo_dev.json [--sessions N]

Each session is one add() of all its turns. The fake OpenAI-compatible server (engram.testing.FakeOpenAI, on
127.0.0.1) answers extraction with one fact per turn and reconciliation with ADD for every fact, so the
numbers show engram's own request pattern: calls per add and the size of the prompts it sends. Token counts
are the fake's (whitespace-separated words of the request messages), a lower bound of real BPE tokens
(typically ~1.3x for English).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from engram import Memory
from engram.testing import FakeOpenAI, dspy_reply
from engram.transfer import read_locomo


def section(prompt: str, pattern: str) -> Any:
    """The JSON of one field of a DSPy prompt."""
    found = re.search(pattern, prompt, re.S)
    if found is None:
        raise ValueError(f"the prompt has no field matching {pattern!r}")
    return json.loads(found.group(1))


def answer(body: dict) -> str:
    """Extraction: one fact per turn; reconciliation: ADD every fact."""
    prompt = body["messages"][-1]["content"]
    if "[[ ## new_facts ## ]]" in prompt:
        facts = section(prompt, r"\[\[ ## new_facts ## \]\]\n(.*?)\n\n")
        return dspy_reply(operations=[{"fact": i, "op": "ADD", "reason": "new"} for i in range(len(facts))])
    turns = section(prompt, r"\[\[ ## conversation ## \]\]\n(.*?)\n\n\[\[")
    return dspy_reply(facts=[{"text": f"{t.get('name', 'User')} said: {t['content'][:120]}", "category": "other"}
                             for t in turns])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--sessions", type=int, default=None, help="only the first N sessions of each conversation")
    args = parser.parse_args()
    if not args.path.exists():
        sys.exit(f"{args.path} not found (LoCoMo is not shipped with engram; see bench/README.md)")
    items = read_locomo(args.path)
    by_conversation: dict[str | None, list] = {}
    for item in items:
        by_conversation.setdefault(item.scope.user_id, []).append(item)
    print(f"{'conversation':<12} {'adds':>5} {'turns':>6} {'LLM calls':>10} {'calls/add':>10} {'prompt tok':>11} "
          f"{'prompt tok/add':>15} {'completion tok':>15}")
    with FakeOpenAI() as server, tempfile.TemporaryDirectory() as home:
        server.default_chat = answer
        with Memory(home=home, llm_model="openai/fake", llm_api_base=server.base_url, llm_api_key="x") as memory:
            for conversation, turns in by_conversation.items():
                sessions: dict[float, list] = {}
                for item in turns:
                    sessions.setdefault(item.timestamp, []).append(item)
                usage = []
                for when in sorted(sessions)[: args.sessions]:
                    out = memory.add([i.message() for i in sessions[when]], user_id=conversation, timestamp=when)
                    usage.append(out["usage"])
                calls = sum(u["llm_calls"] for u in usage)
                prompt = sum(u["prompt_tokens"] for u in usage)
                print(f"{conversation:<12} {len(usage):>5} {len(turns):>6} {calls:>10} {calls / len(usage):>10.2f} "
                      f"{prompt:>11,} {statistics.mean(u['prompt_tokens'] for u in usage):>15,.0f} "
                      f"{sum(u['completion_tokens'] for u in usage):>15,}")


if __name__ == "__main__":
    main()
