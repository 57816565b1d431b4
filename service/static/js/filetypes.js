// What a file really is, judged by its first bytes, and the neutral name it is sent under.
// Same rules and same answers as service/domain/filetypes.py (see the docstring there for why): the
// name and the type the browser derives from it are never trusted.

export const HEAD_BYTES = 65536;

const HEIF_BRANDS = ["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs"];
const AVIF_BRANDS = ["avif", "avis"];
const AUDIO_BRANDS = ["M4A ", "M4B ", "M4P "];
const ZIP_FAMILY = ["docx", "xlsx", "pptx", "odt", "ods", "odp", "zip"];
const OLE_FAMILY = ["doc", "xls", "ppt", "msg"];

function type(kind, mime, ext, family) {
  return {
    kind,
    mime,
    ext,
    family,
    cleanable: kind === "jpeg" || kind === "png",
    reason: kind === "heif" || kind === "avif" ? "heif" : family === "video" ? "video" : "",
  };
}

function ascii(head, start, end) {
  let text = "";
  for (let i = start; i < Math.min(end, head.length); i++) text += String.fromCharCode(head[i]);
  return text;
}

function startsWith(head, bytes, at = 0) {
  if (head.length < at + bytes.length) return false;
  return bytes.every((b, i) => head[at + i] === b);
}

function contains(head, text) {
  const needle = Array.from(text, (c) => c.charCodeAt(0));
  outer: for (let i = 0; i + needle.length <= head.length; i++) {
    for (let j = 0; j < needle.length; j++) if (head[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function utf8Text(head, truncated) {
  if (head.includes(0)) return false;
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  // A multi-byte character may be cut at the end of the head: allow up to 3 missing bytes.
  for (let cut = 0; cut < (truncated ? 4 : 1); cut++) {
    try {
      decoder.decode(head.subarray(0, head.length - cut));
      return true;
    } catch {
      // try a shorter head
    }
  }
  return false;
}

function isoMedia(head) {
  const size = ((head[0] << 24) >>> 0) + (head[1] << 16) + (head[2] << 8) + head[3];
  const major = ascii(head, 8, 12);
  const end = size >= 16 ? Math.min(size, head.length) : 16;
  const brands = new Set([major]);
  for (let i = 16; i < end - 3; i += 4) brands.add(ascii(head, i, i + 4));
  const any = (list) => list.some((b) => brands.has(b));
  if (AUDIO_BRANDS.includes(major)) return type("m4a", "audio/mp4", "m4a", "audio");
  if (major === "qt  ") return type("mov", "video/quicktime", "mov", "video");
  if (major.startsWith("3g")) return type("3gp", "video/3gpp", "3gp", "video");
  if (any(HEIF_BRANDS) && !["isom", "mp41", "mp42"].includes(major)) {
    return type("heif", "image/heic", "heic", "photo");
  }
  if (any(AVIF_BRANDS)) return type("avif", "image/avif", "avif", "photo");
  if (major === "mif1" || major === "msf1") return type("heif", "image/heif", "heif", "photo");
  return type("mp4", "video/mp4", "mp4", "video");
}

function originalExt(name) {
  const base = String(name || "").split("/").pop();
  return base.includes(".") ? base.split(".").pop().toLowerCase() : "";
}

function zip(head, original) {
  const office = [
    ["word/", "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
    ["xl/", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"],
    ["ppt/", "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"],
  ];
  for (const [marker, ext, mime] of office) {
    if (contains(head, marker)) return type(ext, mime, ext, "file");
  }
  if (contains(head, "mimetypeapplication/vnd.oasis.opendocument.")) {
    const ext = ["odt", "ods", "odp"].includes(original) ? original : "odt";
    return type(ext, "application/vnd.oasis.opendocument", ext, "file");
  }
  return type("zip", "application/zip", ZIP_FAMILY.includes(original) ? original : "zip", "file");
}

// The type of a file from its first HEAD_BYTES bytes (`head`, a Uint8Array). `name` only
// picks a member of a family the bytes cannot tell apart; it never decides the family.
export function detect(headBytes, name = "", truncated = undefined) {
  const head = headBytes.subarray(0, HEAD_BYTES);
  if (truncated === undefined) truncated = head.length === HEAD_BYTES;
  if (startsWith(head, [0xff, 0xd8])) return type("jpeg", "image/jpeg", "jpg", "photo");
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47])) return type("png", "image/png", "png", "photo");
  const six = ascii(head, 0, 6);
  if (six === "GIF87a" || six === "GIF89a") return type("gif", "image/gif", "gif", "photo");
  if (ascii(head, 0, 4) === "RIFF" && head.length >= 12) {
    const riff = ascii(head, 8, 12);
    if (riff === "WEBP") return type("webp", "image/webp", "webp", "photo");
    if (riff === "AVI ") return type("avi", "video/x-msvideo", "avi", "video");
    if (riff === "WAVE") return type("wav", "audio/wav", "wav", "audio");
  }
  if (head.length >= 12 && ascii(head, 4, 8) === "ftyp") return isoMedia(head);
  if (startsWith(head, [0x1a, 0x45, 0xdf, 0xa3])) return type("webm", "video/webm", "webm", "video");
  if (ascii(head, 0, 3) === "ID3" || (head.length >= 2 && head[0] === 0xff &&
      (head[1] & 0xe0) === 0xe0)) {
    return type("mp3", "audio/mpeg", "mp3", "audio");
  }
  if (ascii(head, 0, 5) === "#!AMR") return type("amr", "audio/amr", "amr", "audio");
  if (ascii(head, 0, 5) === "%PDF-") return type("pdf", "application/pdf", "pdf", "file");
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04])) return zip(head, originalExt(name));
  if (startsWith(head, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) {
    const ext = originalExt(name);
    return type("ole", "application/x-ole-storage", OLE_FAMILY.includes(ext) ? ext : "doc", "file");
  }
  if (ascii(head, 0, 2) === "MZ") return type("exe", "application/x-msdownload", "exe", "file");
  if (startsWith(head, [0x7f, 0x45, 0x4c, 0x46])) {
    return type("elf", "application/octet-stream", "bin", "file");
  }
  if (head.length && utf8Text(head, truncated)) return type("text", "text/plain", "txt", "file");
  return type("other", "application/octet-stream", "bin", "file");
}

export async function detectFile(file) {
  const head = new Uint8Array(await file.slice(0, HEAD_BYTES).arrayBuffer());
  return detect(head, file.name, file.size > HEAD_BYTES);
}
