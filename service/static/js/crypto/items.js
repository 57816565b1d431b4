// Sealed items: padded UTF-8 JSON objects under AES-256-GCM with a per-kind
// subkey. wire = 0x01 || nonce(12) || ct || tag(16).
import { ascii, concat, idBytes, OpenError, toBytes, utf8Decode, utf8Encode } from "./encodings.js";
import { ITEM_MIN_PADDED, padItem, unpadItem } from "./padding.js";
import { aesGcmDecrypt, aesGcmEncrypt, hkdf, randomBytes } from "./primitives.js";

export const ITEM_VERSION = 0x01;
const KIND_RE = /^[a-z0-9-]{1,32}$/;
const EMPTY = new Uint8Array(0);

function kindBytes(kind) {
  if (typeof kind !== "string" || !KIND_RE.test(kind)) throw new TypeError("invalid kind");
  return ascii(kind);
}

export async function itemSubkey(key, kind) {
  const k = toBytes(key);
  if (k.length !== 32) throw new TypeError("key must be 32 bytes");
  return hkdf(k, EMPTY, concat(ascii("chuishao/v1/item/"), kindBytes(kind)), 32);
}

export function itemAad(caseId, itemId, kind) {
  return concat(
    ascii("chuishao/v1/item"),
    new Uint8Array([0]),
    idBytes(caseId),
    idBytes(itemId),
    kindBytes(kind),
  );
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

// JSON text of an item. Compact separators, non-ASCII kept as UTF-8 (the
// same bytes Python's json.dumps(obj, separators=(",", ":"),
// ensure_ascii=False) gives for the same key order).
export function itemJson(obj) {
  if (!isPlainObject(obj)) throw new TypeError("item must be a JSON object");
  return utf8Encode(JSON.stringify(obj));
}

// Seal already-serialized JSON bytes (used for deterministic vectors).
export async function sealItemBytes(key, caseId, itemId, kind, json, opts = {}) {
  const subkey = await itemSubkey(key, kind);
  const aad = itemAad(caseId, itemId, kind);
  let nonce;
  if (opts.nonce !== undefined) nonce = toBytes(opts.nonce);
  else nonce = opts.rng ? toBytes(opts.rng(12)) : randomBytes(12);
  if (nonce.length !== 12) throw new TypeError("nonce must be 12 bytes");
  const ct = await aesGcmEncrypt(subkey, nonce, padItem(toBytes(json)), aad);
  return concat(new Uint8Array([ITEM_VERSION]), nonce, ct);
}

export async function sealItem(key, caseId, itemId, kind, obj, opts = {}) {
  return sealItemBytes(key, caseId, itemId, kind, itemJson(obj), opts);
}

// Open to the unpadded JSON bytes.
export async function openItemBytes(key, caseId, itemId, kind, blob) {
  try {
    const b = toBytes(blob);
    if (b.length < 1 + 12 + ITEM_MIN_PADDED + 16 || b[0] !== ITEM_VERSION) throw new OpenError();
    const subkey = await itemSubkey(key, kind);
    const aad = itemAad(caseId, itemId, kind);
    const padded = await aesGcmDecrypt(subkey, b.subarray(1, 13), b.subarray(13), aad);
    return unpadItem(padded);
  } catch {
    throw new OpenError();
  }
}

export async function openItem(key, caseId, itemId, kind, blob) {
  const json = await openItemBytes(key, caseId, itemId, kind, blob);
  try {
    const obj = JSON.parse(utf8Decode(json));
    if (!isPlainObject(obj)) throw new OpenError();
    return obj;
  } catch {
    throw new OpenError();
  }
}
