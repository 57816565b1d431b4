// The reward ledger's export buttons: the file is fetched and saved here, and the export's
// signed manifest appears in "Your recent exports" as soon as the server has signed it, with
// no reload. Without JavaScript the forms post as before (the download, then a reload shows
// the manifest). Text reaches the page through textContent only.
import { ApiError, fetchApi, islandText, NetworkError, saveBlob } from "../common.js";

const t = islandText("export-messages");

function fileName(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(header);
  return match ? match[1] : fallback;
}

function listNode() {
  let list = document.getElementById("exports");
  if (!list) {
    const section = document.getElementById("export");
    const heading = document.createElement("h3");
    heading.textContent = t("recent");
    list = document.createElement("ul");
    list.id = "exports";
    section.append(heading, list);
  }
  return list;
}

async function manifestOf(id) {
  // Signed when the last byte was produced; its transaction may commit a moment later.
  for (let attempt = 0; attempt < 10; attempt += 1) {
    try {
      return await fetchApi(`/console/rewards/exports/${id}/manifest.json`, { t });
    } catch (error) {
      if (error instanceof NetworkError || !(error instanceof ApiError)) throw error;
    }
    await new Promise((done) => setTimeout(done, 300));
  }
  return null;
}

function addRow(id, format, manifest) {
  const item = document.createElement("li");
  item.dataset.exportId = id;
  const when = document.createElement("time");
  when.textContent = t("just_now");
  item.append(when, ` ${format.toUpperCase()} `);
  if (manifest) {
    item.append(`· ${t("records", { count: manifest.record_count })} · `);
    const link = document.createElement("a");
    link.href = `/console/rewards/exports/${id}/manifest.json`;
    link.textContent = t("manifest");
    link.className = "manifest-link";
    item.append(link);
  } else {
    const failed = document.createElement("strong");
    failed.className = "export-failed";
    failed.textContent = `· ${t("no_manifest")}`;
    item.append(failed);
  }
  listNode().prepend(item);
}

async function submit(event) {
  const form = event.currentTarget;
  event.preventDefault();
  const status = document.getElementById("export-status");
  const button = form.querySelector("button");
  button.disabled = true;
  status.hidden = false;
  status.textContent = t("working");
  try {
    const response = await fetchApi(form.action,
      { method: "POST", form: new FormData(form), as: "response", t });
    const id = response.headers.get("X-Chuishao-Export");
    const format = form.querySelector('input[name="format"]').value;
    const blob = await response.blob();
    saveBlob(blob, fileName(response, `rewards.${format}`));
    addRow(id, format, id ? await manifestOf(id) : null);
    status.textContent = t("done");
  } catch {
    status.textContent = t("failed");
  } finally {
    button.disabled = false;
  }
}

for (const form of document.querySelectorAll("form.export-form")) {
  form.addEventListener("submit", submit);
}
