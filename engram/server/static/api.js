// The server's JSON API. With a session cookie, every state-changing request carries the session's CSRF token.

let csrf = null;

export function useCsrf(token) {
  csrf = token || null;
}

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

async function failure(response) {
  const data = await response.json().catch(() => null);
  const message = data?.error?.message ?? `${response.status} ${response.statusText}`;
  return new ApiError(response.status, message, data?.error?.type);
}

export async function call(method, path, body, { raw = false, type = null } = {}) {
  const headers = {};
  let payload = body;
  if (body !== undefined && type === null) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (type) {
    headers["Content-Type"] = type;
  }
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (!response.ok) throw await failure(response);
  return raw ? response : response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const put = (path, body) => call("PUT", path, body);
export const del = (path) => call("DELETE", path);

export function query(params) {
  const given = Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "");
  return given.length ? "?" + new URLSearchParams(given).toString() : "";
}
