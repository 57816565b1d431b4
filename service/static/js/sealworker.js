// Seals one file in STREAM chunks and sends them in batches, off the page's thread (see
// sendChunks in ui.js): on a slow phone, reading the file, building each request body and
// handing it to the network would otherwise queue behind the page's own work. The same
// sendRuns and sealFile as on the page, so the same bytes go to the same requests.
// In: { path, headers, texts, batch, window, have, file }. Out: { stored: [first, count] }
// as the server acknowledges, then { done: true } or { error }.
import { ApiError, fetchApi, runPath, sendRuns } from "./common.js";
import { sealFile } from "./crypto/files.js";

self.onmessage = async (event) => {
  const { path, headers, texts, batch, window, have, file } = event.data;
  // The page's two texts for a failed request, filled in as the page's own t would.
  const t = (key, params = {}) => String(Object.hasOwn(texts, key) ? texts[key] : key)
    .replace(/\{([a-z_]+)\}/g, (whole, name) =>
      (Object.hasOwn(params, name) ? String(params[name]) : whole));
  try {
    await sendRuns(
      sealFile(file.fileKey, file.prefix, file.caseId, file.fileId, file.blob, file.size),
      new Set(have),
      {
        batch,
        window,
        put: (first, parts) => fetchApi(runPath(path, batch, first, parts.length),
          { method: "PUT", headers, raw: new Blob(parts), t }),
        onStored: (count, first) => self.postMessage({ stored: [first, count] }),
      },
    );
    self.postMessage({ done: true });
  } catch (error) {
    const api = error instanceof ApiError;
    self.postMessage({ error: {
      api,
      status: api ? error.status : 0,
      code: api ? error.code : "",
      name: error && error.name,
      message: String(error && error.message),
    } });
  }
};
