"""How names resolve by similarity (engram.graph_alias), measured: which thresholds merge what.

    python bench/graph_alias.py [../shared/data/locomo_dev.json]

Embeds names with MiniLM (normal() forms, as engram does) and prints, for thresholds of the embedding's cosine
and of engram.graph.spelling, how many of
  - pairs that should merge (abbreviations, variants, misspellings of one name),
  - pairs that must not (different people, places, organisations with similar names),
  - pairs of different names LoCoMo's conversations hold (every two names the rules find in one conversation,
    dates and kin phrases left out; with the data file),
would merge. A pair counts as merged at a threshold when its cosine or (for a typed name: person, place,
organisation) its spelling reaches it; the lists are this script's own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from engram.embed.local import MiniLMEmbedder
from engram.graph import normal, spelling
from engram.graph_rules import rules_graph

SHOULD = [("New York City", "NYC"), ("New York City", "New York"), ("Los Angeles", "LA"), ("San Francisco", "SF"),
          ("United Kingdom", "UK"), ("Acme Corp", "Acme Corporation"), ("Acme Corp", "Acme"),
          ("Massachusetts Institute of Technology", "MIT"), ("Melanie", "Melany"), ("Jennifer", "Jenifer"),
          ("Michael", "Micheal"), ("San Francisco", "San Fransisco"), ("Katherine", "Kathrine"),
          ("Joanna", "Joana"), ("Boston", "Bostn"), ("Caroline", "Carolin"), ("Katherine", "Catherine"),
          ("Stephen", "Steven"), ("Mike", "Michael"), ("Sarah", "Sara"), ("Harry Potter", "Potter"),
          ("Minnesota Wolves", "Wolves")]
MUST_NOT = [("Anna", "Hanna"), ("Tom", "Tim"), ("Dan", "Don"), ("Justin", "Dustin"), ("Maria", "Mario"),
            ("Louis", "Louise"), ("Daniel", "Danielle"), ("Caroline", "Carolyn"), ("Melanie", "Melissa"),
            ("Marian", "Marlon"), ("North Carolina", "South Carolina"), ("New York", "New Jersey"),
            ("Austria", "Australia"), ("Sweden", "Switzerland"), ("Paris", "Lyon"), ("Boston", "Austin"),
            ("Oslo", "Osaka"), ("Acme Corp", "Acme Labs"), ("Globex Corp", "Acme Corp"), ("Basketball", "NBA"),
            ("Pets", "Animals"), ("Christmas", "Christmas Eve"), ("Google", "Alphabet")]
MEANING = (0.8, 0.825, 0.85, 0.875, 0.9, 0.95)
SPELLING = (0.6, 0.7, 0.8, 0.9)


def locomo_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """(name, name, typed) for every two different names one LoCoMo conversation's turns hold."""
    pairs = []
    for conversation in json.loads(path.read_text()):
        turns = [t for k, v in conversation["conversation"].items() if k.startswith("session_") and isinstance(v, list)
                 for t in v]
        kinds: dict[str, str] = {}
        for turn in turns:
            for entity in rules_graph(f"{turn['speaker']}: {turn['text']}").entities:
                if entity.kind != "date" and "'s " not in normal(entity.name) and entity.name != "User":
                    kinds.setdefault(normal(entity.name), entity.kind)
        names = sorted(kinds)
        pairs += [(a, b, kinds[a] != "thing" and kinds[a] == kinds[b]) for i, a in enumerate(names)
                  for b in names[i + 1:]]
    return pairs


def cosines(embedder: MiniLMEmbedder, pairs: list[tuple[str, str]]) -> np.ndarray:
    names = sorted({normal(n) for pair in pairs for n in pair})
    vectors = dict(zip(names, embedder.embed(names), strict=True))
    return np.array([float(vectors[normal(a)] @ vectors[normal(b)]) for a, b in pairs])


def table(title: str, pairs: list[tuple[str, str]], typed: list[bool], embedder: MiniLMEmbedder) -> None:
    meaning = cosines(embedder, pairs)
    spelled = np.array([spelling(a, b) if t else 0.0 for (a, b), t in zip(pairs, typed, strict=True)])
    print(f"\n{title} ({len(pairs):,} pairs): merged by cosine >= t | by spelling >= s")
    print("  " + "  ".join(f"t={t}: {int((meaning >= t).sum()):>5}" for t in MEANING))
    print("  " + "  ".join(f"s={s}: {int((spelled >= s).sum()):>5}" for s in SPELLING))
    if len(pairs) <= 50:
        for (a, b), cos, alike in zip(pairs, meaning, spelled, strict=True):
            print(f"    {cos:6.3f} {alike:6.3f}  {a} / {b}")
    else:
        top = np.argsort(-meaning)[:15]
        print("  closest by cosine: " + ", ".join(f"{pairs[i][0]}/{pairs[i][1]} {meaning[i]:.3f}" for i in top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("locomo", nargs="?", type=Path, default=Path("../shared/data/locomo_dev.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as models:
        embedder = MiniLMEmbedder(Path(models))
        table("should merge", SHOULD, [True] * len(SHOULD), embedder)
        table("must not merge", MUST_NOT, [True] * len(MUST_NOT), embedder)
        if args.locomo.exists():
            found = locomo_pairs(args.locomo)
            table("LoCoMo: different names of one conversation", [(a, b) for a, b, _ in found],
                  [t for _, _, t in found], embedder)
        else:
            print(f"\n(no {args.locomo}: LoCoMo's names left out)", file=sys.stderr)


if __name__ == "__main__":
    main()
