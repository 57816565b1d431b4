// The case list: each row carries this reviewer's key slot and the sealed report; the report
// is opened here, in the browser, to show a one-line summary. Also exports the small helpers
// case.js shares (messages, requests, summaries). Text reaches the page through textContent only.
import { b64uDecode, openItem, openKey } from "../crypto/index.js";
import * as keys from "./keys.js";

// ------------------------------------------------------------------------------ messages

let table = null;

export function t(key, params = {}) {
  if (table === null) {
    const island = document.getElementById("case-messages");
    try {
      table = island ? JSON.parse(island.textContent) || {} : {};
    } catch {
      table = {};
    }
  }
  const template = Object.hasOwn(table, key) ? table[key] : key;
  return String(template).replace(/\{([a-z_]+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole,
  );
}

export function showText(node, text) {
  if (!node) return;
  node.textContent = text || "";
  node.hidden = !text;
}

export function el(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (attrs) for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// ------------------------------------------------------------------------------ requests

// One request helper and one ApiError for the whole console (keys.js), so `instanceof`
// holds whichever script made the request.
export const ApiError = keys.ApiError;

export function request(method, path, json, options) {
  return keys.consoleFetch(method, path, json, options);
}

export function errorText(error) {
  if (error instanceof ApiError) return error.message;
  return t("failed", { message: error && error.message ? error.message : String(error) });
}

// ------------------------------------------------------------------------------ keys

// The unlocked private key, or null (and the page says why) when the store is locked.
export async function privateKeyOrNull() {
  try {
    const { privateKey } = await keys.getPrivateKey();
    return privateKey;
  } catch (error) {
    if (typeof keys.initKeyStatus === "function") {
      await keys.initKeyStatus().catch(() => {});
    }
    const status = document.getElementById("key-status");
    if (status && status.hidden) showText(status, t("locked"));
    if (!(error instanceof keys.LockedError)) console.warn("key store:", error);
    return null;
  }
}

// Run `work` now and again whenever the key store is unlocked on this page.
export function whenUnlocked(work) {
  document.addEventListener("chuishao:unlocked", () => {
    work().catch((error) => console.warn(error));
  });
  return work();
}

// ------------------------------------------------------------------------------ summaries

function firstWords(text, limit = 40) {
  const flat = String(text || "").replace(/\s+/g, " ").trim();
  return flat.length > limit ? `${flat.slice(0, limit)}…` : flat;
}

// category + unit + the first words of the description, on one line.
export function summaryOf(report) {
  const parts = [];
  const category = typeof report.category === "string" ? `category.${report.category}` : "";
  if (category && t(category) !== category) parts.push(t(category));
  if (report.unit) parts.push(firstWords(report.unit, 40));
  if (report.description) parts.push(firstWords(report.description));
  return parts.join(" · ");
}

// ------------------------------------------------------------------------------ the list

async function decryptRows() {
  const rows = [...document.querySelectorAll("tr.case-row")];
  if (!rows.some((row) => row.dataset.slot && row.dataset.itemId)) return;
  const privateKey = await privateKeyOrNull();
  if (!privateKey) return;
  for (const row of rows) {
    const { caseId, slot, itemId, itemBlob } = row.dataset;
    if (!slot || !itemId || !itemBlob || row.dataset.decrypted === "1") continue;
    const target = row.querySelector(".summary-text");
    let caseKey = null;
    try {
      caseKey = await openKey(b64uDecode(slot), privateKey, caseId);
      const report = await openItem(caseKey, caseId, itemId, "report", b64uDecode(itemBlob));
      target.textContent = summaryOf(report);
      row.dataset.decrypted = "1";
    } catch {
      target.title = t("decrypt_failed");
      row.dataset.decrypted = "0";
    } finally {
      if (caseKey) caseKey.fill(0);
    }
  }
}

if (document.getElementById("case-table")) {
  whenUnlocked(decryptRows).catch((error) => console.warn(error));
}

// ------------------------------------------------------------------------------ unread replies

// How many of the reporter's replies this browser has shown for a case: kept here, in this
// browser only, so the server learns nothing about who read what.
const SEEN = "chuishao.replies-seen.";

export function repliesSeen(caseId) {
  try {
    const value = window.localStorage.getItem(SEEN + caseId);
    return value === null ? null : Number(value);
  } catch {
    return null;
  }
}

export function markRepliesSeen(caseId, count) {
  try {
    window.localStorage.setItem(SEEN + caseId, String(count));
  } catch {
    // Storage refused (private mode): the marker simply does not show.
  }
}

function markUnread() {
  for (const row of document.querySelectorAll("tr.case-row[data-replies]")) {
    const count = Number(row.dataset.replies || "0");
    const seen = repliesSeen(row.dataset.caseId);
    const marker = row.querySelector(".unread");
    const unread = count > (seen === null ? 0 : seen);
    if (marker) marker.hidden = !unread;
    row.dataset.unread = unread ? "1" : "0";
  }
}

markUnread();
