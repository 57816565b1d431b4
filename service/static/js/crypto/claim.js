// Reward claims (PROTOCOL.md section 15): a one-time claim code derived from
// the receipt's lookup secret, and the claim key sealed to the finance
// officers and the recovery key (suite v2 to an X-Wing key, v1 to an X25519
// one). The claim itself is an ordinary sealed item of kind "claim" under the
// claim key, with the reward id in the case id's place.
import { base32Encode } from "./base32.js";
import { ascii, concat, idBytes, OpenError, toBytes } from "./encodings.js";
import { hmacSha256, sha256 } from "./primitives.js";
import { openingOrError, openV1, openV2, sealV1, sealV2, SUITE, SUITE_V2 } from "./slots.js";

export const CLAIM_CODE_CHARS = 16;

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

// The same info for both suites, as for case slots: HPKE's suite_id separates them.
function claimKeyInfo(rewardId) {
  return concat(ascii("chuishao/v1/claim-key"), new Uint8Array([0]), idBytes(rewardId));
}

export async function sealClaimKey(key, publicRaw, rewardId, opts = {}) {
  return sealV1(key, publicRaw, claimKeyInfo(rewardId), opts);
}

export async function openClaimKey(slot, privateKey, rewardId) {
  return openingOrError(() => openV1(slot, privateKey, claimKeyInfo(rewardId)));
}

// Suite v2 (X-Wing, 1168-byte slot), fresh randomness.
export async function sealClaimKeyV2(key, publicRaw, rewardId) {
  return sealV2(key, publicRaw, claimKeyInfo(rewardId));
}

// privateKey: an MLKEM768-X25519 CryptoKey or the raw 32-byte seed.
export async function openClaimKeyV2(slot, privateKey, rewardId) {
  return openingOrError(() => openV2(slot, privateKey, claimKeyInfo(rewardId)));
}

export async function sealClaimSlot(suite, key, publicRaw, rewardId) {
  if (suite === SUITE) return sealClaimKey(key, publicRaw, rewardId);
  if (suite === SUITE_V2) return sealClaimKeyV2(key, publicRaw, rewardId);
  throw new TypeError("unknown suite");
}

// Open a claim slot of either suite; an unknown suite is an OpenError.
export async function openClaimSlot(suite, slot, privateKey, rewardId) {
  if (suite === SUITE) return openClaimKey(slot, privateKey, rewardId);
  if (suite === SUITE_V2) return openClaimKeyV2(slot, privateKey, rewardId);
  throw new OpenError();
}
