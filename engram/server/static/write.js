// Adding memories (text or a pasted conversation, infer on or off, a dry run that shows the proposed operations
// before they are applied) and importing a JSONL or LoCoMo file with a progress bar.

import { call, post, query } from "./api.js";
import { clear, el, memoryLink } from "./dom.js";
import { refreshUsers } from "./app.js";

const TURN = /^(user|assistant|system)\s*:\s*(.*)$/i;

// A conversation when every non-empty line reads "role: text"; otherwise the text as it is.
export function messagesOf(text) {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  if (lines.length && lines.every((l) => TURN.test(l))) {
    return lines.map((l) => { const m = l.match(TURN); return { role: m[1].toLowerCase(), content: m[2] }; });
  }
  return text;
}

export function addTools(user, identity, reload) {
  return el("div", { class: "tools" }, addPanel(user, reload), importPanel(user, reload));
}

function addPanel(user, reload) {
  const text = el("textarea", { id: "add-text", rows: 4, required: true });
  const infer = el("input", { type: "checkbox", id: "add-infer" });
  const out = el("div", { class: "proposal", "aria-live": "polite" });
  const send = async (dryRun) => {
    clear(out, el("p", { class: "muted", text: dryRun ? "Working out the changes…" : "Adding…" }));
    try {
      const body = { messages: messagesOf(text.value), user_id: user, infer: infer.checked, dry_run: dryRun };
      const result = await post("/memories", body);
      clear(out, el("h4", { text: dryRun ? "Proposed changes (nothing written yet)" : "Applied" }),
        el("ul", { class: "ops", id: dryRun ? "proposed" : "applied" }, result.results.map(op)),
        dryRun && result.results.length ? el("button", { type: "button", id: "apply", text: "Apply", onclick: () => send(false) }) : null);
      if (!dryRun) { text.value = ""; await reload(); await refreshUsers(); }
    } catch (error) {
      clear(out, el("p", { class: "error", role: "alert", text: error.message }));
    }
  };
  return el("details", { class: "panel" }, el("summary", { text: "Add memories" }),
    el("form", { onsubmit: (e) => { e.preventDefault(); send(true); } },
      el("label", { for: "add-text", text: "Text, or a conversation with one \u201crole: text\u201d per line" }), text,
      el("label", { class: "toggle" }, infer, "Infer facts with the LLM (off: store the text as it is)"),
      el("div", { class: "row" },
        el("button", { type: "submit", id: "preview", text: "Preview (dry run)" }),
        el("button", { type: "button", id: "add-now", text: "Add now", onclick: () => text.reportValidity() && send(false) }))),
    out);
}

function op(result) {
  const label = `${result.event}: `;
  const text = result.memory ?? result.text ?? "";
  return el("li", { class: `op ${String(result.event).toLowerCase()}` }, el("strong", { text: label }),
    result.id && result.event !== "NONE" ? el("a", { href: memoryLink(result.id), text }) : el("span", { text }),
    result.previous_memory ? el("span", { class: "muted", text: ` (was: ${result.previous_memory})` }) : null);
}

function importPanel(user, reload) {
  const file = el("input", { type: "file", id: "import-file", accept: ".jsonl,.ndjson,.json", required: true });
  const bar = el("progress", { id: "import-progress", max: 1, value: 0, "aria-label": "Import progress" });
  const status = el("p", { id: "import-status", class: "muted", role: "status" });
  const run = async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    const format = chosen.name.toLowerCase().endsWith(".json") ? "locomo" : "jsonl";
    status.textContent = "Reading…";
    try {
      const response = await call("POST", "/web/import" + query({ user_id: user, format }), chosen,
        { raw: true, type: "application/octet-stream" });
      await follow(response, bar, status);
      await reload();
      await refreshUsers();
    } catch (error) {
      status.textContent = error.message;
      status.classList.add("error");
    }
  };
  return el("details", { class: "panel" }, el("summary", { text: "Import a file" }),
    el("form", { onsubmit: run },
      el("label", { for: "import-file", text: "JSONL (one memory per line) or LoCoMo JSON" }), file,
      el("button", { type: "submit", text: "Import" }), bar, status));
}

async function follow(response, bar, status) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines.filter(Boolean)) {
      const step = JSON.parse(line);
      if (step.error) throw new Error(step.error.message);
      bar.max = Math.max(step.total, 1);
      bar.value = step.done;
      status.textContent = step.finished
        ? `Imported ${step.total}: ${step.counts.ADD ?? 0} added, ${step.counts.NOOP ?? 0} already known`
        : `${step.done} of ${step.total}`;
    }
  }
}
