"""A graph memory drawing in Graphviz's DOT language: pure text from the entities and relations that
`Memory.graph` or `Memory.related` return.

Every name, relation and memory text becomes a double-quoted DOT string that Graphviz shows literally: quotes
and backslashes are escaped (so no text can end the string or start one of Graphviz's `\\N`-style escapes), `&`
becomes `&amp;` (Graphviz reads HTML entities in labels), a newline becomes a line break, and other control
characters a space. Node ids are generated (`n1`, `n2`, ... in name order), never taken from the data, and no
link attribute (URL, href) is ever written. The same graph gives the same text whatever the order of its input.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["dot_string", "to_dot"]

# kind -> (shape, fill colour); an unknown kind is drawn as a thing
STYLES = {"person": ("ellipse", "#dbe7ff"), "place": ("house", "#dcf2dc"), "organisation": ("box", "#ffe8c7"),
          "date": ("note", "#eeeeee"), "thing": ("ellipse", "#ffffff")}


def dot_string(text: str) -> str:
    """`text` as a DOT double-quoted string that Graphviz shows as it is."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate cannot be written as UTF-8
    out = []
    for char in text:
        if char == "\n":
            out.append("\\n")
        elif char in '\\"':
            out.append("\\" + char)
        elif char == "&":
            out.append("&amp;")
        elif unicodedata.category(char) in ("Cc", "Cs"):
            out.append(" ")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def to_dot(entities: Iterable[Mapping[str, Any]], relations: Iterable[Mapping[str, Any]], *,
           center: str | None = None, title: str | None = None) -> str:
    """A digraph of `entities` ({name, kind, aliases?, memories?}) and `relations` ({subject, relation, object,
    memory?}): one node per entity (and per relation end not among them), one edge per distinct triplet, its
    tooltip the memories stating it. `center` (an entity name) is drawn bold; `title` labels the graph."""
    by_name = {str(e["name"]): e for e in entities}
    triplets: dict[tuple[str, str, str], set[str]] = {}
    for given in relations:
        key = (str(given["subject"]), str(given["relation"]), str(given["object"]))
        triplets.setdefault(key, set()).update([str(given["memory"])] if given.get("memory") else [])
    names = sorted(set(by_name) | {n for s, _, o in triplets for n in (s, o)})
    ids = {name: f"n{i}" for i, name in enumerate(names, 1)}
    lines = ["digraph engram {",
             # pack: each connected group laid out alone, the groups in rows (a store's many unlinked names
             # would otherwise stand in one column thousands of pixels high)
             '  graph [charset="UTF-8", rankdir=LR, pack=true, packmode="array", fontname="Helvetica", fontsize=12, '
             'labelloc=t'
             + (f", label={dot_string(title)}" if title is not None else "") + "];",
             '  node [fontname="Helvetica", fontsize=11, style=filled, color="#5b6270"];',
             '  edge [fontname="Helvetica", fontsize=9, color="#5b6270", fontcolor="#3a3f4a"];']
    lines += [f"  {ids[name]} [{_node(name, by_name.get(name, {}), name == center)}];" for name in names]
    for (subject, relation, obj), memories in sorted(triplets.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        tooltip = "\n".join(sorted(memories)) or relation
        lines.append(f"  {ids[subject]} -> {ids[obj]} [label={dot_string(relation)}, tooltip={dot_string(tooltip)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node(name: str, entity: Mapping[str, Any], centre: bool) -> str:
    kind = str(entity.get("kind", "thing"))
    shape, fill = STYLES.get(kind, STYLES["thing"])
    about = [kind]
    if entity.get("memories") is not None:
        count = int(entity["memories"])
        about.append(f"{count} {'memory' if count == 1 else 'memories'}")
    aliases = [str(a) for a in entity.get("aliases") or ()]
    if aliases:
        about.append("also " + ", ".join(sorted(aliases)))
    attributes = [f"label={dot_string(name)}", f"shape={shape}", f'fillcolor="{fill}"',
                  f"tooltip={dot_string(' · '.join(about))}"]
    if centre:
        attributes.append("penwidth=2.5")
    return ", ".join(attributes)
