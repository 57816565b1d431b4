// The report form, encrypted on the reporter's device (progressive enhancement of
// form#report-form). Follows the same steps as service/client.py and service/domain/sealing.py:
// fetch the channel's keys, make the receipt, seal the report, identity and file descriptions
// under a fresh case key slotted to every recipient and to the receipt key, solve the
// proof-of-work, send the envelope, upload the sealed file chunks one by one, finish.
// Without JavaScript the form posts to the server with a marker only a script-free browser
// sends; without WebCrypto X25519 it does so only once the reporter ticks a box.
import {
  ApiError, el, hasX25519, retryable, showText, UserError,
} from "./common.js";
import {
  b64uDecode,
  b64uEncode,
  bytesToHex,
  deriveReceipt,
  formatReceipt,
  keyId,
  KeyIdMismatch,
  newId,
  newKey,
  newReceipt,
  recipientKey,
  sealFile,
  sealItem,
  sealSlot,
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
  offerServerSeal,
  pageReady,
  plainRemoved,
  prepareFiles,
  reviewFiles,
  scriptRuns,
  sendChunks,
  serverLanguage,
  showDeviceClaims,
  t,
} from "./ui.js";

// Field limits of service/domain/reportform.py (LIMITS).
const LIMITS = {
  unit: 200,
  location: 300,
  description: 20000,
  seen_at: 100,
  name: 100,
  contact: 200,
};
const CATEGORIES = ["hazard", "violation", "concealed_accident", "other"];
const INSIDER = ["yes", "no", ""];

const form = document.getElementById("report-form");
const ui = form && {
  error: document.getElementById("form-error"),
  progress: document.getElementById("progress"),
  bar: document.getElementById("progress-bar"),
  text: document.getElementById("progress-text"),
  resume: document.getElementById("resume-upload"),
  resend: document.getElementById("resend-report"),
  discard: document.getElementById("discard-upload"),
  submit: document.getElementById("submit-report"),
  fileReport: document.getElementById("file-report"),
  files: document.getElementById("f-files"),
};

// The upload in progress, kept so that an interrupted one can be resumed or discarded.
let pending = null;
// A sealed report the server could not store (storage full, server unreachable): kept in
// this page only, in memory, so that it can be sent again unchanged.
let held = null;
let busy = false;
// What does not depend on what the reporter types is made while they type: the receipt, its
// derivation (600 000 PBKDF2 iterations) and a stamp. Sending then only seals and sends.
const stamps = new StampReserve(() => api("GET", "/pow"));
let preparing = null; // Promise of { info, receipt, keys }
let receiptReady = false;

function status(text, percent) {
  ui.progress.hidden = false;
  ui.text.textContent = text;
  if (percent === undefined) ui.bar.removeAttribute("value");
  else ui.bar.value = percent;
}

function fail(text) {
  showText(ui.error, text);
  ui.error.scrollIntoView({ block: "nearest" });
}

function setBusy(on) {
  busy = on;
  ui.submit.disabled = on;
  for (const field of form.elements) {
    if (field.type !== "button") field.readOnly = on;
  }
}

// --------------------------------------------------------------------------- reading the form

function radioValue(name) {
  const checked = form.querySelector(`input[type="radio"][name="${name}"]:checked`);
  return checked ? checked.value : null;
}

// A required field that is empty once cleaned: let the browser say so, next to the field.
function refuseEmpty(fieldName) {
  const field = form.elements.namedItem(fieldName);
  const node = field instanceof RadioNodeList ? field[0] : field;
  if (node && "value" in node && !(field instanceof RadioNodeList)) node.value = "";
  if (node && node.focus) node.focus();
  // The same translated words the server uses for the same refusal.
  throw new UserError(t(`refuse.${fieldName}`));
}

function readForm() {
  const channel = radioValue("channel");
  if (!channel) refuseEmpty("channel");
  const values = {};
  for (const [name, limit] of Object.entries(LIMITS)) {
    const field = form.elements.namedItem(name);
    const { text, tooLong } = cleanText(field ? field.value : "", limit);
    if (tooLong) {
      if (field && field.focus) field.focus();
      throw new UserError(t("too_long", { limit }));
    }
    values[name] = text;
  }
  if (!values.unit) refuseEmpty("unit");
  if (!values.description) refuseEmpty("description");
  const category = form.elements.namedItem("category").value;
  if (!CATEGORIES.includes(category)) refuseEmpty("category");
  const insider = radioValue("insider") || "";
  if (!INSIDER.includes(insider)) refuseEmpty("insider");
  const report = {
    v: 1,
    unit: values.unit,
    location: values.location,
    category,
    description: values.description,
    seen_at: values.seen_at,
    insider,
    language: serverLanguage(),
  };
  const identity = values.name || values.contact
    ? { v: 1, name: values.name, contact: values.contact }
    : null;
  return { channel, report, identity };
}

// --------------------------------------------------------------------------- sealing

async function sealEnvelope(info, channelId, keys, report, identity, files) {
  const channel = info.channels.find((c) => c.id === channelId);
  if (!channel) throw new ApiError(400, "unknown_channel", t("failed", { message: channelId }));
  const caseId = newId();
  const caseKey = newKey();
  const slots = [];
  // With the hybrid (the receipt then has an X-Wing key): v2 to every recipient with an
  // X-Wing key and to the reporter, v1 to the rest; without it v1 everywhere (PROTOCOL 17.7).
  const hybrid = keys.xwingPublic !== null;
  // Required since the page was loaded: never seal classically for such an installation.
  if (!hybrid && info.require_v2) throw new UserError(t("pq_required"));
  const slotFor = async (suite, publicRaw, expectedId) => {
    const id = bytesToHex(await keyId(publicRaw));
    if (expectedId !== undefined && id !== expectedId) {
      throw new UserError(t("failed", { message: "key id" }));
    }
    return {
      purpose: "case",
      suite,
      key_id: id,
      slot: b64uEncode(await sealSlot(suite, caseKey, publicRaw, caseId, "case")),
    };
  };
  for (const recipient of channel.recipients) {
    let chosen;
    try {
      chosen = await recipientKey(recipient, hybrid);
    } catch (problem) {
      if (problem instanceof KeyIdMismatch) throw new UserError(t("failed", { message: "key id" }));
      throw problem;
    }
    slots.push(await slotFor(chosen.suite, chosen.publicKey, chosen.keyId));
  }
  slots.push(hybrid ? await slotFor(SUITE_V2, keys.xwingPublic)
    : await slotFor(SUITE, keys.publicKey));
  const item = async (kind, obj, id = newId()) => ({
    id: bytesToHex(id),
    kind,
    blob: b64uEncode(await sealItem(caseKey, caseId, id, kind, obj)),
  });
  const items = [await item("report", report)];
  if (identity) items.push(await item("identity", identity));
  const specs = [];
  const uploads = [];
  for (const file of files) {
    const { fileId, metaId, fileKey, prefix, meta } = fileMaterial(file);
    items.push(await item("file-meta", meta, metaId));
    const { storedSize, chunkCount } = storedLayout(file.size);
    specs.push({
      id: bytesToHex(fileId),
      meta_item_id: bytesToHex(metaId),
      stored_size: storedSize,
      chunk_count: chunkCount,
    });
    uploads.push({ id: bytesToHex(fileId), fileId, fileKey, prefix, blob: file.blob,
      size: file.size, chunkCount });
  }
  // Small files travel inside the submission itself: one request, nothing to resume.
  const inlineLimit = (info.limits && info.limits.inline_bytes) || 0;
  if (specs.length && specs.reduce((n, s) => n + s.stored_size, 0) <= inlineLimit) {
    for (const [i, u] of uploads.entries()) {
      const chunks = [];
      for await (const chunk of sealFile(u.fileKey, u.prefix, caseId, u.fileId, u.blob, u.size)) {
        chunks.push(b64uEncode(chunk));
      }
      specs[i].chunks = chunks;
    }
  }
  const envelope = {
    channel: channel.id,
    case_id: bytesToHex(caseId),
    lookup_hash: bytesToHex(keys.lookupHash),
    slots,
    items,
    files: specs,
  };
  const batch = (info.limits && info.limits.batch_chunks) || 1;
  return { envelope, caseId, uploads, batch };
}

// The stamp is priced on the declared size of the files (docs/API.md): one more bit each time
// the size doubles beyond the installation's free allowance. Within the allowance the stamp
// prepared while the form was filled is used.
async function proofOfWork(declaredBytes = 0, freeBytes = 0) {
  status(t("pow"), 0);
  const onProgress = ({ solved, puzzles }) =>
    status(t("pow"), Math.floor((100 * solved) / puzzles));
  if (declaredBytes <= freeBytes) return stamps.take(onProgress);
  const challenge = await api("GET", `/pow?bytes=${declaredBytes}`);
  return solve(challenge.challenge, challenge.difficulty, { onProgress });
}

async function makeReceipt() {
  const info = await api("GET", "/channels");
  if (!info.installation) throw new ApiError(503, "not_initialised", t("failed", { message: "" }));
  const receipt = newReceipt();
  const salt = b64uDecode(info.installation.salt);
  const keys = await deriveReceipt(receipt, salt, info.installation.receipt_iterations,
    { hybrid: await supportsHybrid() });
  return { info, receipt, keys };
}

function prepare() {
  if (preparing) return;
  receiptReady = false;
  const job = makeReceipt();
  preparing = job;
  job.then(() => { if (preparing === job) receiptReady = true; }, () => {});
  // (a failure shows when the form is sent, which tries again)
  stamps.fill();
}

// The prepared receipt, used once: any later attempt gets a new one.
async function takeReceipt() {
  const job = preparing;
  preparing = null;
  receiptReady = false;
  if (job) {
    try {
      return await job;
    } catch {
      // prepared while offline, say: make it now
    }
  }
  return makeReceipt();
}

// --------------------------------------------------------------------------- uploading

// Batches in flight at once (each up to the server's `batch_chunks`, 4 MiB by default).
const UPLOAD_WINDOW = 3;

// Upload every chunk not in `received` (file id -> Set of indexes), in batches.
async function uploadChunks(received = new Map()) {
  const { caseIdHex, token, uploads, caseId, batch } = pending;
  const total = uploads.reduce((n, u) => n + u.chunkCount, 0);
  let done = 0;
  for (const u of uploads) done += (received.get(u.id) || new Set()).size;
  const show = () => status(t("uploading", { percent: Math.floor((100 * done) / total) }),
    Math.floor((100 * done) / total));
  show();
  for (const u of uploads) {
    if (!received.has(u.id)) received.set(u.id, new Set());
    const have = received.get(u.id);
    if (have.size === u.chunkCount) continue;
    await sendChunks(`/submissions/${caseIdHex}/files/${u.id}`, token, { ...u, caseId }, have, {
      batch,
      window: UPLOAD_WINDOW,
      onStored: (n) => { done += n; show(); },
    });
  }
}

async function finish() {
  status(t("finishing"), 100);
  await api("POST", `/submissions/${pending.caseIdHex}/finish`, { json: {}, token: pending.token });
  showReceipt();
}

// Until the reporter says they wrote the receipt down, leaving the page (reload, Back, a
// link) asks first: the receipt exists nowhere else.
function warnBeforeLeaving(event) {
  event.preventDefault();
  event.returnValue = "";
}

function showReceipt() {
  const { receipt, unclean, removed } = pending;
  pending = null;
  const panel = document.getElementById("receipt-panel");
  const template = document.getElementById("receipt-template");
  panel.replaceChildren(template.content.cloneNode(true));
  const code = panel.querySelector("#receipt-code");
  code.textContent = formatReceipt(receipt);
  if (unclean.length) {
    const list = el("ul", {}, unclean.map((name) => el("li", { text: t("unclean", { name }) })));
    code.after(list);
  }
  if (removed.length) {
    const summary = el("ul", { cls: "removed-summary" }, removed.map(([name, labels]) =>
      el("li", { text: t("receipt_removed", { name, what: plainRemoved(labels) }) })));
    summary.id = "removed-summary";
    panel.querySelector(".receipt-advice").after(summary);
  }
  window.addEventListener("beforeunload", warnBeforeLeaving);
  const done = panel.querySelector("#receipt-done");
  if (done) {
    done.addEventListener("submit", () => window.removeEventListener("beforeunload", warnBeforeLeaving));
  }
  // The form held the plaintext: empty it before hiding it.
  form.reset();
  if (ui.fileReport) ui.fileReport.replaceChildren();
  form.hidden = true;
  panel.hidden = false;
  panel.setAttribute("tabindex", "-1");
  panel.focus();
  panel.scrollIntoView({ block: "start" });
}

function interrupted() {
  ui.resume.hidden = false;
  ui.discard.hidden = false;
  ui.resume.disabled = false;
  ui.discard.disabled = false;
  status(t("interrupted"), ui.bar.value);
}

async function afterCreated() {
  try {
    await uploadChunks(pending.received);
  } catch (error) {
    if (retryable(error)) {
      interrupted();
      return;
    }
    // Refused outright (the draft is gone or a chunk is wrong): never leave half a case.
    await discardQuietly();
    ui.progress.hidden = true;
    fail(errorText(error));
    return;
  }
  try {
    await finish();
  } catch (error) {
    if (retryable(error) || (error instanceof ApiError && error.code === "upload_incomplete")) {
      interrupted();
      return;
    }
    ui.progress.hidden = true;
    fail(errorText(error));
  }
}

async function discardQuietly() {
  if (!pending) return;
  try {
    await api("DELETE", `/submissions/${pending.caseIdHex}`, { token: pending.token });
  } catch {
    // the draft expires on its own
  }
  pending = null;
}

async function resume() {
  if (!pending || busy) return;
  setBusy(true);
  ui.resume.disabled = true;
  ui.discard.disabled = true;
  showText(ui.error, "");
  try {
    const state = await api("GET", `/submissions/${pending.caseIdHex}`, { token: pending.token });
    pending.received = new Map(state.files.map((f) => [f.id, new Set(f.received)]));
  } catch (error) {
    if (retryable(error)) {
      interrupted();
    } else {
      pending = null;
      ui.resume.hidden = true;
      ui.discard.hidden = true;
      ui.progress.hidden = true;
      fail(errorText(error));
    }
    setBusy(false);
    return;
  }
  ui.resume.hidden = true;
  ui.discard.hidden = true;
  await afterCreated();
  setBusy(false);
}

async function discard() {
  if (!pending || busy) return;
  setBusy(true);
  ui.resume.disabled = true;
  ui.discard.disabled = true;
  try {
    await api("DELETE", `/submissions/${pending.caseIdHex}`, { token: pending.token });
  } catch (error) {
    if (retryable(error)) {
      ui.discard.disabled = false;
      ui.resume.disabled = false;
      fail(errorText(error));
      setBusy(false);
      return;
    }
    // Not found: nothing is kept either way.
  }
  pending = null;
  ui.resume.hidden = true;
  ui.discard.hidden = true;
  ui.bar.value = 0;
  status(t("discarded"), 0);
  setBusy(false);
}

// --------------------------------------------------------------------------- submit

async function submit() {
  showText(ui.error, "");
  const { channel, report, identity } = readForm();
  status(t("preparing"));
  if (!receiptReady) status(t("deriving"));
  const prepared = await takeReceipt();
  const { receipt, keys } = prepared;
  let { info } = prepared;
  status(t("stripping"));
  const keepNames = form.elements.namedItem("keep_names");
  const files = await prepareFiles(ui.files ? ui.files.files : [], info.limits, ui.fileReport,
    { keepNames: Boolean(keepNames && keepNames.checked) });
  let created = null;
  let sealed = null;
  for (let attempt = 0; created === null; attempt++) {
    status(t("sealing"));
    sealed = await sealEnvelope(info, channel, keys, report, identity, files);
    const declared = sealed.envelope.files.reduce((sum, f) => sum + f.stored_size, 0);
    const stamp = await proofOfWork(declared, info.pow_free_bytes || 0);
    try {
      created = await api("POST", "/submissions", { json: { ...sealed.envelope, pow: stamp } });
    } catch (error) {
      // The channel's reviewers changed while the reporter was writing: seal again, once.
      if (error instanceof ApiError && error.code === "keys_changed" && attempt === 0) {
        info = await api("GET", "/channels");
        continue;
      }
      if (storageFailed(error)) {
        hold({ receipt, sealed, files }, error);
        return;
      }
      throw error;
    }
  }
  await accepted(receipt, sealed, files, created);
}

async function accepted(receipt, sealed, files, created) {
  pending = {
    receipt,
    caseId: sealed.caseId,
    caseIdHex: created.case_id,
    token: created.upload_token,
    uploads: sealed.uploads,
    batch: sealed.batch,
    received: new Map(),
    unclean: files.filter((f) => !f.cleaned).map((f) => f.original),
    removed: files.filter((f) => f.removed.length).map((f) => [f.original, f.removed]),
  };
  if (created.ready) {
    showReceipt();
    return;
  }
  await afterCreated();
}

// --------------------------------------------------------------------------- storage refused

// Nothing was stored, and sending the same sealed report later can work: the service said
// its storage is full or read-only, or it could not be reached at all.
function storageFailed(error) {
  // Not set up (or, where v2 is required, no X-Wing recovery key yet): sending the same
  // sealed report again cannot work, so it is not held.
  return retryable(error) && !(error instanceof ApiError
    && (error.code === "not_initialised" || error.code === "v2_not_ready"));
}

// While a report is held, "Send again" is the one way on: the form's own button would seal
// a second report and drop this one, and an empty bar would suggest something is moving.
function hold(report, error) {
  held = report;
  ui.progress.hidden = false;
  ui.bar.hidden = true;
  ui.submit.hidden = true;
  ui.resend.hidden = false;
  ui.resend.disabled = false;
  ui.text.textContent = t("held");
  fail(errorText(error));
}

function release() {
  held = null;
  ui.resend.hidden = true;
  ui.bar.hidden = false;
  ui.submit.hidden = false;
}

async function resend() {
  if (!held || busy) return;
  setBusy(true);
  ui.resend.disabled = true;
  showText(ui.error, "");
  const { receipt, sealed, files } = held;
  let created;
  try {
    const stamp = await proofOfWork();
    created = await api("POST", "/submissions", { json: { ...sealed.envelope, pow: stamp } });
  } catch (error) {
    if (storageFailed(error)) {
      hold(held, error);
    } else {
      // Refused for good (the channel's keys changed, say): the form still holds the text.
      release();
      ui.progress.hidden = true;
      fail(errorText(error));
    }
    setBusy(false);
    return;
  }
  release();
  try {
    await accepted(receipt, sealed, files, created);
  } finally {
    setBusy(false);
  }
}

async function onSubmit(event) {
  event.preventDefault();
  if (busy || pending) return;
  setBusy(true);
  // Sending the form again seals it afresh: what was held is dropped.
  release();
  try {
    await submit();
  } catch (error) {
    ui.progress.hidden = true;
    fail(errorText(error));
    prepare(); // a new receipt for the next try; the one just used is never used again
  } finally {
    setBusy(false);
  }
}

async function init() {
  if (!form) return;
  scriptRuns(form);
  if (!(await hasX25519())) {
    // The server path, but only if the reporter says so: the form posts as it would without
    // JavaScript once the box is ticked (the server refuses it otherwise).
    showText(ui.error, t("no_crypto"));
    offerServerSeal(form);
    pageReady();
    return;
  }
  if (form.dataset.requireV2 === "true" && !(await supportsHybrid())) {
    // The installation takes v2 slots only and this browser cannot seal them: another
    // browser, or the server path (which seals v2), before anything is typed in vain.
    showText(ui.error, t("pq_required"));
    offerServerSeal(form);
    pageReady();
    return;
  }
  form.addEventListener("submit", onSubmit);
  ui.resume.addEventListener("click", resume);
  ui.resend.addEventListener("click", resend);
  ui.discard.addEventListener("click", discard);
  // Files that cannot be cleaned get a choice each, right when they are chosen.
  const serverChoice = document.getElementById("unclean-choice");
  if (serverChoice) serverChoice.remove();
  if (ui.files && ui.fileReport) {
    ui.files.addEventListener("change", () => {
      reviewFiles(ui.files.files, ui.fileReport).catch((error) => fail(errorText(error)));
    });
  }
  showDeviceClaims();
  form.dataset.enhanced = "true";
  pageReady();
  prepare();
}

init();
