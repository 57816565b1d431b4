// Chuishao protocol v1 and v2 (post-quantum hybrid key slots), browser side. Public API (async where WebCrypto is
// involved); camelCase mirrors of the Python package `crypto`.
//
// Bytes are Uint8Array. Ids (case, item, file, key ids) are Uint8Array(16)
// or their 32-char lowercase hex text form. Every failure to open anything
// throws OpenError (generic message). Functions that draw randomness accept
// an optional last `opts` argument with `rng(n) -> Uint8Array` (and
// sealKey also `ephemeral`, raw 32 bytes) so test vectors can be reproduced.
import { newKey } from "./core.js";
import { bytesToHex, toBytes } from "./encodings.js";
import { importX25519Private, keysetHashInput, x25519PublicRaw } from "./keys.js";
import { sha256 } from "./primitives.js";

export * from "./core.js";
export {
  derivePassword,
  wrapPrivateKey,
  unwrapPrivateKey,
  wrapXWingSeed,
  unwrapXWingSeed,
} from "./password.js";
export { RecoveryError, decodeRecoverySecret, encodeRecoverySecret } from "./recovery.js";
export { verifySignature } from "./signing.js";
export {
  ClaimCodeError,
  claimCodeHash,
  deriveClaimCode,
  formatClaimCode,
  normalizeClaimCode,
  openClaimKey,
  openClaimKeyV2,
  openClaimSlot,
  sealClaimKey,
  sealClaimKeyV2,
  sealClaimSlot,
} from "./claim.js";

// Console only, so not in core.js.
// A fresh X25519 key pair: { privateKey: raw 32 bytes, publicKey: raw 32 bytes }.
export async function generateKeyPair(opts = {}) {
  const privateKey = newKey(opts);
  return { privateKey, publicKey: await publicKey(privateKey) };
}

// Raw public key of a private key (raw 32 bytes or an X25519 CryptoKey).
export async function publicKey(privateKey) {
  const key =
    privateKey instanceof CryptoKey ? privateKey : await importX25519Private(privateKey, false);
  return x25519PublicRaw(key);
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

