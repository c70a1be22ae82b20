"""The entities and relations a text states, found by rules (no LLM): what the offline pipeline and raw turns
(add(infer=False), imports) get, and what an LLM's triplets are completed with.

The shapes found: kin ("my sister Ana", "Ana is User's sister", "User's sister" alone until a name is known),
where someone lives or comes from ("lives in Lyon", "moved to Paris", "is from Spain"), works or studies ("works
at Acme"), marriage, plus every capitalised name, month and year the text names. First-person text ("I", "my")
is about the entity USER, unless the text opens with a speaker's label ("Ana: I moved to Lyon", a transcript's
turn): then it is about that speaker. A name the text addresses ("Thanks, Tom!", "Hey Mel") is who it is said
to, not what it is about, and is not one of its entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engram.graph import MAX_NAME, USER, Entity, Graph, Relation, build, relation_name

__all__ = ["graph_of", "rules_graph", "triplets_graph"]

KIN = ("sister|brother|mother|father|mom|mum|dad|wife|husband|partner|friend|son|daughter|girlfriend|boyfriend|"
       "boss|colleague|coworker|cousin|aunt|uncle|grandmother|grandfather|grandma|grandpa|niece|nephew|roommate|"
       "neighbou?r|fiancée?|mentor|manager|child|kid|dog|cat")
_KIN_WORD = rf"(?:(?:best|older|younger|little|big|baby|new|old|twin|step|ex)[ -])?(?:{KIN})"
_WORD = r"(?:[A-Z][\w'\u2019-]*[\w]|[A-Z])"
_NAME = rf"{_WORD}(?:[ ](?:(?:of|de|la|van|von|the)[ ])?{_WORD})*"
_REF = rf"(?:{_NAME}|\x00\d+\x00)"  # a name, or a kin phrase already taken out (see _take_kin)
_OWNED = re.compile(rf"\b({_NAME})['\u2019]s ({_KIN_WORD})(?:,? (?:named |called )?({_NAME})(?!['\u2019]s))?")
_IS_KIN = re.compile(rf"\b({_NAME}) is ({_NAME})['\u2019]s ({_KIN_WORD})\b")
_VERBS: list[tuple[str, str, str, str]] = [  # (relation, verb pattern, preposition pattern, object kind)
    ("lives_in", (r"(?:\w+ly )?(?:live|lives|lived|is living|was living|has lived|moved|has moved|relocated|"
                  r"grew up|is moving|will move)(?: back)?"), r"in|to", "place"),
    ("born_in", r"(?:was|is) born", r"in", "place"),
    ("from", r"(?:is|was|comes|came)", r"from", "place"),
    ("works_at", (r"(?:\w+ly )?(?:work|works|worked|is working|has worked|started working|got a job|is employed|"
                  r"will work|interns|volunteers)(?: as (?:an? )?[\w ]{1,30}?)?"), r"at|for", "organisation"),
    ("studies_at", r"(?:study|studies|studied|is studying|goes to school|went to school|teaches|taught)", r"at",
     "organisation"),
    ("married_to", r"(?:is married|got married|was married|married)", r"to|", "person"),
    ("dating", r"(?:is dating|dates|is in a relationship)", r"with|", "person"),
]
# (relation, the verb alone: a cheap test that the rule may match, the rule, object kind)
_RULES = [(relation, re.compile(rf" {verb} "), re.compile(rf"({_REF}) {verb} (?:(?:{prep}) )?(?:the )?({_REF})"),
           kind) for relation, verb, prep, kind in _VERBS]
_ANY_VERB = re.compile("|".join(f"(?: {verb} )" for _, verb, _, _ in _VERBS))
# "Ana lives in Lyon and works at Acme": the second verb's subject is the first one's.
_AND_VERB = re.compile(rf"^({_REF}) ([^.;!?]*?)\band (?=(?:also )?(?:lives?|lived|moved|works?|worked|"
                       r"stud(?:y|ies|ied)|is|was|comes|came|got|teaches|taught)\b)", re.M)
_ORGANISATION = re.compile(r"\b(Inc|Corp|Corporation|Ltd|LLC|GmbH|University|College|School|Bank|Company|Group|"
                           r"Hospital|Institute|Labs?|Studio|Foundation|Agency|Center|Centre)\b\.?$")
_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December")
_DATE = re.compile(rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)? (?:of )?)?(?:{_MONTHS})(?: \d{{1,2}}(?:st|nd|rd|th)?)?"
                   rf"(?:,? (?:19|20)\d\d)?\b|\b(?:19|20)\d\d\b")
_DATE_HINT = re.compile(rf"{_MONTHS}|(?:19|20)\d\d")  # every date names a month or a year
_NAMES = re.compile(_NAME)
_LABEL = re.compile(rf"^({_NAME}): (?=\S)")
_GREETING = (r"(?i:hey|hi|hello|dear|thanks|thank you|bye|goodbye|congrats|congratulations|welcome|sorry|cheers|"
             r"wow|whoa|woah|oh|ah|aw+|yay|yes|yeah|ok|okay|haha|lol|omg|morning|evening|night)")
# Who is spoken to: a name after a greeting ("Hey Mel!", "Thanks, Ana,"), opening a sentence before a comma
# ("Ana, look"), or after a comma closing one with ! or ? ("Well done, Ana!").
# (The lookahead for a letter only spares the engine trying the first branch where it cannot begin.)
_VOCATIVE = re.compile(rf"(?=[A-Za-z])(?:\b{_GREETING},? |(?:^|(?<=[.!?] )))({_NAME})(?=[,!?.]|$)"
                       rf"|(?<=, )({_NAME})(?=[!?])", re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
_CONTRACTION = re.compile(r"['\u2019](?:m|re|ve|ll|d)$")
# Capitalised words that are not names: sentence openers, pronouns, days and such.
_NOT_NAMES = frozenset("""
a an the i i'm i've i'd i'll im ive me my mine we us our you your he she it they them their his her its this that
these those there here what who whom whose when where why how which yes no not oh ok okay hey hi hello thanks thank
wow well so and but or if then also just really very actually maybe sure great good nice cool awesome yeah yep nope
sorry please let lets let's can could would should will shall may might must do does did is are was were be been
have has had just one two some any all every each both many much more most other another after before since until
while because though although as at in on of to for from with by about into over under again still even never
always sometimes today tomorrow yesterday tonight now soon later monday tuesday wednesday thursday friday saturday
sunday mr mrs ms dr congrats congratulations haha lol omg btw absolutely definitely totally exactly glad happy
love like hope wish think know see look go going got get make made take took want need feel felt keep tell told
say said come came give gave try tried am user anything everything everyone someone something nothing sounds plus
agreed bye ah gonna wanna note update reminder todo fyi ps edit summary question answer tip warning re fwd subject
""".split())


def rules_graph(text: str) -> Graph:
    """The entities and relations `text` states, by the rules above."""
    text = " ".join(text.split())
    speaker, text = _speaker(text)
    text = _VOCATIVE.sub(_unnamed, text)
    text = _third_person(text, speaker or USER)
    entities: list[Entity] = [Entity(speaker, "person")] if speaker else []
    relations: list[Relation] = []
    text, phrases = _take_kin(text, entities, relations)
    text = _SENTENCE_END.sub("\n", text)
    if "and " in text:
        text = _AND_VERB.sub(lambda m: f"{m[1]} {m[2]}. {m[1]} ", text)
    verbs = _ANY_VERB.search(text) is not None
    for relation, verb, pattern, kind in _RULES if verbs else ():
        if verb.search(text) is None:
            continue
        for match in pattern.finditer(text):
            subject, obj = _ref(match[1], phrases), _ref(match[2], phrases)
            if subject is None or obj is None:
                continue
            entities += [Entity(subject, "person"), Entity(obj, _kind_of(obj, kind))]
            relations.append(Relation(subject, relation, obj))
    for match in _DATE.finditer(text) if _DATE_HINT.search(text) else ():
        entities.append(Entity(match[0], "date"))
    dates = {e.name for e in entities if e.kind == "date"}
    for match in _NAMES.finditer(text):
        name = _trimmed(match[0])
        if name and name != USER and name not in dates and not any(name in d for d in dates):
            entities.append(Entity(name, _kind_of(name, "thing")))
    return build(entities, relations)


def triplets_graph(triplets: Iterable[tuple[str, str, str]]) -> Graph:
    """The graph of an LLM's (subject, relation, object) triplets; "user", "I" and "me" are USER."""
    entities: list[Entity] = []
    relations: list[Relation] = []
    for subject, relation, obj in triplets:
        ends = [_user(" ".join(str(end).split())) for end in (subject, obj)]
        name = relation_name(str(relation))
        if not all(0 < len(end) <= MAX_NAME for end in ends) or not name:
            continue
        entities += [Entity(end, "person" if end == USER else _kind_of(end, "thing")) for end in ends]
        relations.append(Relation(ends[0], name[:MAX_NAME], ends[1]))
    return build(entities, relations)


def graph_of(text: str, triplets: Iterable[tuple[str, str, str]] = (), rules: Graph | None = None) -> Graph:
    """An LLM's triplets for `text`, completed with what the rules find in it (names, kin, places); `rules`:
    that, found already."""
    found = rules_graph(text) if rules is None else rules
    given = triplets_graph(triplets)
    if not given:
        return found  # built already
    return build((*given.entities, *found.entities), (*given.relations, *found.relations))


_CONTRACTED = {"m": "is", "ve": "has", "d": "would", "ll": "will"}


def _unnamed(match: re.Match[str]) -> str:
    """A name the text addresses becomes "you" (what it stands for in the sentence); a greeting is no name."""
    name = match[1] or match[2]
    return match[0] if _trimmed(name) != name else "you"


def _speaker(text: str) -> tuple[str | None, str]:
    """The speaker a text's label names ("Ana: ..."), and the text without it; (None, text) without one."""
    label = _LABEL.match(text)
    name = _trimmed(label[1]) if label else None
    if label is None or name is None or name != label[1]:
        return None, text
    return name, text[label.end():]


_FIRST_PERSON = re.compile(r"\b(?:(my|My)\b|I['\u2019](m|ve|d|ll)\b|(?:I|me|Me|myself)\b(?!['\u2019]))")


def _third_person(text: str, subject: str) -> str:
    """First person as `subject`: "my sister" is "Ana's sister", "I'm" is "Ana is" (never a name "Ana'm")."""
    def said(match: re.Match[str]) -> str:
        if match[1]:
            return f"{subject}'s"
        return f"{subject} {_CONTRACTED[match[2]]}" if match[2] else subject

    return _FIRST_PERSON.sub(said, text)


def _user(name: str) -> str:
    return USER if name.casefold() in ("user", "i", "me", "the user", "myself") else name


def _take_kin(text: str, entities: list[Entity], relations: list[Relation]) -> tuple[str, list[str]]:
    """Find kin phrases and put a placeholder where each stood, so that the verb rules read "<Ana> lives in"."""
    phrases: list[str] = []

    def keep(owner: str, kin: str, name: str | None) -> str:
        owner = _trimmed(owner) or USER
        phrase = f"{owner}'s {kin.lower()}"
        person = _trimmed(name) if name else None
        target = person or phrase
        entities.extend([Entity(owner, "person"), Entity(target, "person", (phrase,) if person else ())])
        relations.append(Relation(owner, relation_name(kin), target))
        phrases.append(target)
        return f"\x00{len(phrases) - 1}\x00"

    if "'s " in text or "\u2019s " in text:  # both shapes hold a possessive
        text = _IS_KIN.sub(lambda m: keep(m[2], m[3], m[1]) + " is", text)
        text = _OWNED.sub(lambda m: keep(m[1], m[2], m[3]), text)
    return text, phrases


def _ref(ref: str, phrases: list[str]) -> str | None:
    if ref.startswith("\x00"):
        return phrases[int(ref.strip("\x00"))]
    return _trimmed(ref)


def _trimmed(name: str) -> str | None:
    """A name with leading non-names dropped ("Hey Mel" -> "Mel"); None when nothing is left."""
    if name == USER:
        return USER
    words = name.split(" ")
    while words and words[0].strip("'\u2019").casefold() in _NOT_NAMES:
        words = words[1:]
    while words and words[-1].casefold() in _NOT_NAMES:
        words = words[:-1]
    name = " ".join(words)
    if name.endswith(("'s", "\u2019s")):
        name = name[:-2]
    if not name or name.casefold() in _NOT_NAMES or len(name) > MAX_NAME or _CONTRACTION.search(name) \
            or name.endswith(("n't", "n\u2019t")):
        return None  # "You're", "Can't": a contraction is no name (a name takes only 's)
    return name


def _kind_of(name: str, default: str) -> str:
    if name == USER:
        return "person"
    return "organisation" if _ORGANISATION.search(name) else default
