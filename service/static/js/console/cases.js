// The case list: each row carries this reviewer's key slot and the sealed report; the report
// is opened here, in the browser, to show a one-line summary. Text reaches the page through
// textContent only.
import { b64uDecode, openItem } from "../crypto/index.js";
import { openSlots, repliesSeen, sessionKeysOrNull, t, whenUnlocked } from "./casekit.js";

// ------------------------------------------------------------------------------ summaries

function firstWords(text, limit = 40) {
  const flat = String(text || "").replace(/\s+/g, " ").trim();
  return flat.length > limit ? `${flat.slice(0, limit)}…` : flat;
}

// category + unit + the first words of the description, on one line.
function summaryOf(report) {
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
  if (!rows.some((row) => (row.dataset.slot || row.dataset.slotV2) && row.dataset.itemId)) return;
  const keys = await sessionKeysOrNull();
  if (!keys) return;
  for (const row of rows) {
    const { caseId, slot, slotV2, itemId, itemBlob } = row.dataset;
    if ((!slot && !slotV2) || !itemId || !itemBlob || row.dataset.decrypted === "1") continue;
    const target = row.querySelector(".summary-text");
    let caseKey = null;
    try {
      caseKey = await openSlots(keys, slot, slotV2, caseId);
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
