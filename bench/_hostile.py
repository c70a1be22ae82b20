"""Hostile identifiers, queries and filters for the cross-scope trials: ids that differ from each other only by
case, Unicode form, trailing space, SQL wildcards, quotes or FTS5 syntax, and filters that try to widen a scope."""

from __future__ import annotations

import random
import unicodedata
from typing import Any

__all__ = ["AGENTS", "RUNS", "WORDS", "escape", "id_variants", "query", "user_ids"]

_USERS = [
    "ann", "Ann", "ANN", "ann ", " ann", "ann  ", "ann\t", "ann\n", "ann\u00a0", "ann\u200b", "\u0430nn",  # Cyrillic a
    unicodedata.normalize("NFC", "jos\u00e9"), unicodedata.normalize("NFD", "jos\u00e9"), "jose", "JOSÉ",
    "\u00c5sa", "\u212bsa", "A\u030asa",  # Å precomposed, the Angstrom sign, A + combining ring
    "stra\u00dfe", "strasse", "STRASSE", "\ufb01sh", "fish",  # ß / ss, the fi ligature (NFKC)
    "%", "_", "%%", "a%", "a_", "an%", "a_n", "a%n", "*", "a*", "**", "?", "[a]", "a\\%", "a\\_",
    "'", '"', "''", "o'brien", "O'Brien", "o''brien", "o\u2019brien", 'say "hi"', "`ann`", "ann'--",
    "ann' OR '1'='1", "ann\" OR \"1\"=\"1",
    '"ann"', '"ann" OR "bob"', "ann OR bob", "ann AND bob", "NOT ann", "ann NOT bob", "NEAR(ann bob)", "NEAR(ann",
    "NEAR(ann bob, 2)", "ann*", "^ann", "ann:bob", "scope : ann", "text : ann", "{ann}", "(ann)", "-ann", "+ann",
    "bob", "Bob", "null", "None", "user_id", "[\"ann\", null, null]", "ann\\", "ann/..", "ann;DROP TABLE memories",
]
AGENTS = ["bot", "Bot", "bot ", "b%", "b_", "*", '"bot"', "NEAR(bot", "bot OR ann"]
RUNS = ["r1", "R1", "r1 ", "r%", "r_", "r*", "r1'"]
WORDS = ["tea", "coffee", "paris", "secret", "passport", "jazz", "chess", "allergic", "salary"]
_FTS = ['NEAR(tea coffee)', 'tea OR coffee', '"tea', 'tea*', '^tea', 'scope : u', 'text:tea', '*', '%', "' OR 1=1 --",
        'tea AND NOT coffee', '(tea', 'c', '"', "''", 'NEAR(', 'OR', '-tea', 'secret:*']


def _mutate(rng: random.Random, base: str) -> str:
    chars = list(base)
    i = rng.randrange(len(chars) + 1)
    kind = rng.randrange(5)
    if kind == 0:
        chars = [c.swapcase() if rng.random() < 0.5 else c for c in chars]
    elif kind == 1:
        chars.insert(i, rng.choice("%_*'\"^:()-+ \\"))
    elif kind == 2 and i < len(chars):
        chars[i] = rng.choice("%_*?")
    elif kind == 3:
        chars.append(rng.choice([" ", "\u0301", "\u200b", " OR x", '"', "*"]))
    else:
        return unicodedata.normalize(rng.choice(["NFC", "NFD", "NFKC", "NFKD"]), base + "\u00e9")
    return "".join(chars)


def user_ids(rng: random.Random, extra: int = 16) -> list[str]:
    """The fixed hostile family plus `extra` random mutations of a few bases, each once."""
    found = list(_USERS) + [_mutate(rng, rng.choice(["ann", "jos\u00e9", "o'brien", "bob"])) for _ in range(extra)]
    return list(dict.fromkeys(u for u in found if u.strip()))


def query(rng: random.Random, others: list[str]) -> str:
    """A search query: words, other users' ids, FTS5 / SQL syntax, in a random mix."""
    parts = [rng.choice(WORDS)]
    parts += [rng.choice([rng.choice(others), rng.choice(_FTS), rng.choice(WORDS)]) for _ in range(rng.randrange(3))]
    rng.shuffle(parts)
    return " ".join(parts)


def escape(rng: random.Random, me: str | None, other: str, foreign_ids: list[str], foreign_hash: str) -> dict[str, Any]:
    """One filter that tries to reach `other`'s memories from `me`'s scope."""
    choices: list[dict[str, Any]] = [
        {"OR": [{"user_id": other}]},
        {"OR": [{"user_id": other}, {"user_id": me or other}]},
        {"OR": [{"user_id": {"in": [other, me or other]}}, {"memory": {"contains": ""}}]},
        {"AND": [{"user_id": {"ne": me or other}}]},
        {"NOT": [{"user_id": me or other}]},
        {"$or": [{"agent_id": "*"}, {"run_id": {"nin": []}}]},
        {"user_id": {"in": [other, me or other]}},
        {"user_id": other},
        {"user_id": "*"},
        {"agent_id": {"in": AGENTS}},
        {"OR": [{"run_id": rng.choice(RUNS)}, {"agent_id": rng.choice(AGENTS)}]},
        {"memory": {"icontains": other}},
        {"id": {"in": foreign_ids}},
        {"OR": [{"id": foreign_ids[0]}, {"hash": foreign_hash}]},
        {"hash": foreign_hash},
        {"valid_to": {"gte": 0}},
        {"owner": other},
        {"OR": [{"owner": other}, {"owner": "*"}, {"categories": {"in": ["secret", "work"]}}]},
        {"NOT": {"owner": me or other}},
        {"user_id": "%"}, {"user_id": None}, {"user_id": ""}, {"user_id": [other]},
    ]
    return rng.choice(choices)


def id_variants(real: str) -> list[str]:
    """Strings that are not `real` but that a careless store might match to it."""
    return [real.upper(), real + " ", " " + real, real[:-1] + "%", real[:-1] + "_", real[:8] + "%", "%", "_", "*",
            real[:-1], real + "*", f'"{real}"', real + "' OR '1'='1", unicodedata.normalize("NFKD", real.upper())]
