// Shared by the reporter's pages and the console: texts, DOM, requests. Data from the server
// or the user reaches the page through textContent only.

// t(key, params) over the page's JSON data island `id`; a key it lacks shows `fallback`'s
// text, else itself. A {placeholder} without a value stays, to be seen rather than dropped.
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
    return String(template).replace(/\{([a-z_]+)\}/g, (whole, name) =>
      Object.hasOwn(params, name) ? String(params[name]) : whole);
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

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { attrs: { href: url, download: name } });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export async function hasX25519() {
  try {
    await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    return true;
  } catch {
    return false;
  }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

// No answer, or a broken one: worth retrying.
export class NetworkError extends ApiError {
  constructor(message) {
    super(0, "network", message);
    this.name = "NetworkError";
  }
}

// A refusal made here, already translated; nothing was sent.
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

// Where a run of `count` chunks from `first` goes under a file's API path: a batch, or one
// chunk a request on a server without batches (limits without batch_chunks).
export function runPath(path, batch, first, count) {
  return batch > 1 ? `${path}/batch/${first}/${count}` : `${path}/chunks/${first}`;
}

// Send the sealed `chunks` (an async iterable, in order) that are not in `have` (a Set of
// indexes), `batch` consecutive ones per request (docs/API.md 4.3) and at most `window`
// requests in flight: sealing the next run overlaps the server storing the last ones, and
// memory stays at window + 1 runs whatever the file size. `put(first, parts)` sends one run;
// `have` grows as the server acknowledges, and `onStored(count, first)` is told. The first
// failure stops it and is thrown once the requests in flight are settled; what is missing is
// found by asking the server.
export async function sendRuns(chunks, have, { batch, window, put, onStored = () => {} }) {
  const inflight = new Set();
  let failure = null;
  const send = (first, parts) => {
    const request = put(first, parts)
      .then(() => {
        for (let i = first; i < first + parts.length; i++) have.add(i);
        onStored(parts.length, first);
      }, (error) => { failure = failure || error; })
      .finally(() => inflight.delete(request));
    inflight.add(request);
  };
  let run = [];
  let first = 0;
  let index = 0;
  for await (const chunk of chunks) {
    if (failure) break;
    if (run.length && (have.has(index) || run.length >= batch)) {
      send(first, run);
      run = [];
      if (inflight.size >= window) await Promise.race(inflight);
    }
    if (!have.has(index)) {
      if (!run.length) first = index;
      run.push(chunk);
    }
    index += 1;
  }
  if (run.length && !failure) send(first, run);
  await Promise.all(inflight);
  if (failure) throw failure;
}

// Our own server: `json`, `raw` bytes or a `form` in; the JSON (or as "bytes", "response")
// out. A refusal is an ApiError in the server's words, else in t's ("network", "failed").
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
      // not JSON: the words below
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
