// Key slots: a 32-byte case (or internal) key sealed with HPKE.
// Suite v1: to an X25519 recipient, slot = enc(32) || ct(48) = 80 bytes.
// Suite v2: to an X-Wing recipient, slot = enc(1120) || ct(48) = 1168 bytes.
// The same info for both; the suite string stored with the slot picks the opener.
// Claim-key slots (claim.js) are the same seals under their own info.
import { ascii, b64uDecode, bytesToHex, concat, idBytes, OpenError, toBytes } from "./encodings.js";
import { openBase, sealBase, SUITE_X25519_AES256, SUITE_XWING_AES256 } from "./hpke.js";
import { keyId } from "./keys.js";
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

// The four seal/open steps under any info (case, internal and claim keys).
// opts.ephemeral (raw 32-byte private key), opts.rng (which then supplies
// it, like Python) or opts.ikmE make the v1 seal deterministic.
export async function sealV1(key, publicRaw, info, opts = {}) {
  const k = toBytes(key);
  if (k.length !== 32) throw new TypeError("key must be 32 bytes");
  const pk = toBytes(publicRaw);
  if (pk.length !== 32) throw new TypeError("public key must be 32 bytes");
  const o = { ...opts };
  if (o.ephemeral === undefined && o.ikmE === undefined && o.rng) {
    o.ephemeral = toBytes(o.rng(32));
    if (o.ephemeral.length !== 32) throw new TypeError("random source returned wrong length");
  }
  return sealBase(SUITE_X25519_AES256, pk, info, new Uint8Array(0), k, o);
}

export async function openV1(slot, privateKey, info) {
  const s = toBytes(slot);
  if (s.length !== SLOT_LENGTH) throw new OpenError();
  const key = await openBase(SUITE_X25519_AES256, s, privateKey, info, new Uint8Array(0));
  if (key.length !== 32) throw new OpenError();
  return key;
}

// Suite v2 seal with fresh randomness (WebCrypto takes none from outside).
export async function sealV2(key, publicRaw, info) {
  const k = toBytes(key);
  if (k.length !== 32) throw new TypeError("key must be 32 bytes");
  const pk = toBytes(publicRaw);
  if (pk.length !== XWING_PUBLIC_LENGTH) throw new TypeError("public key must be 1216 bytes");
  return sealBase(SUITE_XWING_AES256, pk, info, new Uint8Array(0), k);
}

// privateKey: an MLKEM768-X25519 CryptoKey or the raw 32-byte seed.
export async function openV2(slot, privateKey, info) {
  const s = toBytes(slot);
  if (s.length !== SLOT_LENGTH_V2) throw new OpenError();
  const key = await openBase(SUITE_XWING_AES256, s, privateKey, info, new Uint8Array(0));
  if (key.length !== 32) throw new OpenError();
  return key;
}

// Any failure to open, a bad id or purpose included, is one OpenError.
export async function openingOrError(open) {
  try {
    return await open();
  } catch {
    throw new OpenError();
  }
}

export async function sealKey(key, publicRaw, caseId, purpose = "case", opts = {}) {
  return sealV1(key, publicRaw, slotInfo(caseId, purpose), opts);
}

export async function openKey(slot, privateKey, caseId, purpose = "case") {
  return openingOrError(() => openV1(slot, privateKey, slotInfo(caseId, purpose)));
}

export async function sealKeyV2(key, publicRaw, caseId, purpose = "case") {
  return sealV2(key, publicRaw, slotInfo(caseId, purpose));
}

export async function openKeyV2(slot, privateKey, caseId, purpose = "case") {
  return openingOrError(() => openV2(slot, privateKey, slotInfo(caseId, purpose)));
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

export class KeyIdMismatch extends Error {
  constructor() {
    super("a recipient's key id does not match its public key");
    this.name = "KeyIdMismatch";
  }
}

// The sealing policy (PROTOCOL 17.7), for case keys and claim keys alike: a recipient as the
// server lists it ({ key_id, public_key, and xwing_key_id, xwing_public_key where it has an
// X-Wing key }) gets a v2 slot where it has one and `hybrid` (this browser has the hybrid),
// v1 otherwise. The key id must name the key, or nothing is sealed (KeyIdMismatch).
export async function recipientKey(recipient, hybrid) {
  const v2 = hybrid && typeof recipient.xwing_public_key === "string";
  const publicKey = b64uDecode(v2 ? recipient.xwing_public_key : recipient.public_key);
  const id = v2 ? recipient.xwing_key_id : recipient.key_id;
  if (bytesToHex(await keyId(publicKey)) !== id) throw new KeyIdMismatch();
  return { suite: v2 ? SUITE_V2 : SUITE, publicKey, keyId: id };
}
