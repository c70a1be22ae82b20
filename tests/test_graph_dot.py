"""engram.graph_dot: graph memory as Graphviz DOT. Hostile names stay text (read back by a small DOT reader here,
and by Graphviz itself where it is installed), and the same graph always gives the same text."""

from __future__ import annotations

import html
import itertools
import random
import re
import shutil
import subprocess

import pytest

from engram.graph_dot import dot_string, to_dot

HOSTILE = ['Ana "the" <b>boss</b>', "back\\slash\\", "two\nlines", "Zoë 東京 🚀", "tab\there\x00nul\rcr",
           "A &amp; B &lt;x&gt;", "\\N \\G \\l", '"]; evil [label="x"]; n1 -> n2; //', "-> {}",
           "ok</text><script>x</script>"]
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def unquote(body: str) -> str:
    """What Graphviz shows for the body of a quoted string that dot_string wrote."""
    text = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), body)
    return html.unescape(text)


def shown(text: str) -> str:
    """`text` as it should appear: control characters other than newline become spaces."""
    return "".join(c if c == "\n" or c.isprintable() or c == " " else " " for c in text)


def sample() -> tuple[list[dict], list[dict]]:
    entities = [{"name": "User", "kind": "person", "aliases": [], "memories": 2},
                {"name": "Ana", "kind": "person", "aliases": ["User's sister"], "memories": 1},
                {"name": "Lyon", "kind": "place", "aliases": [], "memories": 1},
                {"name": "Acme", "kind": "organisation", "aliases": [], "memories": 1}]
    relations = [{"subject": s, "relation": r, "object": o, "memory_id": i, "memory": m} for s, r, o, i, m in (
        ("User", "sister", "Ana", "m1", "My sister Ana"), ("Ana", "lives_in", "Lyon", "m1", "Ana, Lyon"),
        ("Ana", "lives_in", "Lyon", "m2", "Ana: Lyon"), ("Ana", "works_at", "Acme", "m3", "Acme"))]
    return entities, relations


@pytest.mark.parametrize("text", HOSTILE)
def test_a_quoted_string_reads_back_as_the_text_and_never_ends_early(text: str) -> None:
    quoted = dot_string(text)
    assert QUOTED.fullmatch(quoted), quoted  # one quoted string, whole: nothing can follow it
    assert "\n" not in quoted and "\x00" not in quoted and "\r" not in quoted
    assert unquote(quoted[1:-1]) == shown(text)


def test_a_lone_surrogate_is_replaced_rather_than_failing_to_encode() -> None:
    assert dot_string("a\ud800b").encode("utf-8") == b'"a?b"'


def test_hostile_names_make_exactly_their_own_nodes_and_edges() -> None:
    entities = [{"name": name, "kind": "person", "aliases": [name], "memories": 1} for name in HOSTILE]
    relations = [{"subject": a, "relation": b, "object": b, "memory": a + b} for a, b in itertools.pairwise(HOSTILE)]
    text = to_dot(entities, relations, center=HOSTILE[0], title=HOSTILE[-1])
    lines = text.splitlines()
    assert lines[0] == "digraph engram {" and lines[-1] == "}"
    statements = lines[1:-1]
    nodes = [s for s in statements if re.match(r"  n\d+ \[", s)]
    edges = [s for s in statements if re.match(r"  n\d+ -> n\d+ \[", s)]
    assert len(nodes) == len(HOSTILE) and len(edges) == len(HOSTILE) - 1
    assert len(statements) == 3 + len(nodes) + len(edges)  # the graph, node and edge defaults, and nothing else
    outside = [QUOTED.sub("", s) for s in statements]  # what is left once every quoted string is taken out
    assert all(re.fullmatch(r'[\w\s\[\]=,;#.\->]*', rest) for rest in outside), outside
    labels = {unquote(m.group(1)) for s in nodes for m in re.finditer(r'label=' + QUOTED.pattern, s)}
    assert labels == {shown(name) for name in HOSTILE}
    assert "URL" not in text and "href" not in text


def test_the_same_graph_gives_the_same_text_whatever_the_order() -> None:
    entities, relations = sample()
    first = to_dot(entities, relations, center="Ana", title="alice")
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(entities)
        rng.shuffle(relations)
        assert to_dot(entities, relations, center="Ana", title="alice") == first


def test_one_edge_per_triplet_with_its_memories_and_the_centre_in_bold() -> None:
    entities, relations = sample()
    text = to_dot(entities, relations, center="Ana")
    ids = dict(re.findall(r'  (n\d+) \[label="([^"]*)"', text))
    name_of = {v: k for k, v in ids.items()}
    edges = re.findall(r"  (n\d+) -> (n\d+) \[label=\"(\w+)\", tooltip=\"([^\"]*)\"\]", text)
    assert {(ids[a], rel, ids[b]) for a, b, rel, _ in edges} == {
        ("User", "sister", "Ana"), ("Ana", "lives_in", "Lyon"), ("Ana", "works_at", "Acme")}
    lives = next(tip for a, b, rel, tip in edges if rel == "lives_in")
    assert lives == "Ana, Lyon\\nAna: Lyon"  # both memories behind the one edge
    assert "penwidth" in next(line for line in text.splitlines() if line.startswith(f"  {name_of['Ana']} ["))
    assert text.count("penwidth") == 1
    assert 'label="graph' not in text  # no title asked, none drawn


def test_a_relation_end_missing_from_the_entities_is_still_a_node() -> None:
    text = to_dot([], [{"subject": "A", "relation": "knows", "object": "B"}])
    assert 'n1 [label="A"' in text and 'n2 [label="B"' in text and "n1 -> n2" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (make graphviz)")
def test_graphviz_draws_hostile_names_as_literal_text() -> None:
    entities = [{"name": name, "kind": "thing", "aliases": [], "memories": 1} for name in HOSTILE]
    drawn = subprocess.run(["dot", "-Tsvg"], input=to_dot(entities, []).encode(), capture_output=True, timeout=60,
                           check=True).stdout.decode()
    assert drawn.count('class="node"') == len(HOSTILE)
    assert "<script" not in drawn and "<b>" not in drawn
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", drawn)]
    for name in HOSTILE:
        lines = [line.strip() for line in shown(name).split("\n")]
        assert all(line in texts for line in lines if line), (name, texts)
