"""A BM25-style sparse encoder computed locally: words -> Porter stems -> hashed indices, saturated tf weights.

The Qdrant store keeps these as a sparse vector whose config applies IDF (`Modifier.IDF`) at query time, so a
document's vector depends on its own text only and never has to be rewritten when the corpus grows. Tokens
follow SQLite FTS5's `porter unicode61 remove_diacritics 2` tokenizer (runs of letters and digits, case- and
accent-folded, ASCII words Porter-stemmed), so both stores treat the same words as matching. The SQLite store
keeps each version's term counts (term_counts) and scores them with BM25 inside the query's scope.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from functools import lru_cache

__all__ = ["STOPWORDS", "SparseVector", "encode_document", "encode_query", "query_terms", "stem", "term_counts",
           "term_index", "tokens"]

SparseVector = tuple[list[int], list[float]]

# Words that carry no topic: dropping them keeps keyword search about what the query is about. Both stores use
# this one list (the SQLite store for its query words: engram.stores.keywords).
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "did", "do", "does", "for", "from", "had",
    "has", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we", "were", "what", "when",
    "where", "which", "who", "whom", "why", "will", "with", "you", "your", "yours", "he", "she", "his", "her",
    "him", "hers", "us",
})

K1 = 1.2
B = 0.75
# Memories are short facts; a fixed average length (in tokens) keeps each vector independent of the corpus.
AVERAGE_LENGTH = 12.0
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """Lower-cased, accent-free runs of letters and digits, in order."""
    folded = text.casefold()
    if folded.isascii():  # nothing to decompose: most text, and the per-character pass below is slow
        return _TOKEN.findall(folded)
    folded = unicodedata.normalize("NFKD", folded)
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _TOKEN.findall(plain)


def _index(term: str) -> int:
    # A stable hash (Python's hash() changes per process): the same stem gets the same index everywhere.
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little")


@lru_cache(maxsize=1 << 16)
def term_index(word: str) -> int:
    """The index of a token's stem (cached: stemming is most of an encoding's cost, and words repeat)."""
    return _index(stem(word))


def _topical(words: list[str]) -> list[int]:
    return [term_index(w) for w in words if w not in STOPWORDS]


def encode_document(text: str) -> SparseVector:
    """The stored vector: each topical stem's tf, saturated and normalised by the text's length (BM25)."""
    words = tokens(text)
    counts = Counter(_topical(words))
    norm = K1 * (1.0 - B + B * len(words) / AVERAGE_LENGTH)
    # two stems sharing a hash (1 in 4 billion) simply share a weight
    indices = sorted(counts)
    return indices, [counts[i] * (K1 + 1.0) / (counts[i] + norm) for i in indices]


def term_counts(text: str) -> tuple[list[int], list[int], int]:
    """What BM25 needs of a document, as SQLite FTS5 indexes it: every stem's index (sorted; stopwords too, for
    a query word may stem like one: "used" and "us"), their counts, and the length in tokens."""
    words = tokens(text)
    counts = Counter(map(term_index, words))
    indices = sorted(counts)
    return indices, [counts[i] for i in indices], len(words)


def query_terms(text: str) -> list[int]:
    """One stem index per distinct topical word of a query, in order: two words with one stem ("used", "uses")
    count twice, as FTS5 scored an OR of the words."""
    return _topical(list(dict.fromkeys(tokens(text))))


def encode_query(text: str) -> SparseVector | None:
    """One unit weight per distinct topical stem of the query (IDF is applied by Qdrant); None if none."""
    terms = set(_topical(tokens(text)))
    if not terms:
        return None
    indices = sorted(terms)
    return indices, [1.0] * len(indices)


# -- the Porter stemmer (M.F. Porter, 1980, as in his reference C version, which SQLite follows) -----------------

_VOWELS = frozenset("aeiou")


def _consonant(word: str, i: int) -> bool:
    if word[i] in _VOWELS:
        return False
    if word[i] == "y":
        return i == 0 or not _consonant(word, i - 1)
    return True


def _measure(stem_: str) -> int:
    """m in [C](VC){m}[V]: the number of vowel-consonant sequences."""
    m, previous_vowel = 0, False
    for i in range(len(stem_)):
        consonant = _consonant(stem_, i)
        if consonant and previous_vowel:
            m += 1
        previous_vowel = not consonant
    return m


def _has_vowel(stem_: str) -> bool:
    return any(not _consonant(stem_, i) for i in range(len(stem_)))


def _double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonant(word, len(word) - 1)


def _cvc(word: str) -> bool:
    """Ends consonant-vowel-consonant, the last not w, x or y (e.g. -hop, not -how)."""
    n = len(word)
    return (n >= 3 and _consonant(word, n - 1) and not _consonant(word, n - 2) and _consonant(word, n - 3)
            and word[-1] not in "wxy")


_STEP2 = [("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
          ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
          ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"),
          ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("logi", "log")]
_STEP3 = [("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
          ("ness", "")]
_STEP4 = ["al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism",
          "ate", "iti", "ous", "ive", "ize"]
# The longest matching suffix decides; if its condition fails, no shorter one is tried.
_STEP2.sort(key=lambda rule: -len(rule[0]))
_STEP3.sort(key=lambda rule: -len(rule[0]))
_STEP4.sort(key=len, reverse=True)


def _replace(word: str, rules: list[tuple[str, str]], min_measure: int) -> str:
    for suffix, replacement in rules:
        if word.endswith(suffix):
            base = word[: -len(suffix)]
            return base + replacement if _measure(base) > min_measure else word
    return word


def _step1(word: str) -> str:
    if word.endswith(("sses", "ies")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if word.endswith("eed"):
        return word[:-1] if _measure(word[:-3]) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            word = word[: -len(suffix)]
            if word.endswith(("at", "bl", "iz")):
                return word + "e"
            if _double_consonant(word) and word[-1] not in "lsz":
                return word[:-1]
            if _measure(word) == 1 and _cvc(word):
                return word + "e"
            return word
    return word


def _step1c(word: str) -> str:
    return word[:-1] + "i" if word.endswith("y") and _has_vowel(word[:-1]) else word


def _step4(word: str) -> str:
    for suffix in _STEP4:
        if word.endswith(suffix):
            base = word[: -len(suffix)]
            if suffix == "ion" and not base.endswith(("s", "t")):
                return word
            return base if _measure(base) > 1 else word
    return word


def _step5(word: str) -> str:
    if word.endswith("e"):
        base = word[:-1]
        m = _measure(base)
        if m > 1 or (m == 1 and not _cvc(base)):
            word = base
    if word.endswith("ll") and _measure(word) > 1:
        word = word[:-1]
    return word


def stem(word: str) -> str:
    """The Porter stem of a lower-case ASCII word of 3..64 letters; any other token is kept as it is."""
    if not (2 < len(word) <= 64 and word.isascii() and word.isalpha()):
        return word
    word = _step1c(_step1(word))
    word = _replace(word, _STEP2, 0)
    word = _replace(word, _STEP3, 0)
    return _step5(_step4(word))
