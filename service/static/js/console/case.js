// One case, opened in this browser: the case key from the reviewer's slot, then every sealed
// item; files decrypted to a download; messages and internal notes sealed here before they
// are sent; access given to a colleague by sealing the key to their public key.
// The server never receives a key or a plaintext. Text reaches the page through textContent.
import {
  b64uDecode,
  b64uEncode,
  bytesToHex,
  newId,
  newKey,
  openFile,
  openItem,
  sealItem,
  supportsHybrid,
} from "../crypto/index.js";
import { ApiError, el, saveBlob, showText } from "../common.js";
import {
  errorText,
  markRepliesSeen,
  openSlots,
  sealFor,
  sessionKeysOrNull,
  t,
  whenUnlocked,
} from "./casekit.js";
import { consoleFetch as request } from "./keys.js";

const data = JSON.parse(document.getElementById("case-data").textContent);
const caseId = data.case_id;
const base = `/console/cases/${caseId}`;
const errorBox = document.getElementById("case-error");

// In memory only, for as long as the page is open.
let caseKey = null;
let internalKey = null;
let opened = []; // { ...item, content | null }

// ------------------------------------------------------------------------------ opening

async function openAll() {
  if (caseKey) return;
  if (!data.slot && !data.slot_v2) {
    showText(errorBox, t("no_slot"));
    return;
  }
  const keys = await sessionKeysOrNull();
  if (!keys) {
    showText(errorBox, t("locked"));
    return;
  }
  if (!data.slot && !keys.xwing) {
    // Only a v2 slot, and no X-Wing key in this session: the browser lacks the hybrid.
    showText(errorBox, t("needs_hybrid"));
    return;
  }
  try {
    caseKey = await openSlots(keys, data.slot, data.slot_v2, caseId);
  } catch {
    showText(errorBox, t("decrypt_failed"));
    return;
  }
  if (data.internal_slot || data.internal_slot_v2) {
    try {
      internalKey = await openSlots(keys, data.internal_slot, data.internal_slot_v2, caseId,
        "internal");
    } catch {
      internalKey = null;
    }
  }
  showText(errorBox, "");
  opened = [];
  for (const item of data.items) {
    const key = item.kind === "note" ? internalKey : caseKey;
    let content = null;
    if (key) {
      try {
        content = await openItem(key, caseId, item.id, item.kind, b64uDecode(item.blob));
      } catch {
        content = null;
      }
    }
    opened.push({ ...item, content });
  }
  renderReport();
  renderIdentityButton();
  renderFiles();
  renderConversation();
  renderNotes();
  enableForms();
  markRepliesSeen(caseId, opened.filter(isReply).length);
  pollReplies();
}

// ------------------------------------------------------------------------------ new replies

const POLL_MS = 20_000;
let polling = false;

function isReply(item) {
  return item.kind === "reply" && item.author === "reporter";
}

// A reporter's reply that arrives while the page is open is fetched (sealed), opened with
// the case key held in memory, and added to the conversation; no reload.
async function checkReplies() {
  if (!caseKey || document.hidden) return;
  let answer;
  try {
    answer = await request("GET", `${base}/replies`);
  } catch {
    return; // the next round tries again
  }
  const known = new Set(opened.map((item) => item.id));
  const fresh = (answer.items || []).filter((item) => !known.has(item.id));
  for (const item of fresh) {
    let content = null;
    try {
      content = await openItem(caseKey, caseId, item.id, item.kind, b64uDecode(item.blob));
    } catch {
      content = null;
    }
    opened.push({ ...item, content });
  }
  if (fresh.length) {
    renderConversation();
    showText(document.getElementById("new-reply"), t("new_reply"));
    markRepliesSeen(caseId, opened.filter(isReply).length);
  }
}

function pollReplies() {
  if (polling) return;
  polling = true;
  setInterval(checkReplies, POLL_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) checkReplies();
  });
}

// ------------------------------------------------------------------------------ rendering

function field(list, label, value) {
  if (value === undefined || value === null || value === "") return;
  list.append(el("dt", { text: label }), el("dd", { text: value }));
}

function renderReport() {
  const box = document.getElementById("report");
  const report = opened.find((item) => item.kind === "report");
  if (!report || !report.content) {
    box.replaceChildren(el("p", { cls: "error-box", text: t("decrypt_failed") }));
    return;
  }
  const r = report.content;
  const list = el("dl", { attrs: { id: "report-fields" } });
  field(list, t("label_unit"), r.unit);
  field(list, t("label_location"), r.location);
  const category = `category.${r.category}`;
  field(list, t("label_category"), t(category) !== category ? t(category) : r.category);
  field(list, t("label_seen"), r.seen_at);
  const insider = `insider.${r.insider}`;
  if (r.insider) field(list, t("label_insider"), t(insider) !== insider ? t(insider) : r.insider);
  list.append(el("dt", { text: t("label_description") }),
    el("dd", { cls: "text", text: r.description || "", attrs: { id: "report-description" } }));
  box.replaceChildren(list);
  offerCopy(r);
  // What the reward form can take from the report: passed in the fragment, which never
  // leaves the browser, so the server learns it only if the reviewer proposes with it.
  const reward = document.getElementById("reward-link");
  if (reward && (r.insider === "yes" || r.insider === "no")) {
    reward.href = `${reward.pathname}#insider=${r.insider}`;
  }
}

// One click copies the report's unit and location into the triage fields (plaintext once
// saved): the reviewer sees them filled in and saves, or edits first.
function offerCopy(r) {
  const button = document.getElementById("copy-from-report");
  const unit = document.getElementById("enterprise");
  const place = document.getElementById("location");
  if (!button || !unit || !place || (!r.unit && !r.location)) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    if (r.unit) unit.value = String(r.unit).slice(0, unit.maxLength > 0 ? unit.maxLength : 200);
    if (r.location) {
      place.value = String(r.location).slice(0, place.maxLength > 0 ? place.maxLength : 300);
    }
    const category = document.getElementById("category");
    if (category && !category.value && r.category
        && [...category.options].some((option) => option.value === r.category)) {
      category.value = r.category;
    }
    unit.focus();
  });
}

// The identity is not on the page: the server hands it out only on this click, and records
// the look in the same transaction. Every case has an identity item; one the case key does
// not open is the stand-in of a reporter who gave none (PROTOCOL.md section 6.1).
function renderIdentityButton() {
  const button = document.getElementById("show-identity");
  const target = document.getElementById("identity");
  if (!button || !target || !caseKey) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    let answer;
    try {
      answer = await request("POST", `${base}/identity`, {});
    } catch (error) {
      button.disabled = false;
      showText(errorBox, errorText(error));
      return;
    }
    let content = null;
    for (const item of (answer && answer.items) || []) {
      try {
        content = await openItem(caseKey, caseId, item.id, "identity", b64uDecode(item.blob));
      } catch {
        continue;
      }
      if (content && (content.name || content.contact)) break;
    }
    target.replaceChildren();
    if (!content || !(content.name || content.contact)) {
      target.append(el("dd", { text: t("no_identity"), attrs: { id: "no-identity" } }));
    } else {
      field(target, t("label_name"), content.name);
      field(target, t("label_contact"), content.contact);
    }
    target.append(el("dd", { cls: "hint", text: t("identity_logged") }));
    target.hidden = false;
    button.hidden = true;
  });
}

function renderFiles() {
  const list = document.getElementById("files");
  list.replaceChildren();
  for (const file of data.files) {
    const meta = opened.find((item) => item.id === file.meta_item_id);
    const info = meta && meta.content;
    const name = info && typeof info.name === "string" && info.name ? info.name : file.id.slice(0, 8);
    const button = el("button", { cls: "link", text: `${t("download")}: ${name}`,
      attrs: { type: "button", "data-file-id": file.id } });
    const status = el("span", { cls: "hint", attrs: { role: "status" } });
    status.hidden = true;
    const row = el("li", {}, [button, " ", status]);
    if (info && Array.isArray(info.removed) && info.removed.length) {
      // The labels are stored as the stripping code wrote them (English): shown translated.
      const what = info.removed.map((label) => {
        const key = `stripped.${label}`;
        return t(key) !== key ? t(key) : String(label);
      }).join(t("list_separator"));
      row.append(el("span", { cls: "hint", text: ` ${t("removed", { what })}` }));
    }
    // HEIC photos, videos, documents: the reporter chose to send them as they are.
    if (info && info.cleaned !== true) {
      row.append(el("span", { cls: "hint not-cleaned", text: ` ${t("not_cleaned")}` }));
    }
    if (!info) {
      button.disabled = true;
      showText(status, t("decrypt_failed"));
    } else {
      button.addEventListener("click", () => download(file, info, button, status));
    }
    list.append(row);
  }
}

async function download(file, info, button, status) {
  button.disabled = true;
  showText(status, t("downloading"));
  async function* chunks() {
    for (let i = 0; i < file.chunk_count; i++) {
      yield await request("GET", `${base}/files/${file.id}/chunks/${i}`, undefined,
        { binary: true });
    }
  }
  const parts = [];
  try {
    const fileKey = b64uDecode(info.key);
    const prefix = b64uDecode(info.prefix);
    for await (const part of openFile(fileKey, prefix, caseId, file.id, chunks(), info.size)) {
      parts.push(part.slice());
    }
    fileKey.fill(0);
  } catch (error) {
    // Content yielded before a failure is incomplete: none of it is saved.
    parts.length = 0;
    showText(status, error instanceof ApiError ? errorText(error) : t("file_failed"));
    button.disabled = false;
    return;
  }
  const blob = new Blob(parts, { type: typeof info.type === "string" ? info.type : "" });
  saveBlob(blob, info.name || "file");
  showText(status, "");
  button.disabled = false;
}

function day(iso) {
  return typeof iso === "string" ? iso.slice(0, 16).replace("T", " ") : "";
}

function bubble(item) {
  const who = item.author === "reporter" ? t("reporter") : item.name || t("reviewer");
  // The server formats times (installation's zone, labelled, coarse ones as spans).
  const head = el("p", { cls: "who" }, [who, " · ",
    el("time", { text: item.shown || day(item.created) })]);
  if (item.content && item.content.question) head.append(" · ", el("strong", { text: t("question") }));
  const text = item.content ? String(item.content.text || "") : t("decrypt_failed");
  return el("li", { cls: `msg msg-${item.author}`, attrs: { "data-item-id": item.id } },
    [head, el("p", { cls: "text", text })]);
}

function renderConversation() {
  const list = document.getElementById("messages");
  const items = opened.filter((item) => item.kind === "message" || item.kind === "reply");
  list.replaceChildren(...items.map(bubble));
  if (!items.length) list.append(el("li", { cls: "empty", text: t("no_messages") }));
}

function renderNotes() {
  const list = document.getElementById("notes");
  const items = opened.filter((item) => item.kind === "note");
  list.replaceChildren(...items.map(bubble));
  if (!items.length) list.append(el("li", { cls: "empty", text: t("no_notes") }));
}

function appendItem(item) {
  opened.push(item);
  if (item.kind === "note") renderNotes();
  else renderConversation();
}

// ------------------------------------------------------------------------------ writing

async function sealed(key, kind, content) {
  const id = newId();
  const blob = await sealItem(key, caseId, id, kind, content);
  return { id: bytesToHex(id), blob: b64uEncode(blob) };
}

async function sendMessage(event) {
  event.preventDefault();
  const text = document.getElementById("message-text");
  const question = document.getElementById("message-question");
  const status = document.getElementById("message-status");
  const value = text.value.trim();
  if (!value) return showText(status, t("empty"));
  const content = { v: 1, text: value, question: Boolean(question && question.checked) };
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    const body = await sealed(caseKey, "message", content);
    const done = await request("POST", `${base}/messages`, body);
    appendItem({ id: body.id, kind: "message", author: "reviewer", name: "",
      created: done.created, shown: done.shown, content });
    text.value = "";
    if (question) question.checked = false;
    showText(status, t("sent"));
  } catch (error) {
    showText(status, errorText(error));
  } finally {
    button.disabled = false;
  }
}

async function sendNote(event) {
  event.preventDefault();
  const text = document.getElementById("note-text");
  const status = document.getElementById("note-status");
  const value = text.value.trim();
  if (!value) return showText(status, t("empty"));
  const button = event.target.querySelector("button");
  button.disabled = true;
  let key = internalKey;
  try {
    const body = {};
    if (!key) {
      // The first note creates the internal key, slotted to every reviewer of the line and
      // to the recovery key; never to the reporter.
      key = newKey();
      body.slots = [];
      for (const entry of data.internal_recipients) {
        body.slots.push(await sealFor(entry, key, caseId, "internal"));
      }
    }
    const content = { v: 1, text: value };
    Object.assign(body, await sealed(key, "note", content));
    const done = await request("POST", `${base}/notes`, body);
    internalKey = key;
    data.internal_exists = true;
    appendItem({ id: body.id, kind: "note", author: "reviewer", name: "", created: done.created,
      shown: done.shown, content });
    text.value = "";
    showText(status, t("sent"));
  } catch (error) {
    showText(status, errorText(error));
  } finally {
    button.disabled = false;
  }
}

function fillColleagues() {
  const select = document.getElementById("grant-user");
  const form = document.getElementById("grant-form");
  const none = document.getElementById("no-colleagues");
  if (!select || !form) return;
  // The first, empty option stays: `required` then means a colleague was really chosen.
  select.replaceChildren(select.options[0], ...data.colleagues.map((c) =>
    el("option", { text: c.name, attrs: { value: String(c.user_id) } })));
  form.hidden = data.colleagues.length === 0;
  if (none) none.hidden = data.colleagues.length !== 0;
}

async function grant(event) {
  event.preventDefault();
  const select = document.getElementById("grant-user");
  const status = document.getElementById("grant-status");
  const colleague = data.colleagues.find((c) => String(c.user_id) === select.value);
  if (!colleague) return;
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    const slots = [await sealFor(colleague, caseKey, caseId, "case")];
    if (internalKey) slots.push(await sealFor(colleague, internalKey, caseId, "internal"));
    await request("POST", `${base}/grants`, { user_id: colleague.user_id, slots });
    data.colleagues = data.colleagues.filter((c) => c !== colleague);
    fillColleagues();
    showText(status, t("granted", { name: colleague.name }));
  } catch (error) {
    showText(status, errorText(error));
  } finally {
    button.disabled = false;
  }
}

// Classical slots of holders that now have an X-Wing key: sealed again, v2, with the keys
// this page holds; the server then removes the v1 slots (PROTOCOL 17.8).
async function reslotCase() {
  const button = document.getElementById("reslot-button");
  const status = document.getElementById("reslot-status");
  button.disabled = true;
  try {
    const slots = [];
    for (const target of data.reslot) {
      const key = target.purpose === "internal" ? internalKey : caseKey;
      // Offered only where this browser has the hybrid: sealFor seals v2 (and checks the id).
      if (key) slots.push(await sealFor(target, key, caseId, target.purpose));
    }
    const done = await request("POST", `${base}/reslot`, { slots });
    data.reslot = [];
    button.hidden = true;
    showText(status, t("reslotted", { count: String(done.replaced) }));
    if (!done.classical_only) {
      for (const badge of document.querySelectorAll(".badge.classical")) badge.hidden = true;
    }
  } catch (error) {
    showText(status, errorText(error));
    button.disabled = false;
  }
}

async function offerReslot() {
  const panel = document.getElementById("reslot-panel");
  if (!panel || !data.reslot || !data.reslot.length) return;
  panel.hidden = false;
  const button = document.getElementById("reslot-button");
  if (!(await supportsHybrid())) {
    button.hidden = true;
    showText(document.getElementById("reslot-status"), t("reslot_needs_hybrid"));
    return;
  }
  button.addEventListener("click", reslotCase);
}

function enableForms() {
  if (!data.can_write || !caseKey) return;
  const message = document.getElementById("message-form");
  const note = document.getElementById("note-form");
  const grantForm = document.getElementById("grant-form");
  if (message) {
    message.hidden = false;
    message.addEventListener("submit", sendMessage);
  }
  // Without the internal key, a note can only be written if none exists yet.
  if (note && (internalKey || !data.internal_exists)) {
    note.hidden = false;
    note.addEventListener("submit", sendNote);
  }
  if (grantForm) {
    fillColleagues();
    grantForm.addEventListener("submit", grant);
  }
  offerReslot().catch((error) => console.warn(error));
}

whenUnlocked(openAll).catch((error) => showText(errorBox, errorText(error)));
