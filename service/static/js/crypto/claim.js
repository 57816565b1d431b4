// Reward claims (PROTOCOL.md section 15): a one-time claim code derived from
// the receipt's lookup secret, and the claim key sealed to the finance
// officers. The claim itself is an ordinary sealed item of kind "claim"
// under the claim key, with the reward id in the case id's place.
import { base32Encode } from "./base32.js";
import { ascii, concat, idBytes, OpenError, toBytes } from "./encodings.js";
import { openBase, sealBase, SUITE_X25519_AES256 } from "./hpke.js";
import { hmacSha256, sha256 } from "./primitives.js";

export const CLAIM_CODE_CHARS = 16;
const SLOT_LENGTH = 80;

export class ClaimCodeError extends Error {
  constructor() {
    super("invalid claim code");
    this.name = "ClaimCodeError";
  }
}

// base32(HMAC-SHA256(lookup_secret, "chuishao/v1/claim" 0x00 reward_id)[0:10])
export async function deriveClaimCode(lookupSecret, rewardId) {
  const secret = toBytes(lookupSecret);
  if (secret.length !== 32) throw new TypeError("lookup secret must be 32 bytes");
  const mac = await hmacSha256(secret,
    concat(ascii("chuishao/v1/claim"), new Uint8Array([0]), idBytes(rewardId)));
  return base32Encode(mac.subarray(0, 10)); // 80 bits: no partial group
}

// NFKC, drop whitespace and dashes, upper-case; exactly 16 base32 characters.
export function normalizeClaimCode(text) {
  if (typeof text !== "string") throw new ClaimCodeError();
  const kept = text.normalize("NFKC").replace(/[\p{Zs}\p{Zl}\p{Zp}\p{Pd}\t\n\v\f\r]/gu, "")
    .toUpperCase();
  if (!/^[A-Z2-7]{16}$/.test(kept)) throw new ClaimCodeError();
  return kept;
}

export function formatClaimCode(code) {
  return normalizeClaimCode(code).match(/.{4}/g).join("-");
}

// SHA-256 of the normalized code: what the server registers.
export async function claimCodeHash(code) {
  return sha256(ascii(normalizeClaimCode(code)));
}

function claimKeyInfo(rewardId) {
  return concat(ascii("chuishao/v1/claim-key"), new Uint8Array([0]), idBytes(rewardId));
}

export async function sealClaimKey(key, publicRaw, rewardId, opts = {}) {
  const k = toBytes(key);
  if (k.length !== 32) throw new TypeError("key must be 32 bytes");
  const pk = toBytes(publicRaw);
  if (pk.length !== 32) throw new TypeError("public key must be 32 bytes");
  const o = { ...opts };
  if (o.ephemeral === undefined && o.ikmE === undefined && o.rng) {
    o.ephemeral = toBytes(o.rng(32));
    if (o.ephemeral.length !== 32) throw new TypeError("random source returned wrong length");
  }
  return sealBase(SUITE_X25519_AES256, pk, claimKeyInfo(rewardId), new Uint8Array(0), k, o);
}

export async function openClaimKey(slot, privateKey, rewardId) {
  try {
    const s = toBytes(slot);
    if (s.length !== SLOT_LENGTH) throw new OpenError();
    const key = await openBase(SUITE_X25519_AES256, s, privateKey, claimKeyInfo(rewardId),
      new Uint8Array(0));
    if (key.length !== 32) throw new OpenError();
    return key;
  } catch {
    throw new OpenError();
  }
}
