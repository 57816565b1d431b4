// Shared by the reporter's pages and the console: translated text from a page's JSON data
// island, the DOM helpers, and the one fetch wrapper with its error model. No dependencies.
// Data from the server or the user reaches the page through textContent only.

// {placeholders} filled from params; one without a value stays, so it is seen, not dropped.
export function fill(template, params = {}) {
  return String(template).replace(/\{([a-z_]+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole);
}

// The t() of the page's <script type="application/json" id=`id`> island: a key without a text
// there shows `fallback`'s, else itself. t.has(key) says whether the island holds it.
export function islandText(id, fallback = {}) {
  let own = null;
  const table = () => {
    if (own === null) {
      const island = document.getElementById(id);
      try {
        own = island ? JSON.parse(island.textContent) || {} : {};
      } catch {
        own = {};
      }
    }
    return own;
  };
  const t = (key, params = {}) => {
    const all = table();
    const template = Object.hasOwn(all, key) ? all[key]
      : Object.hasOwn(fallback, key) ? fallback[key] : key;
    return fill(template, params);
  };
  t.has = (key) => Object.hasOwn(table(), key);
  return t;
}

export function el(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export function showText(node, text) {
  if (!node) return;
  node.textContent = text || "";
  node.hidden = !text;
}

export async function hasX25519() {
  try {
    if (!globalThis.crypto || !globalThis.crypto.subtle) return false;
    await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------------------ requests

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

// The server could not be reached, or the answer broke off: worth retrying.
export class NetworkError extends ApiError {
  constructor(message) {
    super(0, "network", message);
    this.name = "NetworkError";
  }
}

// A refusal made here before anything is sent; the message is already translated.
export class UserError extends Error {
  constructor(message) {
    super(message);
    this.name = "UserError";
  }
}

export function retryable(error) {
  return error instanceof ApiError && (error.status === 0 || error.status >= 500);
}

export function errorText(error, t) {
  if (error instanceof ApiError || error instanceof UserError) return error.message;
  return t("failed", { message: error && error.message ? error.message : String(error) });
}

// fetch against our own server. The body is `json`, bytes (`raw`) or a FormData (`form`).
// A refusal is an ApiError with the server's translated message (`t` words the rest: "network",
// "failed"). Answers the JSON (null when empty), or as: "bytes" | "response".
export async function fetchApi(url, { method = "GET", headers = {}, json, raw, form,
  as = "json", t }) {
  const sent = { ...headers };
  let body = form;
  if (json !== undefined) {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (raw !== undefined) {
    sent["Content-Type"] = "application/octet-stream";
    body = raw;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: sent,
      body,
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error",
      referrerPolicy: "no-referrer",
    });
  } catch {
    throw new NetworkError(t("network"));
  }
  if (!response.ok) {
    let error = null;
    try {
      const data = await response.json();
      if (data && data.error && typeof data.error.message === "string") error = data.error;
    } catch {
      // not JSON: the generic text below
    }
    const status = response.status;
    if (error) throw new ApiError(status, String(error.code || `http_${status}`), error.message);
    throw new ApiError(status, `http_${status}`,
      status >= 500 ? t("network") : t("failed", { message: String(status) }));
  }
  if (as === "response") return response;
  try {
    if (as === "bytes") return new Uint8Array(await response.arrayBuffer());
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  } catch {
    throw new NetworkError(t("network"));
  }
}
