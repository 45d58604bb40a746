// The query API, same origin. Actions carry the CSRF token (read from the cookie the
// server set with the session) and say they come from the dashboard.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function csrfToken() {
  const entry = document.cookie.split("; ").find((c) => c.startsWith("errorstream_csrf="));
  return entry ? decodeURIComponent(entry.slice("errorstream_csrf=".length)) : "";
}

function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function send(method, path, params, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrfToken();
    headers["X-Errorstream-Source"] = "dashboard";
  }
  const response = await fetch(url(path, params), {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.assign("/dashboard/login");
    throw new ApiError(401, "authentication required");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const message = (data && data.error) || `${method} ${path}: HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

export const get = (path, params) => send("GET", path, params);
export const post = (path, body) => send("POST", path, {}, body);
export const del = (path) => send("DELETE", path, {});

export function issuePath(fingerprint, tail = "") {
  return `/api/issues/${encodeURIComponent(fingerprint)}${tail}`;
}
