// A user's graph memory: the entities their memories name (kind, aliases, how many memories), the relations between
// them drawn as SVG by our own layout (graph_layout.js), and one entity's neighbourhood with the memories behind
// it. Reads /v1/graph and /v1/graph/related; every name and memory text goes into the page as text.

import { get, query } from "./api.js";
import { clear, el, graphLink, memoryLink, svg, userLink } from "./dom.js";
import { radial, spread } from "./graph_layout.js";

const DRAWN = 60;  // entities in the whole graph's picture
const LISTED = 300;  // rows of the entity and relation lists
const KINDS = new Set(["person", "place", "organisation", "date", "thing"]);

export async function showGraph(view, user, entity, hops) {
  const whole = await get("/v1/graph" + query({ user_id: user }));
  const found = entity === null ? null : await get("/v1/graph/related" + query({ user_id: user, name: entity, hops }));
  clear(view,
    el("div", { class: "title-row" },
      el("h2", { id: "graph-title", text: `Graph of ${user}` }),
      el("a", { href: userLink(user), text: `\u2190 Memories of ${user}` })),
    found === null ? wholeGraph(user, whole) : neighbourhood(user, found, whole, hops));
  view.focus({ preventScroll: true });
}

function wholeGraph(user, graph) {
  if (!graph.entities.length) {
    return el("p", { class: "muted", id: "graph-count",
      text: "No entities yet: the graph holds the people, places, organisations and dates that memories name." });
  }
  // Entities in relations first (they make the picture), then the most named
  const linked = new Set(graph.relations.flatMap((r) => [r.subject, r.object]));
  const drawn = [...graph.entities.filter((e) => linked.has(e.name)), ...graph.entities.filter((e) => !linked.has(e.name))]
    .slice(0, DRAWN);
  const names = new Set(drawn.map((e) => e.name));
  const relations = graph.relations.filter((r) => names.has(r.subject) && names.has(r.object));
  const shown = graph.entities.length > DRAWN ? `; ${DRAWN} are drawn, those in relations first, then the most named` : "";
  return [
    el("p", { class: "muted", id: "graph-count",
      text: `${plural(graph.entities.length, "entity", "entities")}, ${plural(graph.relations.length, "relation")}${shown}. ` +
        "Pick one to see its neighbourhood." }),
    picture(user, drawn, relations, (width, least) => spread(drawn.map((e) => e.name), relations, width, least), null),
    el("h3", { text: "Entities" }), entityTable(user, graph.entities.slice(0, LISTED), false),
    el("h3", { text: "Relations" }), relationList(user, graph.relations.slice(0, LISTED)),
  ];
}

function neighbourhood(user, found, whole, hops) {
  const counts = new Map(whole.entities.map((e) => [e.name, e.memories]));
  const centre = found.entity;
  const entities = found.entities.map((e) => ({ ...e, memories: counts.get(e.name) ?? 0 }));
  const near = entities.slice(0, DRAWN);  // the nearest (the server sorts them by distance)
  return [
    el("p", {}, el("a", { href: graphLink(user), text: "\u2190 The whole graph" })),
    el("h3", { id: "entity-title" }, el("span", { class: "entity-name", text: centre.name }), " ",
      el("span", { class: `badge kind-${kindOf(centre.kind)}`, text: centre.kind })),
    centre.aliases.length ? el("p", { class: "muted", id: "entity-aliases", text: `Also called ${centre.aliases.join(", ")}` }) : null,
    hopsPicker(user, centre.name, hops),
    picture(user, near, found.relations, (width, least) => radial(near, found.relations, width, least), centre.name),
    el("h3", { text: `Within ${plural(hops, "relation")}` }), entityTable(user, entities, true),
    el("h3", { text: "Relations" }), relationList(user, found.relations),
    el("h3", { text: "The memories behind them" }),
    el("ul", { class: "memories", id: "graph-memories" }, found.memories.map((m) => el("li", { class: "memory" },
      el("a", { href: memoryLink(m.id), class: "text", text: m.memory })))),
  ];
}

function hopsPicker(user, name, hops) {
  const select = el("select", { id: "hops", onchange: (e) => { location.hash = graphLink(user, name, Number(e.target.value)); } },
    [1, 2, 3, 4, 5].map((n) => el("option", { value: String(n), text: String(n), selected: n === hops })));
  return el("div", { class: "row" }, el("label", { for: "hops", text: "Relations away" }), select);
}

// The drawing is as wide as the view (its text keeps its size on a phone) and as tall as `layout(width, least)`,
// which says where each entity goes, needs.
function picture(user, entities, relations, layout, centre) {
  const width = Math.round(Math.min(1100, Math.max(320, document.getElementById("view").clientWidth - 2)));
  const { at, height } = layout(width, Math.round(width < 600 ? width : Math.max(360, width * 0.45)));
  const radius = new Map(entities.map((e) => [e.name, 7 + Math.min(4 * Math.sqrt(e.memories || 1), 13)]));
  const edges = new Map();  // one per direction of a pair: its relations' names together
  for (const r of relations) {
    const key = JSON.stringify([r.subject, r.object]);
    if (!edges.has(key)) edges.set(key, { subject: r.subject, object: r.object, names: new Set() });
    edges.get(key).names.add(r.relation);
  }
  const lines = [...edges.values()].filter((e) => at.has(e.subject) && at.has(e.object))
    .map((e) => edge(e, at, radius, edges.has(JSON.stringify([e.object, e.subject]))));
  const nodes = entities.map((e) => {
    const p = at.get(e.name);
    const r = radius.get(e.name);
    const label = e.name.length > 18 ? e.name.slice(0, 17) + "\u2026" : e.name;
    return svg("a", { href: graphLink(user, e.name), class: `node kind-${kindOf(e.kind)}${e.name === centre ? " centre" : ""}`,
      "aria-label": `${e.name}: ${e.kind}, ${plural(e.memories ?? 0, "memory", "memories")}` },
    svg("title", { text: `${e.name} (${e.kind}, ${plural(e.memories ?? 0, "memory", "memories")})` }),
    svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: r.toFixed(1) }),
    svg("text", { x: p.x.toFixed(1), y: (p.y + r + 13).toFixed(1), "text-anchor": "middle", text: label }));
  });
  return el("div", { class: "graph-box" }, svg("svg", { id: "graph-svg", class: "graph", viewBox: `0 0 ${width} ${height}`,
    role: "group", "aria-label": `A drawing of ${plural(entities.length, "entity", "entities")} and their relations` },
  svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z" }))),
  svg("g", { class: "edges" }, lines), svg("g", { class: "nodes" }, nodes)));
}

// A line from one entity's circle to the other's (bent when the pair is linked both ways), its names halfway.
function edge(e, at, radius, twoWay) {
  const a = at.get(e.subject);
  const b = at.get(e.object);
  const length = Math.hypot(b.x - a.x, b.y - a.y) || 1;
  const [ux, uy] = [(b.x - a.x) / length, (b.y - a.y) / length];
  const bend = twoWay ? 16 : 0;
  const mid = { x: (a.x + b.x) / 2 - uy * bend, y: (a.y + b.y) / 2 + ux * bend };
  const start = { x: a.x + ux * radius.get(e.subject), y: a.y + uy * radius.get(e.subject) };
  const end = { x: b.x - ux * (radius.get(e.object) + 2), y: b.y - uy * (radius.get(e.object) + 2) };
  const control = { x: 2 * mid.x - (start.x + end.x) / 2, y: 2 * mid.y - (start.y + end.y) / 2 };
  const d = `M${start.x.toFixed(1)},${start.y.toFixed(1)} Q${control.x.toFixed(1)},${control.y.toFixed(1)} ${end.x.toFixed(1)},${end.y.toFixed(1)}`;
  return svg("g", { class: "edge" }, svg("path", { d, "marker-end": "url(#arrow)" }),
    svg("text", { x: mid.x.toFixed(1), y: (mid.y - 4).toFixed(1), "text-anchor": "middle", text: [...e.names].sort().join(", ") }));
}

function entityTable(user, entities, near) {
  const heads = ["Entity", "Kind", "Memories", ...(near ? ["Relations away"] : []), "Also called"];
  return el("div", { class: "scroll" }, el("table", { class: "entities", id: "entities" },
    el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, entities.map((e) => el("tr", {},
      el("td", {}, el("a", { href: graphLink(user, e.name), text: e.name })),
      el("td", {}, el("span", { class: `badge kind-${kindOf(e.kind)}`, text: e.kind })),
      el("td", { class: "num", text: String(e.memories ?? 0) }),
      near ? el("td", { class: "num", text: String(e.distance) }) : null,
      el("td", { text: (e.aliases || []).join(", ") }))))));
}

function relationList(user, relations) {
  if (!relations.length) return el("p", { class: "muted", text: "No relations between them." });
  return el("ul", { class: "relations", id: "relations" }, relations.map((r) => el("li", {},
    el("p", { class: "triplet" }, el("a", { href: graphLink(user, r.subject), text: r.subject }),
      el("span", { class: "relation", text: ` \u2014${r.relation}\u2192 ` }),
      el("a", { href: graphLink(user, r.object), text: r.object })),
    el("a", { class: "source", href: memoryLink(r.memory_id), text: r.memory }))));
}

function kindOf(kind) {
  return KINDS.has(kind) ? kind : "thing";
}

function plural(n, one, many = one + "s") {
  return `${n.toLocaleString("en")} ${n === 1 ? one : many}`;
}
