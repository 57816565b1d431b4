// The part of the public API (index.js) the reporter's pages need: no password, recovery,
// signature or claim-code code, so the intake page downloads less. index.js re-exports all.
import { bytesToHex, toBytes } from "./encodings.js";
import {
  importX25519Private,
  keyId as computeKeyId,
  keysetHashInput,
  x25519PublicRaw,
} from "./keys.js";
import { randomBytes, sha256 } from "./primitives.js";

export { OpenError } from "./encodings.js";
export {
  SUITE,
  SUITE_V2,
  SLOT_LENGTH,
  SLOT_LENGTH_V2,
  sealKey,
  openKey,
  sealKeyV2,
  openKeyV2,
  sealSlot,
  openSlot,
} from "./slots.js";
export {
  supportsHybrid,
  generateXWing,
  importXWingSeed,
  xwingPublicRaw,
} from "./xwing.js";
export { sealItem, openItem } from "./items.js";
export { padme } from "./padding.js";
export { sealFile, openFile, storedLayout, CHUNK_SIZE } from "./files.js";
export {
  ReceiptError,
  newReceipt,
  formatReceipt,
  normalizeReceipt,
  deriveReceipt,
} from "./receipt.js";
export { b64uDecode, b64uEncode, bytesToHex, hexToBytes } from "./encodings.js";

function draw(opts, n) {
  const out = opts && opts.rng ? toBytes(opts.rng(n)) : randomBytes(n);
  if (out.length !== n) throw new TypeError("random source returned the wrong number of bytes");
  return out;
}

// A fresh X25519 key pair: { privateKey: raw 32 bytes, publicKey: raw 32 bytes }.
export async function generateKeyPair(opts = {}) {
  const privateKey = draw(opts, 32);
  return { privateKey, publicKey: await publicKey(privateKey) };
}

// Raw public key of a private key (raw 32 bytes or an X25519 CryptoKey).
export async function publicKey(privateKey) {
  const key =
    privateKey instanceof CryptoKey ? privateKey : await importX25519Private(privateKey, false);
  return x25519PublicRaw(key);
}

// key_id(pk) = SHA-256(raw public key)[0:16]
export async function keyId(publicRaw) {
  return computeKeyId(publicRaw);
}

// SHA-256("chuishao/v1/keyset" || 0x00 || sorted key ids), 32 bytes.
export async function keysetFingerprint(keyIds) {
  return sha256(keysetHashInput(keyIds));
}

// First 16 hex chars of the fingerprint in groups of 4.
export function formatFingerprint(fingerprint) {
  const b = toBytes(fingerprint);
  if (b.length !== 32) throw new TypeError("fingerprint must be 32 bytes");
  return bytesToHex(b).slice(0, 16).match(/.{4}/g).join(" ");
}

// 32 random bytes: case key, internal key or file key.
export function newKey(opts = {}) {
  return draw(opts, 32);
}

// 16 random bytes: a case, item or file id.
export function newId(opts = {}) {
  return draw(opts, 16);
}
