// Chuishao protocol v1 and v2 (post-quantum hybrid key slots), browser side. Public API (async where WebCrypto is
// involved); camelCase mirrors of the Python package `crypto`.
//
// Bytes are Uint8Array. Ids (case, item, file, key ids) are Uint8Array(16)
// or their 32-char lowercase hex text form. Every failure to open anything
// throws OpenError (generic message). Functions that draw randomness accept
// an optional last `opts` argument with `rng(n) -> Uint8Array` (and
// sealKey also `ephemeral`, raw 32 bytes) so test vectors can be reproduced.
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
  sealClaimKey,
} from "./claim.js";
