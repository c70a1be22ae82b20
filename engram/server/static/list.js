// A user's memories: search with the scores taken apart, the list a page at a time with category facets and a
// toggle for superseded and deleted memories, and the add / import / export tools.

import { get, post, query } from "./api.js";
import { clear, el, graphLink, memoryLink, when } from "./dom.js";
import { addTools } from "./write.js";

const PAGE_SIZE = 50;

export async function showUser(view, user, identity) {
  const options = { user, all: false, category: null, page: 1 };
  const results = el("section", { class: "results", "aria-label": "Search results" });
  const listing = el("section", { class: "listing", "aria-labelledby": "list-title" });
  const reload = () => { options.summary = null; return renderList(listing, options); };
  clear(view,
    el("div", { class: "title-row" },
      el("h2", { id: "list-title", text: `Memories of ${user}` }),
      el("div", { class: "row" },
        el("a", { class: "button", id: "graph-link", href: graphLink(user), text: "Graph" }),
        el("a", { class: "button", id: "export", href: "/v1/export" + query({ user_id: user }),
          download: `${user}.jsonl`, text: "Export JSONL" }))),
    searchForm(user, results), results,
    addTools(user, identity, reload),
    listing);
  await reload();
  view.focus({ preventScroll: true });
}

function searchForm(user, results) {
  const input = el("input", { id: "search", type: "search", name: "q", required: true, autocomplete: "off" });
  const run = async (event) => {
    event.preventDefault();
    clear(results, el("p", { class: "muted", text: "Searching…" }));
    try {
      const found = await post("/web/search", { query: input.value, user_id: user, limit: 10 });
      clear(results, el("h3", { text: `${found.results.length} results` }),
        el("ol", { class: "hits" }, found.results.map(hit)));
    } catch (error) {
      clear(results, el("p", { class: "error", role: "alert", text: error.message }));
    }
  };
  return el("form", { class: "row search", role: "search", onsubmit: run },
    el("label", { for: "search", text: "Search" }), input, el("button", { type: "submit", text: "Search" }));
}

function hit(found) {
  const parts = found.explain || {};
  const score = (name, value) => [el("dt", { text: name }), el("dd", { text: Number(value ?? 0).toFixed(3) })];
  return el("li", { class: "hit" },
    el("a", { href: memoryLink(found.id), class: "text", text: found.memory }),
    el("dl", { class: "scores", "aria-label": "Why it ranked here" },
      score("score", found.score), score("cosine", parts.cosine), score("keyword", parts.keyword),
      score("context", parts.context), score("time", parts.time), score("fused", parts.fused)));
}

async function renderList(section, options) {
  const params = { user_id: options.user, state: options.all ? "all" : "current", category: options.category,
    page: options.page, page_size: PAGE_SIZE };
  const data = await get("/web/memories" + query(params));
  const first = data.results.length ? (data.page - 1) * data.page_size + 1 : 0;
  const last = first ? first + data.results.length - 1 : 0;
  const go = (changes) => { Object.assign(options, changes); renderList(section, options); };
  const count = el("p", { id: "list-count", class: "muted", text: `${first}–${last}` });
  const facetBox = el("div", { class: "facets", role: "group", "aria-label": "Categories" });
  clear(section,
    el("div", { class: "row filters" },
      el("label", { class: "toggle" },
        el("input", { type: "checkbox", id: "show-all", checked: options.all, onchange: (e) => go({ all: e.target.checked, page: 1, summary: null }) }),
        "Show superseded and deleted"),
      facetBox),
    count,
    el("ul", { class: "memories", id: "memories" }, data.results.map(row)),
    el("nav", { class: "row pager", "aria-label": "Pages" },
      el("button", { type: "button", text: "Previous", disabled: data.page <= 1, onclick: () => go({ page: data.page - 1 }) }),
      el("button", { type: "button", text: "Next", disabled: !data.more, onclick: () => go({ page: data.page + 1 }) })));
  // The total and the categories need every memory read: they follow the first page instead of holding it up
  options.summary = options.summary || get("/web/memories/summary" + query({ user_id: options.user, state: params.state }));
  const summary = await options.summary;
  const shown = options.category ? `, in ${options.category}` : "";
  const total = options.category ? (summary.categories[options.category] ?? 0) : summary.count;
  count.textContent = `${first}–${last} of ${total.toLocaleString("en")}${shown}`;
  clear(facetBox, facets(summary.categories, options, go));
}

function facets(categories, options, go) {
  return Object.entries(categories || {}).map(([name, count]) => el("button", {
    type: "button", class: "chip", "aria-pressed": String(options.category === name), text: `${name} (${count})`,
    onclick: () => go({ category: options.category === name ? null : name, page: 1 }),
  }));
}

function row(memory) {
  const meta = Object.keys(memory.metadata || {}).length ? JSON.stringify(memory.metadata) : null;
  return el("li", { class: `memory ${memory.state}` },
    el("a", { href: memoryLink(memory.id), class: "text", text: memory.memory }),
    el("p", { class: "facts" },
      memory.state !== "current" ? el("span", { class: `badge ${memory.state}`, text: memory.state }) : null,
      el("span", { text: `v${memory.version} · ${when(memory.valid_from)}` }),
      (memory.categories || []).map((c) => el("span", { class: "tag", text: c })),
      meta ? el("code", { class: "meta", text: meta }) : null));
}
