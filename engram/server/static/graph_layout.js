// Where each entity of a graph drawing goes: pure functions of names and relations, no DOM and no randomness, so
// the same graph always gets the same picture. A whole graph is spread by springs, each connected group on its
// own; a neighbourhood is drawn in rings around its entity, one ring per relation away. Both are laid out in
// their own units, then fitted to the width they are given: the height is what the drawing needs (at least
// `least`), so a long row of unlinked names wraps instead of shrinking until its labels overlap.

const MARGIN = 60;
const UNIT = 90;  // the distance springs aim for between linked entities
const SLOT = 125;  // the room an entity and its label take beside another

function neighbours(names, relations) {
  const links = new Map(names.map((n) => [n, new Set()]));
  for (const r of relations) {
    if (links.has(r.subject) && links.has(r.object)) {
      links.get(r.subject).add(r.object);
      links.get(r.object).add(r.subject);
    }
  }
  return links;
}

// entities: [{name, distance}], the centre at distance 0. Each ring is ordered by where its neighbours on the ring
// inside it stand, so that links cross as little as a ring allows; a crowded ring is wider.
export function radial(entities, relations, width, least) {
  const names = entities.map((e) => e.name);
  const links = neighbours(names, relations);
  const deepest = Math.max(0, ...entities.map((e) => e.distance));
  const angle = new Map();
  const at = new Map();
  let radius = 0;
  for (let d = 0; d <= deepest; d++) {
    const ring = entities.filter((e) => e.distance === d).map((e) => e.name);
    const wanted = (name) => {
      const placed = [...links.get(name)].filter((n) => angle.has(n)).map((n) => angle.get(n));
      return placed.length ? placed.reduce((a, b) => a + b, 0) / placed.length : 0;
    };
    ring.sort((a, b) => wanted(a) - wanted(b) || (a < b ? -1 : a > b ? 1 : 0));
    radius = d === 0 ? 0 : Math.max(radius + UNIT * 1.5, (ring.length * SLOT) / (2 * Math.PI));
    ring.forEach((name, i) => {
      const theta = d === 0 ? 0 : (2 * Math.PI * i) / ring.length + d * 0.35;
      angle.set(name, theta);
      at.set(name, { x: radius * Math.cos(theta), y: radius * Math.sin(theta) });
    });
  }
  return fit(at, width, least, 1);
}

// Each connected group of entities spread by Fruchterman and Reingold's springs (from a circle, cooling over a fixed
// number of rounds), the groups then packed in rows as wide as the drawing, biggest first.
export function spread(names, relations, width, least, rounds = 250) {
  const links = neighbours(names, relations);
  const groups = components(names, links).map((group) => springs(group, links, rounds));
  return fit(pack(groups, width - 2 * MARGIN), width, least, 1.5);
}

function components(names, links) {
  const seen = new Set();
  const groups = [];
  for (const name of names) {
    if (seen.has(name)) continue;
    const group = [name];
    seen.add(name);
    for (let i = 0; i < group.length; i++) {
      for (const other of [...links.get(group[i])].sort()) {
        if (!seen.has(other)) { seen.add(other); group.push(other); }
      }
    }
    groups.push(group);
  }
  return groups.sort((a, b) => b.length - a.length);  // a stable sort: ties keep the names' order
}

function springs(group, links, rounds) {
  const n = group.length;
  const start = (UNIT * Math.sqrt(n)) / 2;
  const pos = group.map((_, i) => ({ x: Math.cos((2 * Math.PI * i) / n) * start, y: Math.sin((2 * Math.PI * i) / n) * start }));
  const index = new Map(group.map((name, i) => [name, i]));
  const edges = group.flatMap((name, i) => [...links.get(name)].map((o) => index.get(o)).filter((j) => j > i).map((j) => [i, j]));
  for (let round = 0; round < rounds; round++) {
    const move = pos.map(() => ({ x: 0, y: 0 }));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = pos[i].x - pos[j].x || 0.01;
        const dy = pos[i].y - pos[j].y;
        const push = (UNIT * UNIT) / Math.max(dx * dx + dy * dy, 1);
        move[i].x += dx * push; move[i].y += dy * push;
        move[j].x -= dx * push; move[j].y -= dy * push;
      }
    }
    for (const [a, b] of edges) {
      const dx = pos[a].x - pos[b].x;
      const dy = pos[a].y - pos[b].y;
      const pull = Math.hypot(dx, dy) / UNIT;
      move[a].x -= dx * pull; move[a].y -= dy * pull;
      move[b].x += dx * pull; move[b].y += dy * pull;
    }
    const heat = start * (1 - round / rounds) + 1;
    pos.forEach((p, i) => {
      const length = Math.hypot(move[i].x, move[i].y) || 1;
      p.x += (move[i].x / length) * Math.min(length, heat);
      p.y += (move[i].y / length) * Math.min(length, heat);
    });
  }
  const [left, top] = [Math.min(...pos.map((p) => p.x)), Math.min(...pos.map((p) => p.y))];
  const at = new Map(group.map((name, i) => [name, { x: pos[i].x - left, y: pos[i].y - top }]));
  return { at, w: Math.max(...pos.map((p) => p.x)) - left, h: Math.max(...pos.map((p) => p.y)) - top };
}

// Groups left to right on shelves `shelf` wide (a group wider than that gets a shelf of its own).
function pack(groups, shelf) {
  const at = new Map();
  let [x, y, tallest] = [0, 0, 0];
  for (const g of groups) {
    if (x > 0 && x + g.w > shelf) { [x, y, tallest] = [0, y + tallest + UNIT, 0]; }
    for (const [name, p] of g.at) at.set(name, { x: x + p.x, y: y + p.y });
    x += g.w + SLOT;
    tallest = Math.max(tallest, g.h);
  }
  return at;
}

// Positions scaled to `width` (never enlarged more than `most` times), centred; the height the drawing takes.
function fit(at, width, least, most) {
  const points = [...at.values()];
  if (!points.length) return { at, height: least };
  const [left, top] = [Math.min(...points.map((p) => p.x)), Math.min(...points.map((p) => p.y))];
  const spanX = Math.max(...points.map((p) => p.x)) - left;
  const spanY = Math.max(...points.map((p) => p.y)) - top;
  const scale = Math.min((width - 2 * MARGIN) / (spanX || 1), most);
  const height = Math.max(least, Math.ceil(spanY * scale + 2 * MARGIN));
  const [offsetX, offsetY] = [(width - spanX * scale) / 2, (height - spanY * scale) / 2];
  return { at: new Map([...at].map(([name, p]) => [name, { x: offsetX + (p.x - left) * scale, y: offsetY + (p.y - top) * scale }])), height };
}
