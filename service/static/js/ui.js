// The reporter's pages' own helpers: texts, API calls, text and photo cleaning, file sealing.
// Data from the server or the user reaches the page through textContent only.
import {
  ApiError, errorText as commonErrorText, el, fetchApi, islandText, NetworkError, runPath,
  sendRuns, UserError,
} from "./common.js";
import { b64uEncode, newId, newKey, sealFile } from "./crypto/core.js";

// Type sniffing and photo cleaning are fetched when a file is first looked at, not with the
// page: most of a report is typed before any photo is chosen, and the page loads lighter.
let fileTools = null;
function tools() {
  fileTools ??= Promise.all([import("./strip.js"), import("./filetypes.js")])
    .then(([strip, types]) => ({ ...strip, ...types }));
  return fileTools;
}

// ------------------------------------------------------------------------------ messages

export const t = islandText("ui-messages");
export const has = t.has;

// The page's language as the server names it (zh_CN or en) and as HTTP does (zh-CN, en).
function pageLang() {
  return document.documentElement.lang || "zh-CN";
}

export function serverLanguage() {
  return pageLang().toLowerCase().startsWith("en") ? "en" : "zh_CN";
}

// Sizes for messages: megabytes with at most one decimal (a limit below 1 MB stays readable).
function megabytes(bytes) {
  const mb = bytes / (1024 * 1024);
  if (mb >= 10) return String(Math.floor(mb));
  const rounded = Math.round(mb * 10) / 10;
  return String(rounded > 0 ? rounded : Math.round(mb * 100) / 100);
}

// ------------------------------------------------------------------------------ API

const API = "/api/v1";

function apiHeaders(token) {
  const headers = { Accept: "application/json", "Accept-Language": pageLang() };
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

export function api(method, path, { json, raw, token, binary = false } = {}) {
  return fetchApi(API + path, { method, headers: apiHeaders(token), json, raw,
    as: binary ? "bytes" : "json", t });
}

export function errorText(error) {
  return commonErrorText(error, t);
}

// ------------------------------------------------------------------------------ text

// Exactly the server's clean_text (service/domain/reportform.py): NFC, drop control, format and lone
// surrogate characters except newline, tab and the zero-width joiner, then trim.
const UNWANTED = /(?![\n\t\u200d])[\p{Cc}\p{Cs}\p{Cf}]/gu;

// The same words as the server's receipt page (service/domain/metadata.py plain_removed).
export function plainRemoved(labels) {
  const words = [...new Set(labels.map((label) => {
    const word = t(`plain.${label}`);
    return word.startsWith("plain.") ? t("plain.other metadata") : word;
  }))];
  return words.join(t("list_sep"));
}

export function cleanText(value, limit) {
  if (typeof value !== "string") return { text: "", tooLong: false };
  const text = value.normalize("NFC").replace(UNWANTED, "").trim();
  return { text, tooLong: [...text].length > limit };
}

// ------------------------------------------------------------------------------ files

function fileName(file) {
  const { text } = cleanText(file.name || "", 10000);
  return [...text].slice(0, 200).join("") || "file";
}

// The name a file is sent under: neutral (photo-1.jpg, extension from the real type) unless
// the reporter chose to keep the original names.
function sentName(file, type, number, keepNames) {
  if (keepNames) return fileName(file);
  return `${t(`name.${type.family}`, { number })}.${type.ext}`;
}

// "cannot be cleaned", then why for HEIC and video, each in its own line.
function uncleanNodes(name, type) {
  return [
    el("span", { text: t("unclean", { name }) }),
    type.reason ? el("span", { cls: "reason", text: t(`unclean_reason.${type.reason}`) }) : null,
  ];
}

// As soon as files are chosen: say which can be cleaned and, for each one that cannot, ask
// whether to send it uncleaned or leave it out (nothing is chosen for the reporter).
export async function reviewFiles(fileList, listNode) {
  const files = Array.from(fileList || []);
  const token = String(Math.random());
  listNode.dataset.review = token;
  // Choices made for an earlier selection must not apply to this one, even for a moment.
  listNode.replaceChildren();
  delete listNode.dataset.reviewed;
  const lines = [];
  for (const [index, file] of files.entries()) {
    const type = await (await tools()).detectFile(file);
    const name = fileName(file);
    if (type.cleanable) {
      lines.push(el("li", { cls: "removed", text: t("will_clean", { name }) }));
      continue;
    }
    const choice = (value, label) => el("label", {}, [
      el("input", { attrs: { type: "radio", name: `unclean-${index}`, value } }),
      ` ${t(label)}`,
    ]);
    lines.push(el("li", { cls: "unclean file-choice", attrs: { "data-index": index } }, [
      ...uncleanNodes(name, type),
      el("span", { cls: "choices" }, [choice("send", "unclean_send"), choice("drop", "unclean_drop")]),
    ]));
  }
  // A later selection replaced this one while it was being read.
  if (listNode.dataset.review !== token) return;
  listNode.replaceChildren(...lines);
  listNode.dataset.reviewed = String(files.length);
}

function uncleanDecision(listNode, index) {
  const checked = listNode && listNode.querySelector(`input[name="unclean-${index}"]:checked`);
  return checked ? checked.value : "";
}

// Check count and sizes, the reporter's choice for every file that cannot be cleaned, then
// remove hidden data from every picture and name the files. Lists in `listNode` what was done
// per file. Throws UserError (already translated) for a refusal; nothing is sent.
export async function prepareFiles(fileList, limits, listNode,
  { keepNames = false, firstNumber = 1 } = {}) {
  const files = Array.from(fileList || []);
  if (files.length > limits.max_files) {
    throw new UserError(t("too_many", { count: limits.max_files }));
  }
  for (const file of files) {
    if (file.size > limits.max_file_bytes) {
      throw new UserError(t("too_big", { name: fileName(file), mb: megabytes(limits.max_file_bytes) }));
    }
  }
  const types = [];
  for (const file of files) types.push(await (await tools()).detectFile(file));
  const undecided = types.some((type, i) => !type.cleanable && !uncleanDecision(listNode, i));
  if (undecided) {
    if (listNode && listNode.dataset.reviewed !== String(files.length)) {
      await reviewFiles(files, listNode);
    }
    const first = listNode && listNode.querySelector(".file-choice input");
    if (first) first.focus();
    throw new UserError(t("unclean_choose"));
  }
  const lines = [];
  const prepared = [];
  let number = firstNumber;
  for (const [index, file] of files.entries()) {
    const name = fileName(file);
    const type = types[index];
    if (!type.cleanable && uncleanDecision(listNode, index) === "drop") {
      lines.push(el("li", { cls: "unclean", text: t("left_out", { name }) }));
      continue;
    }
    let result;
    // Only JPEG and PNG can be cleaned; anything else passes through untouched (exactly what
    // stripMetadata returns for it) without being read into memory here.
    if (type.cleanable) {
      const { MetadataError, stripMetadata } = await tools();
      try {
        result = await stripMetadata(file);
      } catch (error) {
        if (error instanceof MetadataError) {
          const message = t("damaged", { name });
          if (listNode) listNode.replaceChildren(el("li", { cls: "unclean", text: message }));
          throw new UserError(message);
        }
        throw error;
      }
    } else {
      result = { blob: file, kind: "other", cleaned: false, removed: [] };
    }
    if (result.kind === "other") {
      lines.push(el("li", { cls: "unclean" }, uncleanNodes(name, type)));
    } else if (result.removed.length) {
      const what = result.removed.map((label) => t(`meta.${label}`)).join(t("list_sep"));
      lines.push(el("li", { cls: "removed", text: t("removed", { name, what }) }));
    } else {
      lines.push(el("li", { cls: "removed", text: t("nothing_removed", { name }) }));
    }
    prepared.push({
      name: [...sentName(file, type, number, keepNames)].slice(0, 200).join(""),
      original: name,
      type: type.mime,
      blob: result.blob,
      size: result.blob.size,
      removed: result.removed.slice(),
      cleaned: result.cleaned,
    });
    number += 1;
  }
  if (listNode) {
    listNode.replaceChildren(...lines);
    delete listNode.dataset.reviewed;
  }
  return prepared;
}

// ------------------------------------------------------------------------------ page set-up

// The page script runs: the no-script marker (if a browser ever parsed one) must never be
// sent from here.
export function scriptRuns(form) {
  if (form) for (const marker of form.querySelectorAll('[name="sealing"]')) marker.remove();
}

// The page is ready (it encrypts, or it asked the reporter): the "script did not load" notice
// goes. Not earlier, so a script that stops half-way still leaves the notice up.
export function pageReady() {
  const missing = document.getElementById("script-missing");
  if (missing) missing.remove();
}

// Encryption on this device works: only now may the page say so.
export function showDeviceClaims() {
  for (const node of document.querySelectorAll(".device-claim")) {
    node.textContent = t("device_claim");
  }
}

// This browser cannot encrypt: the form may go to the server only if the reporter ticks the
// box (the template holds it, translated), which the browser then requires.
export function offerServerSeal(form) {
  const template = document.getElementById("server-seal-template");
  const button = form.querySelector('button[type="submit"]');
  if (!template || !button) return;
  button.before(template.content.cloneNode(true));
}

// Fresh keys and the sealed description (docs/API.md, "file-meta") of one prepared file,
// for a new report and for evidence added later alike.
export function fileMaterial(file) {
  const fileId = newId();
  const metaId = newId();
  const fileKey = newKey();
  const prefix = newKey().slice(0, 7);
  const meta = {
    name: file.name,
    type: file.type,
    size: file.size,
    key: b64uEncode(fileKey),
    prefix: b64uEncode(prefix),
    removed: file.removed,
    cleaned: file.cleaned,
  };
  return { fileId, metaId, fileKey, prefix, meta };
}

// Seal `file` ({ fileKey, prefix, caseId, fileId, blob, size }) in STREAM chunks and send
// those not in `have` to the API's `path` (.../files/<id>): `batch` chunks a request, `window`
// requests in flight (sendRuns). In a worker (sealworker.js) when the browser starts one, so a
// slow phone's page thread neither reads nor builds the bodies; else here, the same requests.
// `have` grows as the server acknowledges; the first failure is thrown as on the page.
export function sendChunks(path, token, file, have, { batch, window, onStored = () => {} }) {
  const onPage = () => sendRuns(
    sealFile(file.fileKey, file.prefix, file.caseId, file.fileId, file.blob, file.size), have, {
      batch,
      window,
      put: (first, parts) => api("PUT", runPath(path, batch, first, parts.length),
        { raw: new Blob(parts), token }),
      onStored,
    });
  let worker;
  try {
    worker = new Worker(new URL("./sealworker.js", import.meta.url), { type: "module" });
  } catch {
    return onPage();
  }
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      if (data.stored) {
        const [first, count] = data.stored;
        for (let i = first; i < first + count; i++) have.add(i);
        onStored(count, first);
        return;
      }
      worker.terminate();
      if (data.done) resolve();
      else reject(workerError(data.error));
    };
    // The worker could not start (or broke): the rest goes from the page. Whatever it had
    // in flight is sent again, which replaces it (docs/API.md 4.3).
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      onPage().then(resolve, reject);
    };
    worker.postMessage({
      path: API + path,
      headers: apiHeaders(token),
      texts: { network: t("network"), failed: t("failed") },
      batch,
      window,
      have: [...have],
      file: { fileKey: file.fileKey, prefix: file.prefix, caseId: file.caseId,
        fileId: file.fileId, blob: file.blob, size: file.size },
    });
  });
}

// An error posted by sealworker.js, as the page's own request would have thrown it.
function workerError({ api: fromApi, status, code, name, message }) {
  if (fromApi) {
    return status === 0 ? new NetworkError(message) : new ApiError(status, code, message);
  }
  const error = new Error(message);
  error.name = name || "Error";
  return error;
}
