// The reporter's way back, opened on the reporter's device (progressive enhancement of
// form#followup-form). The receipt never leaves the browser: it derives the reporter's private
// key and the lookup secret; the server hands out the sealed feed, which is opened here.
// Replies and new evidence are sealed with the case key before they are sent.
import {
  ApiError, el, hasX25519, retryable, saveBlob, showText, UserError,
} from "./common.js";
import {
  b64uDecode,
  b64uEncode,
  bytesToHex,
  deriveReceipt,
  newId,
  normalizeReceipt,
  OpenError,
  openFile,
  ReceiptMistyped,
  openItem,
  openSlot,
  sealItem,
  storedLayout,
  SUITE,
  SUITE_V2,
  supportsHybrid,
} from "./crypto/core.js";
import { solve, StampReserve } from "./pow.js";
import {
  api,
  cleanText,
  errorText,
  fileMaterial,
  has,
  offerServerSeal,
  pageReady,
  plainRemoved,
  prepareFiles,
  reviewFiles,
  scriptRuns,
  sendChunks,
  showDeviceClaims,
  t,
} from "./ui.js";

const REPLY_LIMIT = 20000;
const EVENT_PARAMS = ["reason", "result", "deadline", "amount"];

const form = document.getElementById("followup-form");
const panel = document.getElementById("case-panel");
const formError = document.getElementById("form-error");
const formProgress = document.getElementById("progress-text");

// Everything about the opened case lives here, in memory only.
let session = null; // { token, caseId (bytes), caseIdHex, caseKey, limits }
let busy = false;
// The stamp to open a case is solved while the reporter types the receipt.
const stamps = new StampReserve(() => api("GET", "/pow"));

// The reporter's slot is v2 and this browser lacks the hybrid: only the server can open it.
class NeedsServer extends UserError {}

// --------------------------------------------------------------------------- opening

function receiptFormatMessage() {
  if (has("receipt_format")) return t("receipt_format");
  // The page's own instruction ("Enter the receipt you received ...") says what a receipt is.
  const intro = form.previousElementSibling;
  return intro && intro.tagName === "P" ? intro.textContent.trim() : t("failed", { message: "" });
}

async function openCase(receiptText) {
  let digits;
  try {
    digits = normalizeReceipt(receiptText);
  } catch (e) {
    // Said at once, before any request: a check digit that does not match means a mistyped
    // or swapped digit, which the reporter can look for in what they typed.
    if (e instanceof ReceiptMistyped && has("receipt_mistyped")) {
      throw new UserError(t("receipt_mistyped"));
    }
    throw new UserError(receiptFormatMessage());
  }
  formProgress.textContent = t("opening");
  const info = await api("GET", "/channels");
  if (!info.installation) throw new ApiError(503, "not_initialised", t("failed", { message: "" }));
  const keys = await deriveReceipt(digits, b64uDecode(info.installation.salt),
    info.installation.receipt_iterations, { hybrid: await supportsHybrid() });
  formProgress.textContent = t("pow");
  const stamp = await stamps.take();
  formProgress.textContent = t("opening");
  const started = await api("POST", "/followup/session", {
    json: { lookup_secret: b64uEncode(keys.lookupSecret), pow: stamp },
  });
  const feed = await api("GET", "/followup", { token: started.token });
  // The slot opens with the receipt key of the suite the feed names (PROTOCOL 17.7).
  const suite = feed.slot_suite || SUITE;
  if (suite === SUITE_V2 && keys.xwingPrivateKey === null) throw new NeedsServer(t("no_hybrid"));
  let caseKey;
  try {
    if (!feed.slot) throw new OpenError();
    caseKey = await openSlot(suite, b64uDecode(feed.slot),
      suite === SUITE_V2 ? keys.xwingPrivateKey : keys.privateKey, feed.case_id, "case");
  } catch {
    throw new UserError(t("decrypt_failed"));
  }
  session = {
    token: started.token,
    caseIdHex: feed.case_id,
    caseKey,
    limits: info.limits,
    powFreeBytes: info.pow_free_bytes,
    // Kept in memory for the claim code of a reward (PROTOCOL.md section 15).
    lookupSecret: keys.lookupSecret,
  };
  return feed;
}

async function openItems(feed) {
  const opened = [];
  for (const item of feed.items) {
    let content = null;
    try {
      content = await openItem(session.caseKey, session.caseIdHex, item.id, item.kind,
        b64uDecode(item.blob));
    } catch {
      content = null;
    }
    opened.push({ ...item, content });
  }
  return opened;
}

// --------------------------------------------------------------------------- rendering

function eventText(event) {
  const key = `event.${event.kind}`;
  if (!has(key)) return null;
  const data = event.data && typeof event.data === "object" ? event.data : {};
  const params = {};
  for (const name of EVENT_PARAMS) {
    if (Object.hasOwn(data, name) && data[name] !== null) params[name] = String(data[name]);
  }
  // A reason or result chosen from a list is shown in the reader's language, not the
  // language the reviewer's installation happened to store it in.
  for (const name of ["reason", "result"]) {
    const code = data[`${name}_code`];
    if (typeof code === "string" && has(`${name}.${code}`)) params[name] = t(`${name}.${code}`);
  }
  const text = t(key, params);
  // A placeholder without data: keep the sentence before it, as the server's page does.
  if (/\{[a-z_]+\}/.test(text)) return t(key).split(/[:：]/)[0];
  // A refusal carries the reviewers' own words besides the listed reason.
  if (event.kind === "not_accepted" && typeof data.note === "string" && data.note) {
    return t("event_note", { text, note: data.note });
  }
  return text;
}

function day(iso) {
  return typeof iso === "string" ? iso.slice(0, 10) : "";
}

function renderEvents(feed) {
  const list = el("ol", { attrs: { id: "events" } });
  for (const event of feed.events) {
    const text = eventText(event);
    if (!text) continue;
    list.append(el("li", {}, [el("time", { text: day(event.created) }), ` ${text}`]));
  }
  return el("section", { cls: "timeline" }, [el("h2", { text: t("events_title") }), list]);
}

function renderMessages(items) {
  const list = el("ol", { cls: "messages", attrs: { id: "messages" } });
  for (const item of items) {
    if (item.kind !== "message" && item.kind !== "reply") continue;
    const reviewer = item.author === "reviewer";
    const who = el("p", { cls: "who" }, [
      reviewer ? t("reviewers") : t("you"),
      " · ",
      el("time", { text: day(item.created) }),
    ]);
    const li = el("li", { cls: `msg msg-${reviewer ? "reviewer" : "reporter"}` }, [who]);
    if (item.content === null) {
      li.append(el("p", { cls: "text error", text: t("decrypt_failed") }));
    } else {
      if (item.content.question === true) {
        li.classList.add("question");
        who.append(" · ", el("strong", { text: t("question") }));
      }
      li.append(el("p", { cls: "text", text: String(item.content.text ?? "") }));
    }
    li.dataset.id = item.id;
    list.append(li);
  }
  if (!list.children.length) list.append(el("li", { cls: "empty", text: t("no_messages") }));
  return el("section", { cls: "conversation" }, [el("h2", { text: t("messages_title") }), list]);
}

function renderReport(items, files) {
  const section = el("section", { cls: "report-copy" }, [el("h2", { text: t("report_title") })]);
  const report = items.find((i) => i.kind === "report");
  if (report && report.content) {
    const r = report.content;
    const category = typeof r.category === "string" && has(`category.${r.category}`)
      ? t(`category.${r.category}`) : "";
    const rows = [
      ["label_unit", r.unit],
      ["label_location", r.location],
      ["label_category", category],
      ["label_seen", r.seen_at],
      ["label_description", r.description],
    ];
    const dl = el("dl", { attrs: { id: "report-copy" } });
    for (const [label, value] of rows) {
      dl.append(el("dt", { text: t(label) }),
        el("dd", { cls: label === "label_description" ? "text" : "", text: String(value ?? "") }));
    }
    section.append(dl);
  } else if (report) {
    section.append(el("p", { cls: "error", text: t("decrypt_failed") }));
  }
  const metas = new Map(items.filter((i) => i.kind === "file-meta").map((i) => [i.id, i.content]));
  if (files.length) {
    const list = el("ul", { cls: "files", attrs: { id: "files" } });
    for (const file of files) {
      const meta = metas.get(file.meta_item_id);
      const li = el("li");
      if (!meta) {
        li.append(el("span", { cls: "error", text: t("decrypt_failed") }));
      } else {
        const button = el("button", { cls: "link download", text: `${t("download")}: ${meta.name || "file"}`,
          attrs: { type: "button" } });
        button.dataset.file = file.id;
        const note = el("span", { cls: "hint" });
        button.addEventListener("click", () => download(file, meta, button, note));
        li.append(button, " ", note);
        // What was removed from it, in the receipt's plain words (as the no-JS page says).
        if (Array.isArray(meta.removed) && meta.removed.length) {
          li.append(el("p", { cls: "hint removed",
            text: t("receipt_removed", { name: meta.name || "file", what: plainRemoved(meta.removed) }) }));
        }
      }
      list.append(li);
    }
    section.append(el("h3", { text: t("files_title") }), list);
  }
  return section;
}

function renderReplyForm(items, fileCount) {
  const lastQuestion = items.filter((i) => i.kind === "message" && i.author === "reviewer" &&
    i.content && i.content.question === true).pop();
  const text = el("textarea", { attrs: { id: "reply-text", name: "text", rows: 5,
    maxlength: REPLY_LIMIT } });
  const files = el("input", { attrs: { id: "reply-files", name: "files", type: "file",
    multiple: "" } });
  const report = el("ul", { cls: "file-report", attrs: { id: "reply-file-report",
    "aria-live": "polite" } });
  const keepNames = el("input", { attrs: { id: "reply-keep-names", name: "keep_names",
    type: "checkbox", value: "1" } });
  const error = el("p", { cls: "error-box", attrs: { id: "reply-error", role: "alert" } });
  error.hidden = true;
  const progress = el("p", { attrs: { id: "reply-progress", "aria-live": "polite" } });
  const send = el("button", { text: t("send"), attrs: { id: "reply-send", type: "submit" } });
  const replyForm = el("form", { attrs: { id: "reply-form" } }, [
    el("label", { text: t("reply_label"), attrs: { for: "reply-text" } }),
    text,
    el("label", { text: t("reply_files"), attrs: { for: "reply-files" } }),
    files,
    el("label", { cls: "choice" }, [keepNames, ` ${t("keep_names")}`]),
    report,
    error,
    progress,
    send,
  ]);
  files.addEventListener("change", () => {
    reviewFiles(files.files, report).catch((failure) => showText(error, errorText(failure)));
  });
  replyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sendReply({ text, files, report, error, progress, send, keepNames, fileCount },
      lastQuestion ? lastQuestion.id : null);
  });
  return el("section", { cls: "reply" }, [el("h2", { text: t("reply_title") }), replyForm]);
}

function render(feed, items, notice) {
  const statusKey = has(`status.${feed.status}`) ? `status.${feed.status}` : "status.new";
  const children = [];
  if (notice) children.push(el("p", { cls: "notice", text: notice, attrs: { role: "status",
    id: "case-notice" } }));
  children.push(
    el("p", { cls: "status" }, [
      `${t("status_label")} `,
      el("strong", { text: t(statusKey), attrs: { id: "case-status" } }),
    ]),
    // As the page without JavaScript says it: the week, never the day it was sent.
    el("p", { cls: "hint", text: t("reported_week", { date: day(feed.created) }) }),
    renderEvents(feed),
    renderMessages(items),
    renderReport(items, feed.files),
  );
  const rewards = el("section", { cls: "rewards", attrs: { id: "rewards" } });
  rewards.hidden = true;
  children.push(rewards, renderReplyForm(items, feed.files.length));
  panel.replaceChildren(...children);
  panel.hidden = false;
  // Fetched once a case is open, not with the page: most reports never have a reward, and
  // the page a worker opens first stays small.
  import("./claim.js")
    .then(({ showRewards }) => showRewards(rewards, { token: session.token,
      lookupSecret: session.lookupSecret }))
    .catch((error) => {
      showText(rewards, errorText(error));
    });
}

async function reload(notice) {
  const feed = await api("GET", "/followup", { token: session.token });
  render(feed, await openItems(feed), notice);
}

// --------------------------------------------------------------------------- files

async function download(file, meta, button, note) {
  if (busy) return;
  busy = true;
  button.disabled = true;
  note.textContent = t("opening");
  const parts = [];
  try {
    const token = session.token;
    async function* chunks() {
      for (let i = 0; i < file.chunk_count; i++) {
        yield await api("GET", `/followup/files/${file.id}/chunks/${i}`, { token, binary: true });
      }
    }
    for await (const piece of openFile(b64uDecode(meta.key), b64uDecode(meta.prefix),
      session.caseIdHex, file.id, chunks(), meta.size)) {
      parts.push(piece);
    }
  } catch (error) {
    parts.length = 0; // incomplete plaintext is never handed out
    if (error instanceof ApiError && error.code === "followup_expired") {
      busy = false;
      expired(error);
      return;
    }
    note.textContent = error instanceof OpenError ? t("decrypt_failed") : errorText(error);
    button.disabled = false;
    busy = false;
    return;
  }
  const blob = new Blob(parts, { type: "application/octet-stream" });
  parts.length = 0;
  saveBlob(blob, String(meta.name || "file"));
  note.textContent = "";
  button.disabled = false;
  busy = false;
}

// Batches in flight at once, and times an interrupted file upload is resumed.
const UPLOAD_WINDOW = 3;
const RESUME_ATTEMPTS = 3;

async function sendFile(file, progress) {
  const caseId = session.caseIdHex;
  const { fileId, metaId, fileKey, prefix, meta } = fileMaterial(file);
  const blob = await sealItem(session.caseKey, caseId, metaId, "file-meta", meta);
  const { storedSize, chunkCount } = storedLayout(file.size);
  const id = bytesToHex(fileId);
  // A file larger than the free allowance carries a stamp priced on its size (docs/API.md).
  let pow;
  if (storedSize > (session.powFreeBytes || 0)) {
    const challenge = await api("GET", `/pow?bytes=${storedSize}`);
    pow = await solve(challenge.challenge, challenge.difficulty);
  }
  await api("POST", "/followup/files", {
    token: session.token,
    json: {
      file: { id, meta_item_id: bytesToHex(metaId), stored_size: storedSize,
        chunk_count: chunkCount },
      meta: { id: bytesToHex(metaId), blob: b64uEncode(blob) },
      pow,
    },
  });
  const batch = (session.limits && session.limits.batch_chunks) || 1;
  const path = `/followup/files/${id}`;
  const have = new Set();
  for (let attempt = 0; ; attempt++) {
    try {
      await sendChunks(path, session.token,
        { fileKey, prefix, caseId, fileId, blob: file.blob, size: file.size }, have, {
          batch,
          window: UPLOAD_WINDOW,
          onStored: () => progress(have.size, chunkCount),
        });
      break;
    } catch (error) {
      if (!retryable(error) || attempt >= RESUME_ATTEMPTS) throw error;
      // Interrupted: wait, ask the server what it holds, send only the rest.
      await new Promise((resolve) => { setTimeout(resolve, 2000 * (attempt + 1)); });
      const state = await api("GET", path, { token: session.token });
      have.clear();
      for (const i of state.received) have.add(i);
    }
  }
  await api("POST", `${path}/finish`, { json: {}, token: session.token });
}

// --------------------------------------------------------------------------- replying

async function sendReply(ui, inReplyTo) {
  if (busy) return;
  busy = true;
  ui.send.disabled = true;
  showText(ui.error, "");
  try {
    const { text, tooLong } = cleanText(ui.text.value, REPLY_LIMIT);
    if (tooLong) throw new UserError(t("failed", { message: String(REPLY_LIMIT) }));
    const chosen = ui.files.files;
    if (!text && !(chosen && chosen.length)) {
      ui.text.focus();
      return;
    }
    ui.progress.textContent = t("stripping");
    const files = await prepareFiles(chosen, session.limits, ui.report,
      { keepNames: ui.keepNames.checked, firstNumber: ui.fileCount + 1 });
    ui.progress.textContent = t("sealing");
    if (text) {
      const body = { v: 1, text };
      if (inReplyTo) body.in_reply_to = inReplyTo;
      const itemId = newId();
      const blob = await sealItem(session.caseKey, session.caseIdHex, itemId, "reply", body);
      await api("POST", "/followup/items", {
        token: session.token,
        json: { id: bytesToHex(itemId), kind: "reply", blob: b64uEncode(blob) },
      });
    }
    for (const file of files) {
      await sendFile(file, (done, total) => {
        ui.progress.textContent = t("uploading", { percent: Math.floor((100 * done) / total) });
      });
    }
    await reload(t("sent"));
  } catch (error) {
    ui.progress.textContent = "";
    if (error instanceof ApiError && error.code === "followup_expired") {
      expired(error);
      return;
    }
    showText(ui.error, errorText(error));
  } finally {
    busy = false;
    ui.send.disabled = false;
  }
}

const title = document.getElementById("followup-title").textContent;

// The session ended (it is short on purpose): forget the case key, ask for the receipt again.
function expired(error) {
  session = null;
  panel.replaceChildren();
  panel.hidden = true;
  form.hidden = false;
  document.getElementById("followup-title").textContent = title;
  document.getElementById("followup-intro").hidden = false;
  showText(formError, errorText(error));
  form.elements.namedItem("receipt").focus();
}

// --------------------------------------------------------------------------- the receipt form

async function onSubmit(event) {
  event.preventDefault();
  if (busy) return;
  busy = true;
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  showText(formError, "");
  const input = form.elements.namedItem("receipt");
  try {
    const feed = await openCase(input.value);
    const items = await openItems(feed);
    // The receipt is no longer needed on the page.
    input.value = "";
    form.hidden = true;
    // What the page is now: the report itself, as the page without JavaScript says.
    document.getElementById("followup-title").textContent = t("your_report");
    document.getElementById("followup-intro").hidden = true;
    formProgress.textContent = "";
    render(feed, items);
    panel.setAttribute("tabindex", "-1");
    panel.focus();
  } catch (error) {
    formProgress.textContent = "";
    showText(formError, errorText(error));
    if (error instanceof NeedsServer) {
      // As without X25519: the form posts to the server once the reporter ticks the box.
      form.removeEventListener("submit", onSubmit);
      delete form.dataset.enhanced;
      offerServerSeal(form);
    }
  } finally {
    busy = false;
    if (button) button.disabled = false;
  }
}

async function init() {
  if (!form || !panel) return;
  scriptRuns(form);
  if (!(await hasX25519())) {
    showText(formError, t("no_crypto"));
    offerServerSeal(form);
    pageReady();
    return; // the form posts to the server once the reporter ticks the box
  }
  if (form.dataset.requireV2 === "true" && !(await supportsHybrid())) {
    // Every case of an installation that requires v2 has a v2 reporter slot, which this
    // browser cannot open: said before the receipt is typed, as on the report page.
    showText(formError, t("pq_required_followup"));
    offerServerSeal(form);
    pageReady();
    return;
  }
  form.addEventListener("submit", onSubmit);
  showDeviceClaims();
  form.dataset.enhanced = "true";
  pageReady();
  stamps.fill();
}

init();
