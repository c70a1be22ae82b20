// The shell: who is signed in, the users list, and the routes #/u/USER, #/m/MEMORY_ID and #/g/USER[/ENTITY[?hops=N]].

import { call, get, post, useCsrf } from "./api.js";
import { clear, el, userLink, when } from "./dom.js";
import { showGraph } from "./graph.js";
import { showUser } from "./list.js";
import { showMemory } from "./memory.js";

const $ = (id) => document.getElementById(id);
const state = { identity: null, users: [] };

async function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  const identity = await get("/web/session");
  if (identity.signed_in || identity.open) enter(identity);
  else showSignIn();
}

function showSignIn() {
  $("shell").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("key").focus();
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    const identity = await post("/web/session", { key: $("key").value.trim() });
    $("key").value = "";
    enter(identity);
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
}

async function signOut() {
  await call("DELETE", "/web/session");
  useCsrf(null);
  state.identity = null;
  location.hash = "#/";
  showSignIn();
}

function enter(identity) {
  state.identity = identity;
  useCsrf(identity.csrf);
  $("sign-in").hidden = true;
  $("shell").hidden = false;
  $("sign-out").hidden = !identity.signed_in;
  const reach = identity.user_id ? `user ${identity.user_id}` : identity.admin ? "admin" : "all users";
  $("who").textContent = identity.open ? "local, no key" : `${identity.tenant} · ${reach}`;
  route();
}

export async function refreshUsers() {
  try {
    state.users = (await get("/web/users")).results;
  } catch (error) {
    state.users = [];
  }
  const current = currentUser();
  clear($("users"), state.users.map((u) => el("li", {},
    el("a", { href: userLink(u.user_id), "aria-current": u.user_id === current ? "page" : null },
      el("span", { class: "name", text: u.user_id }),
      el("span", { class: "count", text: `${u.current} current · ${u.memories} in all` }),
      el("span", { class: "changed", text: `changed ${when(u.last_change)}` })))));
  if (!state.users.length) $("users").append(el("li", { class: "muted", text: "No users yet" }));
}

function currentUser() {
  const match = location.hash.match(/^#\/[ug]\/([^/?]+)/);
  return match ? decodeURIComponent(match[1]) : null;
}

async function route() {
  if (!state.identity) return;
  const view = $("view");
  const hash = location.hash || "#/";
  const memory = hash.match(/^#\/m\/(.+)$/);
  const graph = hash.match(/^#\/g\/([^/?]+)(?:\/([^/?]+))?(?:\?hops=([1-5]))?$/);
  refreshUsers();  // beside the view, not before it
  try {
    const user = currentUser();
    if (graph) await showGraph(view, user, graph[2] ? decodeURIComponent(graph[2]) : null, Number(graph[3] || 2));
    else if (user !== null) await showUser(view, user, state.identity);
    else if (memory) await showMemory(view, decodeURIComponent(memory[1]), state.identity);
    else if (state.identity.user_id) location.replace(userLink(state.identity.user_id));
    else clear(view, el("h2", { text: "Memories" }),
      el("p", { text: "Pick a user, or open one by name:" }), openUserForm());
  } catch (error) {
    clear(view, el("h2", { text: "Not available" }), el("p", { class: "error", role: "alert", text: error.message }));
  }
}

function openUserForm() {
  const input = el("input", { id: "open-user", name: "user", required: true, autocomplete: "off" });
  return el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); location.hash = userLink(input.value.trim()); } },
    el("label", { for: "open-user", text: "User id" }), input, el("button", { type: "submit", text: "Open" }));
}

start().catch((error) => {
  document.body.append(el("p", { class: "error", role: "alert", text: `The page could not start: ${error.message}` }));
});
