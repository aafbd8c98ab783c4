// The reader's API, same origin only: every call carries the token as a Bearer
// header and nothing else leaves the page.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let token = null;
let onUnauthenticated = () => {};

export function setToken(value, unauthenticated) {
  token = value;
  if (unauthenticated) onUnauthenticated = unauthenticated;
}

export function authHeader() {
  return { Authorization: "Bearer " + token };
}

// GET path (with query params object) -> parsed JSON; ApiError otherwise.
export async function get(path, params, extraHeaders) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  const url = path + (query.toString() ? "?" + query.toString() : "");
  const response = await fetch(url, {
    headers: { ...authHeader(), Accept: "application/json", ...(extraHeaders || {}) },
    credentials: "omit",
    cache: "no-store",
  });
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const err = body && body.error ? body.error : {};
    if (response.status === 401) onUnauthenticated(err.message || "the token was refused");
    throw new ApiError(response.status, err.code || "HTTP_" + response.status,
                       err.message || response.statusText);
  }
  return body;
}

// What a panel says when its query fails.
export function explain(error) {
  if (error instanceof ApiError && error.status === 403)
    return "This token's role may not see this (" + error.message + ").";
  if (error instanceof ApiError) return "Could not load: " + error.message + " (" + error.code + ").";
  return "Could not load: " + (error && error.message ? error.message : String(error));
}

// The claims of a JWT, for display only (the server checks the signature).
export function claimsOf(jwt) {
  const parts = String(jwt).split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const text = atob(b64 + "===".slice((b64.length + 3) % 4));
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}
