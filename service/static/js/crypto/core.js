// The part of the public API (index.js) the reporter's pages need: no password, recovery,
// signature, claim-code or key-pair code, so their pages download less. index.js re-exports all.
import { toBytes } from "./encodings.js";
import { keyId as computeKeyId } from "./keys.js";
import { randomBytes } from "./primitives.js";

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
  recipientKey,
  KeyIdMismatch,
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
  ReceiptMistyped,
  dammCheckDigit,
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

// key_id(pk) = SHA-256(raw public key)[0:16]
export async function keyId(publicRaw) {
  return computeKeyId(publicRaw);
}

// 32 random bytes: case key, internal key or file key.
export function newKey(opts = {}) {
  return draw(opts, 32);
}

// 16 random bytes: a case, item or file id.
export function newId(opts = {}) {
  return draw(opts, 16);
}
