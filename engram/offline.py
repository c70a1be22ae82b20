"""The no-LLM pipeline: small rules that turn first-person statements into facts and reconcile them.

A useful fallback, not a replacement for an LLM: "I like tea" becomes "User likes tea"; questions and
small talk are dropped; near-duplicates are NOOP; explicit corrections and negations ("actually, no ...",
"not anymore", "I don't like X") supersede the most similar memory they contradict, never one they restate
("actually, I like tea more" supersedes "User likes coffee", not "User likes tea").
"""

from __future__ import annotations

import re

from engram.extract import Fact
from engram.inputs import Message
from engram.llm import Usage
from engram.reconcile import Candidate, Proposal
from engram.types import Op

__all__ = ["OfflineExtractor", "OfflineReconciler"]

DUPLICATE = 0.90  # cosine above which a new fact says what a memory already says
SUPERSEDE = 0.45  # cosine above which a correction is taken to be about that memory
# A correction that restates one memory contradicts another only when that one is this close: it names an
# alternative to what it restates ("tea more" against "coffee", 0.68), not any other liking ("football", 0.48).
ALTERNATIVE = 0.6

# Sentence ends, and "..., and I ..." / "... but my ...": one fact per clause with its own first-person subject.
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+|,?\s+(?:and|but)\s+(?=(?:I|I'm|I've|my|My)\b)")
_QUESTION = re.compile(r"^(who|what|when|where|why|how|which|do|does|did|is|are|can|could|would|should|will|shall)\b",
                       re.I)
_SMALL_TALK = re.compile(r"^(hi|hello|hey|thanks|thank you|ok|okay|cool|great|nice|sure|yes|no|bye|"
                         r"good (morning|night))\b[\s!.,]*$", re.I)
_LEAD = re.compile(r"^(actually|no|nope|well|oh|so|and|but|also|hmm|wait|correction|sorry)\b[\s,:-]*", re.I)
_CORRECTION = re.compile(r"\b(actually|not anymore|no longer|any ?more|don't|do not|didn't|never|stopped|quit|"
                         r"instead|changed my mind|i was wrong)\b|^no\b", re.I)
_ADVERBS = "also|really|still|usually|often|always|never|now|no longer|even|just|mostly|sometimes|absolutely|actually"
_FIXED = [  # (first-person pattern, third-person replacement), tried in order
    (r"\bI'm\b|\bI am\b", "User is"), (r"\bI was\b", "User was"), (r"\bI've\b|\bI have\b", "User has"),
    (r"\bI had\b", "User had"), (r"\bI'll\b|\bI will\b", "User will"), (r"\bI'd\b|\bI would\b", "User would"),
    (r"\bI can't\b|\bI cannot\b", "User cannot"), (r"\bI can\b", "User can"),
    (r"\bI don't\b|\bI do not\b", "User does not"),
    (r"\bI didn't\b|\bI did not\b", "User did not"), (r"\bI won't\b", "User will not"),
]
_NEGATION = re.compile(r"\b(not|never|no longer|any ?more|stopped|quit)\b|n't\b", re.IGNORECASE)
_FILLER = frozenset({"user", "user's", "a", "an", "the", "more", "most", "now", "really", "also", "still", "very",
                     "much", "than", "just", "actually", "so", "too", "does", "do", "did", "not", "no", "longer",
                     "never", "anymore"})
_SAME_VERB = {"love": "like", "prefer": "like", "enjoy": "like", "adore": "like", "fan": "like"}
_CATEGORIES = [
    ("health", r"allerg|sick|doctor|diet|vegan|vegetarian|medic|hospital|pain|gluten"),
    ("preferences", r"\b(like|likes|love|loves|prefer|prefers|enjoy|enjoys|hate|hates|favou?rite|fan of)\b"),
    ("work", r"\b(work|works|job|office|boss|colleague|career|company|engineer|nurse|teacher)\b"),
    ("relationships", (r"\b(sister|brother|mother|father|mom|dad|wife|husband|partner|friend|son|daughter|"
                       r"girlfriend|boyfriend)\b")),
    ("plans", r"\b(will|going to|plan|plans|planning|next (week|month|year))\b"),
    ("personal", r"\b(live|lives|born|name|age|years old|from)\b"),
]


def third_person(sentence: str) -> str | None:
    """'I like tea' -> 'User likes tea'; None when the sentence is not about the speaker."""
    text = sentence
    for pattern, replacement in _FIXED:
        text = re.sub(pattern, replacement, text, flags=re.I)
    text = re.sub(rf"\bI ((?:(?:{_ADVERBS}) )*)([a-z]+)\b", lambda m: f"User {m.group(1)}{_conjugate(m.group(2))}",
                  text)
    text = re.sub(r"\bmy\b", "User's", text, flags=re.I)
    text = re.sub(r"\bmine\b", "User's", text, flags=re.I)
    text = re.sub(r"\b(me|myself)\b", "User", text, flags=re.I)
    if "User" not in text:
        return None
    return text[0].upper() + text[1:]


_PAST = frozenset("went got made saw bought took came met ran ate wrote read lost found left gave told began felt knew "
                  "thought brought taught sold sent spent built won heard kept paid said swam sang drove flew".split())


def _conjugate(verb: str) -> str:
    irregular = {"have": "has", "do": "does", "go": "goes", "be": "is"}
    if verb in irregular:
        return irregular[verb]
    if verb.endswith("ed") or verb in _PAST:  # past tense reads the same in the third person
        return verb
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _category(text: str, categories: tuple[str, ...]) -> str:
    for name, pattern in _CATEGORIES:
        if name in categories and re.search(pattern, text, re.I):
            return name
    return "other" if "other" in categories else categories[0]


def _content(text: str) -> list[str]:
    """The words that carry a statement's meaning, in order, crudely stemmed; liking verbs are one word."""
    words = []
    for found in re.findall(r"[a-z']+", text.casefold()):
        if found in _FILLER:
            continue
        word = found[:-1] if len(found) > 3 and found.endswith("s") and not found.endswith("ss") else found
        words.append(_SAME_VERB.get(word, word))
    return words


def restates(fact: str, memory: str) -> bool:
    """The fact says what the memory says, perhaps with more ("User likes tea more" restates "User likes tea");
    a negation never restates an affirmation."""
    if bool(_NEGATION.search(fact)) != bool(_NEGATION.search(memory)):
        return False
    said = set(_content(memory))
    return bool(said) and said <= set(_content(fact))


def _same_verb(fact: str, memory: str) -> bool:
    first = _content(fact)[:1], _content(memory)[:1]
    return bool(first[0]) and first[0] == first[1]


class OfflineExtractor:
    def extract(self, messages: list[Message], when: float, categories: tuple[str, ...], usage: Usage) -> list[Fact]:
        usage.pipeline = "offline"
        facts: list[Fact] = []
        for message in messages:
            if message.role != "user":
                continue  # facts come from what the user says, never from the assistant
            for sentence in _SENTENCES.split(message.content):
                fact = self._fact(sentence.strip(), categories, (message.id,) if message.id else ())
                if fact and all(f.text.casefold() != fact.text.casefold() for f in facts):
                    facts.append(fact)
        return facts

    @staticmethod
    def _fact(sentence: str, categories: tuple[str, ...], source: tuple[str, ...]) -> Fact | None:
        if not sentence or sentence.endswith("?") or _SMALL_TALK.match(sentence):
            return None
        correction = bool(_CORRECTION.search(sentence))
        core = sentence
        while _LEAD.match(core):
            core = _LEAD.sub("", core, count=1)
        if not core or _QUESTION.match(core):
            return None
        text = third_person(core.rstrip(" .!;"))
        if text is None or len(text.split()) < 3:
            return None
        return Fact(text=text, category=_category(text, categories), correction=correction, source=source)


class OfflineReconciler:
    """Per fact: supersede the memory a correction contradicts (see `contradicted`), else NOOP if a memory is
    a near-duplicate, otherwise ADD. Needs the cosine of each fact to each candidate."""

    def reconcile(self, facts: list[Fact], candidates: list[Candidate], similarity: list[list[float]],
                  usage: Usage) -> list[Proposal]:
        proposals = []
        taken: set[int] = set()
        for i, fact in enumerate(facts):
            target = contradicted(fact, candidates, similarity[i], taken) if fact.correction else None
            best = max(range(len(candidates)), key=lambda j: similarity[i][j], default=None)
            if target is not None:
                taken.add(target)
                reason = f"correction of a similar memory (cosine {similarity[i][target]:.2f})"
                proposals.append(Proposal(Op.DELETE, i, target, reason=reason))
            elif best is not None and similarity[i][best] >= DUPLICATE:
                reason = f"near-duplicate (cosine {similarity[i][best]:.2f})"
                proposals.append(Proposal(Op.NOOP, i, best, reason=reason))
            else:
                proposals.append(Proposal(Op.ADD, i, reason="new statement"))
        return proposals


def contradicted(fact: Fact, candidates: list[Candidate], cosines: list[float], taken: set[int]) -> int | None:
    """The candidate a correction supersedes: the closest one (cosine >= SUPERSEDE) it does not restate,
    those with the same verb first. When it restates one, the other must be an alternative (>= ALTERNATIVE)."""
    agrees = {j for j, c in enumerate(candidates) if restates(fact.text, c.record.text)}
    floor = ALTERNATIVE if agrees else SUPERSEDE
    eligible = [j for j in range(len(candidates)) if j not in agrees and j not in taken and cosines[j] >= floor]
    return max(eligible, key=lambda j: (_same_verb(fact.text, candidates[j].record.text), cosines[j]), default=None)
