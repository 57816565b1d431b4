// File streams (STREAM construction). The plaintext stream is the content,
// then 0x80, then zeros up to padme(size + 1), cut into 65536-byte chunks
// (the last one shorter, never empty). Chunk i is sealed under
// nonce = prefix(7) || uint32_be(i) || flag (0x01 on the last chunk).
// Both directions are async generators (sealing reads and seals a few chunks at a time).
import { ascii, concat, idBytes, OpenError, toBytes, u32be } from "./encodings.js";
import { padme } from "./padding.js";
import { aesGcmDecrypt, aesGcmEncrypt, hkdf } from "./primitives.js";

export const CHUNK_SIZE = 65536;
export const TAG_SIZE = 16;
const EMPTY = new Uint8Array(0);
const subtle = globalThis.crypto.subtle;

// Layout of the padded stream for a content size.
export function fileLayout(size) {
  if (!Number.isSafeInteger(size) || size < 0) throw new TypeError("bad file size");
  const total = padme(size + 1);
  const chunks = Math.ceil(total / CHUNK_SIZE);
  if (chunks > 0x100000000) throw new RangeError("file too large");
  return { total, chunks, lastLength: total - (chunks - 1) * CHUNK_SIZE };
}

// As service/domain/sealing.py stored_layout: each chunk with its tag.
export function storedLayout(size) {
  const { total, chunks } = fileLayout(size);
  return { storedSize: total + TAG_SIZE * chunks, chunkCount: chunks };
}

// chunk_key = HKDF-SHA256(ikm=file_key, salt=empty, info="chuishao/v1/file", L=32)
export async function chunkKeyBytes(fileKey) {
  const k = toBytes(fileKey);
  if (k.length !== 32) throw new TypeError("file key must be 32 bytes");
  return hkdf(k, EMPTY, ascii("chuishao/v1/file"), 32);
}

export async function chunkKey(fileKey) {
  const raw = await chunkKeyBytes(fileKey);
  return subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

export function fileAad(caseId, fileId) {
  return concat(ascii("chuishao/v1/file"), new Uint8Array([0]), idBytes(caseId), idBytes(fileId));
}

export function chunkNonce(prefix, index, last) {
  return concat(prefix, u32be(index), new Uint8Array([last ? 1 : 0]));
}

function checkPrefix(prefix) {
  const p = toBytes(prefix);
  if (p.length !== 7) throw new TypeError("nonce prefix must be 7 bytes");
  return p;
}

// Read [start, end) of the source: a Blob/File (sliced, so only one chunk is
// in memory at a time) or bytes.
async function readRange(source, start, end) {
  if (typeof Blob !== "undefined" && source instanceof Blob) {
    return new Uint8Array(await source.slice(start, end).arrayBuffer());
  }
  return source.subarray(start, end);
}

// Chunks read and sealed together: one read of the source and that many WebCrypto calls in
// flight at once, instead of a round trip each; memory stays at one group (4 MiB).
const SEAL_GROUP = 64;

export async function* sealFile(fileKey, prefix, caseId, fileId, source, size) {
  const { total, chunks } = fileLayout(size);
  const p = checkPrefix(prefix);
  const isBlob = typeof Blob !== "undefined" && source instanceof Blob;
  const src = isBlob ? source : toBytes(source);
  if ((isBlob ? src.size : src.length) !== size) throw new TypeError("size does not match");
  const key = await chunkKey(fileKey);
  const aad = fileAad(caseId, fileId);
  for (let first = 0; first < chunks; first += SEAL_GROUP) {
    const count = Math.min(SEAL_GROUP, chunks - first);
    const start = first * CHUNK_SIZE;
    const end = Math.min(start + count * CHUNK_SIZE, total);
    const plain = new Uint8Array(end - start); // zero-filled
    if (start < size) {
      const content = await readRange(src, start, Math.min(end, size));
      if (content.length !== Math.min(end, size) - start) throw new TypeError("short read");
      plain.set(content, 0);
    }
    if (size >= start && size < end) plain[size - start] = 0x80;
    const sealed = [];
    for (let k = 0; k < count; k++) {
      const i = first + k;
      const piece = plain.subarray(k * CHUNK_SIZE, Math.min((k + 1) * CHUNK_SIZE, plain.length));
      sealed.push(aesGcmEncrypt(key, chunkNonce(p, i, i === chunks - 1), piece, aad));
    }
    // Every call has settled before the first chunk is handed out: none is left unawaited.
    const done = await Promise.all(sealed);
    yield* done;
  }
}

// Pull exactly n bytes out of a queue of pieces.
function take(queue, n) {
  const out = new Uint8Array(n);
  let o = 0;
  while (o < n) {
    const head = queue[0];
    const k = Math.min(head.length, n - o);
    out.set(head.subarray(0, k), o);
    o += k;
    if (k === head.length) queue.shift();
    else queue[0] = head.subarray(k);
  }
  return out;
}

// chunks: an (async) iterable of stored chunks. Pieces of any size are
// accepted (e.g. a fetch body stream); they are re-cut at the chunk
// boundaries the size implies. Plaintext is yielded chunk by chunk; the
// generator throws OpenError on any failure, including a missing final chunk,
// so callers must discard what they got if it throws.
export async function* openFile(fileKey, prefix, caseId, fileId, chunks, size) {
  let layout, key, aad, p;
  try {
    layout = fileLayout(size);
    p = checkPrefix(prefix);
    key = await chunkKey(fileKey);
    aad = fileAad(caseId, fileId);
  } catch {
    throw new OpenError();
  }
  const queue = [];
  let queued = 0;
  let index = 0;
  const expected = (i) => (i < layout.chunks - 1 ? CHUNK_SIZE : layout.lastLength) + TAG_SIZE;

  async function openNext() {
    const stored = take(queue, expected(index));
    queued -= stored.length;
    const last = index === layout.chunks - 1;
    let plain;
    try {
      plain = await aesGcmDecrypt(key, chunkNonce(p, index, last), stored, aad);
    } catch {
      throw new OpenError();
    }
    const start = index * CHUNK_SIZE;
    index++;
    // Everything from `size` on is padding: 0x80 then zeros.
    const contentLength = Math.max(0, Math.min(plain.length, size - start));
    for (let j = contentLength; j < plain.length; j++) {
      if (plain[j] !== (start + j === size ? 0x80 : 0)) throw new OpenError();
    }
    return plain.subarray(0, contentLength);
  }

  for await (const piece of chunks) {
    let bytes;
    try {
      bytes = toBytes(piece);
    } catch {
      throw new OpenError();
    }
    if (bytes.length === 0) continue;
    if (index >= layout.chunks) throw new OpenError(); // data after the final chunk
    queue.push(bytes);
    queued += bytes.length;
    while (index < layout.chunks && queued >= expected(index)) {
      const content = await openNext();
      if (content.length > 0) yield content;
    }
    if (index >= layout.chunks && queued > 0) throw new OpenError();
  }
  if (index !== layout.chunks || queued !== 0) throw new OpenError(); // truncated
}
