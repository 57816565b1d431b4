// One rectification record: evidence files are sealed here with a linked case's key, exactly
// like a reporter's files (docs/PROTOCOL.md, STREAM), uploaded in chunks, and named in the
// progress form, which then goes to the server as an ordinary form. Evidence already stored is
// decrypted here for download. The server never receives a key or a plaintext.
import {
  b64uDecode,
  b64uEncode,
  bytesToHex,
  newId,
  newKey,
  openFile,
  openItem,
  sealFile,
  sealItem,
  storedLayout,
} from "../crypto/index.js";
import { ApiError, el, saveBlob, showText } from "../common.js";
import { errorText, openSlots, sessionKeysOrNull, t, whenUnlocked } from "./casekit.js";
import { consoleFetch as request } from "./keys.js";
import { stripMetadata } from "../strip.js";

const data = JSON.parse(document.getElementById("record-data").textContent);
const base = `/console/rectifications/${data.record_id}`;
const errorBox = document.getElementById("evidence-error");
const keys = new Map(); // case id -> case key, in memory while the page is open
let ready = false;

function putChunk(fileId, index, bytes) {
  return request("PUT", `${base}/files/${fileId}/chunks/${index}`, undefined,
    { raw: bytes, text: t });
}

// ------------------------------------------------------------------------------ keys

async function openKeys() {
  if (ready) return;
  const mine = await sessionKeysOrNull();
  if (!mine) {
    showText(errorBox, t("locked"));
    return;
  }
  for (const entry of data.cases) {
    if (!entry.slot && !entry.slot_v2) continue;
    try {
      keys.set(entry.case_id, await openSlots(mine, entry.slot, entry.slot_v2, entry.case_id));
    } catch {
      // A slot this key cannot open: that case's evidence stays closed.
    }
  }
  ready = true;
  showText(errorBox, "");
  await renderEvidence();
  enableUpload("form-progress", "evidence");
  enableUpload("form-fixed_on_spot", "spot-evidence");
}

// ------------------------------------------------------------------------------ evidence

async function renderEvidence() {
  for (const file of data.files) {
    const row = document.querySelector(`li[data-file-id="${file.id}"]`);
    const key = keys.get(file.case_id);
    if (!row || !key || !file.meta_blob) continue;
    let meta = null;
    try {
      meta = await openItem(key, file.case_id, file.meta_item_id, "file-meta",
        b64uDecode(file.meta_blob));
    } catch {
      row.querySelector(".file-name").textContent = t("decrypt_failed");
      continue;
    }
    row.querySelector(".file-name").textContent = String(meta.name || file.id.slice(0, 8));
    const button = row.querySelector("button.evidence-open");
    const status = el("span", { cls: "hint", attrs: { role: "status" } });
    status.hidden = true;
    row.append(" ", status);
    button.hidden = false;
    button.addEventListener("click", () => download(file, meta, button, status));
  }
}

async function download(file, meta, button, status) {
  button.disabled = true;
  showText(status, t("downloading"));
  async function* chunks() {
    for (let i = 0; i < file.chunk_count; i++) {
      yield await request("GET", `/console/cases/${file.case_id}/files/${file.id}/chunks/${i}`,
        undefined, { binary: true });
    }
  }
  const parts = [];
  try {
    for await (const part of openFile(b64uDecode(meta.key), b64uDecode(meta.prefix),
      file.case_id, file.id, chunks(), meta.size)) {
      parts.push(part.slice());
    }
  } catch (error) {
    // Content yielded before a failure is incomplete: none of it is saved.
    parts.length = 0;
    showText(status, error instanceof ApiError ? errorText(error) : t("file_failed"));
    button.disabled = false;
    return;
  }
  saveBlob(new Blob(parts, { type: String(meta.type || "") }), String(meta.name || "evidence"));
  showText(status, "");
  button.disabled = false;
}

// ------------------------------------------------------------------------------ upload

function uploadCase() {
  // The record's first linked case whose key this reviewer holds.
  const entry = data.cases.find((c) => keys.has(c.case_id));
  return entry ? entry.case_id : null;
}

async function sealAndUpload(original, phase, caseId, progress) {
  // Site photos lose their hidden data (GPS, camera, time) like reporters' photos do.
  const stripped = await stripMetadata(original);
  const file = stripped.blob;
  const key = keys.get(caseId);
  const fileId = newId();
  const metaId = newId();
  const fileKey = newKey();
  const prefix = newKey().slice(0, 7);
  const meta = { name: original.name, type: original.type || "application/octet-stream",
    size: file.size, key: b64uEncode(fileKey), prefix: b64uEncode(prefix),
    removed: stripped.removed, cleaned: stripped.cleaned, phase };
  const blob = await sealItem(key, caseId, metaId, "file-meta", meta);
  const { storedSize, chunkCount } = storedLayout(file.size);
  const fileHex = bytesToHex(fileId);
  await request("POST", `${base}/files`, {
    case_id: caseId,
    file: { id: fileHex, meta_item_id: bytesToHex(metaId), stored_size: storedSize,
      chunk_count: chunkCount },
    meta: { id: bytesToHex(metaId), blob: b64uEncode(blob) },
  });
  let index = 0;
  for await (const chunk of sealFile(fileKey, prefix, caseId, fileHex, file, file.size)) {
    await putChunk(fileHex, index, chunk);
    index += 1;
    progress(index, chunkCount);
  }
  fileKey.fill(0);
  await request("POST", `${base}/files/${fileHex}/finish`, {});
  return fileHex;
}

// Two forms carry evidence: progress, and a hazard removed on the spot. Each names its
// picker's elements with its own prefix.
function enableUpload(formId, prefix) {
  const picker = document.getElementById(`${prefix}-picker`);
  const form = document.getElementById(formId);
  if (!picker || !form || !data.can_upload) return;
  const note = document.getElementById(`${prefix}-nojs`);
  const caseId = uploadCase();
  if (!caseId) {
    showText(note, t("no_slot"));
    return;
  }
  if (note) note.hidden = true;
  picker.hidden = false;
  const input = document.getElementById(`${prefix}-files`);
  const phase = document.getElementById(`${prefix}-phase`);
  const status = document.getElementById(`${prefix}-status`);
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    const chosen = [...input.files];
    if (!chosen.length) return; // text only: the form goes as it is
    event.preventDefault();
    if (chosen.length > data.max_files) {
      showText(status, t("too_many", { count: data.max_files }));
      return;
    }
    const big = chosen.find((f) => f.size > data.max_file_bytes);
    if (big) {
      showText(status, t("too_big", { name: big.name,
        mb: Math.floor(data.max_file_bytes / (1024 * 1024)) }));
      return;
    }
    button.disabled = true;
    const total = chosen.reduce((sum, f) => sum + storedLayout(f.size).chunkCount, 0);
    let done = 0;
    try {
      for (const file of chosen) {
        showText(status, t("sealing", { name: file.name }));
        const id = await sealAndUpload(file, phase.value, caseId, () => {
          done += 1;
          showText(status, t("uploading", { percent: Math.round((100 * done) / total) }));
        });
        form.append(el("input", { attrs: { type: "hidden", name: "files", value: id } }),
          el("input", { attrs: { type: "hidden", name: "phases", value: phase.value } }));
      }
    } catch (error) {
      showText(status, errorText(error));
      button.disabled = false;
      return;
    }
    input.value = "";
    HTMLFormElement.prototype.submit.call(form);
  });
}

whenUnlocked(openKeys).catch((error) => showText(errorBox, errorText(error)));
