// Key slots: a 32-byte case (or internal) key sealed with HPKE.
// Suite v1: to an X25519 recipient, slot = enc(32) || ct(48) = 80 bytes.
// Suite v2: to an X-Wing recipient, slot = enc(1120) || ct(48) = 1168 bytes.
// The same info for both; the suite string stored with the slot picks the opener.
import { ascii, concat, idBytes, OpenError, toBytes } from "./encodings.js";
import { openBase, sealBase, SUITE_X25519_AES256, SUITE_XWING_AES256 } from "./hpke.js";
import { XWING_PUBLIC_LENGTH } from "./xwing.js";

export const SUITE = "x25519-hkdf-sha256-aes256gcm";
export const SLOT_LENGTH = 80;
export const SUITE_V2 = "mlkem768x25519-hkdf-sha256-aes256gcm";
export const SLOT_LENGTH_V2 = 1168;

const PURPOSE_LABELS = {
  case: "chuishao/v1/case-key",
  internal: "chuishao/v1/internal-key",
};

export function slotInfo(caseId, purpose) {
  const label = Object.hasOwn(PURPOSE_LABELS, purpose) ? PURPOSE_LABELS[purpose] : null;
  if (label === null) throw new TypeError("unknown slot purpose");
  return concat(ascii(label), new Uint8Array([0]), idBytes(caseId));
}

// opts.ephemeral (raw 32-byte private key), opts.rng (which then supplies
// it, like Python) or opts.ikmE make the seal deterministic.
export async function sealKey(key, publicRaw, caseId, purpose = "case", opts = {}) {
  const k = toBytes(key);
  if (k.length !== 32) throw new TypeError("key must be 32 bytes");
  const pk = toBytes(publicRaw);
  if (pk.length !== 32) throw new TypeError("public key must be 32 bytes");
  const info = slotInfo(caseId, purpose);
  const o = { ...opts };
  if (o.ephemeral === undefined && o.ikmE === undefined && o.rng) {
    o.ephemeral = toBytes(o.rng(32));
    if (o.ephemeral.length !== 32) throw new TypeError("random source returned wrong length");
  }
  return sealBase(SUITE_X25519_AES256, pk, info, new Uint8Array(0), k, o);
}

export async function openKey(slot, privateKey, caseId, purpose = "case") {
  try {
    const s = toBytes(slot);
    if (s.length !== SLOT_LENGTH) throw new OpenError();
    const info = slotInfo(caseId, purpose);
    const key = await openBase(SUITE_X25519_AES256, s, privateKey, info, new Uint8Array(0));
    if (key.length !== 32) throw new OpenError();
    return key;
  } catch {
    throw new OpenError();
  }
}

// Suite v2 seal with fresh randomness (WebCrypto takes none from outside).
export async function sealKeyV2(key, publicRaw, caseId, purpose = "case") {
  const k = toBytes(key);
  if (k.length !== 32) throw new TypeError("key must be 32 bytes");
  const pk = toBytes(publicRaw);
  if (pk.length !== XWING_PUBLIC_LENGTH) throw new TypeError("public key must be 1216 bytes");
  const info = slotInfo(caseId, purpose);
  return sealBase(SUITE_XWING_AES256, pk, info, new Uint8Array(0), k);
}

// privateKey: an MLKEM768-X25519 CryptoKey or the raw 32-byte seed.
export async function openKeyV2(slot, privateKey, caseId, purpose = "case") {
  try {
    const s = toBytes(slot);
    if (s.length !== SLOT_LENGTH_V2) throw new OpenError();
    const info = slotInfo(caseId, purpose);
    const key = await openBase(SUITE_XWING_AES256, s, privateKey, info, new Uint8Array(0));
    if (key.length !== 32) throw new OpenError();
    return key;
  } catch {
    throw new OpenError();
  }
}

// Open a slot of either suite; an unknown suite is an OpenError.
export async function openSlot(suite, slot, privateKey, caseId, purpose = "case") {
  if (suite === SUITE) return openKey(slot, privateKey, caseId, purpose);
  if (suite === SUITE_V2) return openKeyV2(slot, privateKey, caseId, purpose);
  throw new OpenError();
}

export async function sealSlot(suite, key, publicRaw, caseId, purpose = "case") {
  if (suite === SUITE) return sealKey(key, publicRaw, caseId, purpose);
  if (suite === SUITE_V2) return sealKeyV2(key, publicRaw, caseId, purpose);
  throw new TypeError("unknown suite");
}
