// One memory: its versions on a time line, its history (each change with the batch that made it, and a revert of
// that batch), and edit and delete.

import { del, get, post, put } from "./api.js";
import { clear, el, memoryLink, userLink, when } from "./dom.js";

export async function showMemory(view, id, identity) {
  const data = await get("/web/memories/" + encodeURIComponent(id));
  const memory = data.memory;
  const notice = el("p", { id: "notice", role: "status", class: "muted" });
  const again = () => showMemory(view, id, identity);
  const act = async (work, message) => {
    try {
      await work();
      await again();
      document.getElementById("notice").textContent = message;
    } catch (error) {
      notice.textContent = error.message;
      notice.className = "error";
    }
  };
  clear(view,
    memory.user_id ? el("p", {}, el("a", { href: userLink(memory.user_id), text: `\u2190 Memories of ${memory.user_id}` })) : null,
    el("h2", { id: "memory-title" }, el("span", { class: `badge ${memory.state}`, text: memory.state }), " ",
      el("span", { class: "memory-text", text: memory.memory })),
    notice,
    details(memory),
    memory.state === "current" ? editForm(memory, act) : null,
    el("h3", { text: "Versions" }),
    el("ol", { class: "timeline", id: "versions" }, data.versions.map(version)),
    el("h3", { text: "History" }),
    historyTable(data.history, act));
  view.focus({ preventScroll: true });
}

function details(memory) {
  const pair = (name, value) => value ? [el("dt", { text: name }), el("dd", { text: value })] : null;
  return el("dl", { class: "details" },
    pair("id", memory.id), pair("version", String(memory.version)), pair("valid from", when(memory.valid_from)),
    pair("valid to", memory.valid_to ? when(memory.valid_to) : null), pair("superseded by", memory.superseded_by),
    pair("categories", (memory.categories || []).join(", ")), pair("source", (memory.source || []).join(", ")),
    pair("metadata", Object.keys(memory.metadata || {}).length ? JSON.stringify(memory.metadata) : null),
    pair("expires", memory.expires_at ? when(memory.expires_at) : null), pair("batch", memory.batch_id));
}

function editForm(memory, act) {
  const text = el("textarea", { id: "edit-text", rows: 3, required: true });
  text.value = memory.memory;
  const save = (e) => {
    e.preventDefault();
    act(() => put("/memories/" + encodeURIComponent(memory.id), { text: text.value, expected_version: memory.version }),
      "Saved as a new version.");
  };
  const remove = () => act(() => del("/memories/" + encodeURIComponent(memory.id)), "Deleted. Revert its batch below to undo.");
  return el("form", { class: "edit", onsubmit: save },
    el("label", { for: "edit-text", text: "Text" }), text,
    el("div", { class: "row" }, el("button", { type: "submit", id: "save", text: "Save" }),
      el("button", { type: "button", id: "delete", class: "danger", text: "Delete", onclick: remove })));
}

function version(record) {
  const span = `${when(record.valid_from)} \u2192 ${record.valid_to ? when(record.valid_to) : "now"}`;
  return el("li", { class: `version ${record.state}` },
    el("p", { class: "facts" }, el("strong", { text: `v${record.version}` }), el("span", { text: span }),
      el("span", { class: `badge ${record.state}`, text: record.state }),
      record.superseded_by ? el("a", { href: memoryLink(record.superseded_by), text: "superseded by " + record.superseded_by.slice(0, 8) }) : null),
    el("p", { class: "text", text: record.memory }));
}

function historyTable(rows, act) {
  const revert = (batch) => act(() => post("/v1/revert", { batch_id: batch }), "The batch was reverted.");
  return el("div", { class: "scroll" }, el("table", { class: "history", id: "history" },
    el("caption", { class: "visually-hidden", text: "Every change of this memory, oldest first" }),
    el("thead", {}, el("tr", {}, ["When", "Change", "Old \u2192 new", "Reason and source", "Batch"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows.map((row) => el("tr", {},
      el("td", { text: when(row.created_at) }),
      el("td", { class: "op", text: row.event }),
      el("td", {}, row.old_memory ? el("del", { text: row.old_memory }) : null, row.old_memory && row.new_memory ? " \u2192 " : null,
        row.new_memory ? el("ins", { text: row.new_memory }) : null),
      el("td", {}, row.reason ? el("span", { text: row.reason }) : null,
        (row.source || []).length ? el("span", { class: "muted", text: ` [${row.source.join(", ")}]` }) : null),
      el("td", {}, el("code", { text: String(row.batch_id || "").slice(0, 8) }), " ",
        row.batch_id ? el("button", { type: "button", class: "small", text: "Revert batch", "aria-label": `Revert batch ${row.batch_id}`,
          onclick: () => revert(row.batch_id) }) : null))))));
}
