// X-Wing (MLKEM768-X25519, HPKE KEM 0x647A) on WebCrypto's "modern
// algorithms": the KEM of protocol suite v2. Private keys are 32-byte seeds
// (importKey "raw-seed"), public keys 1216 bytes ("raw-public"), enc 1120.
import { toBytes } from "./encodings.js";

const subtle = globalThis.crypto.subtle;

export const XWING = { name: "MLKEM768-X25519" };
export const XWING_SEED_LENGTH = 32;
export const XWING_PUBLIC_LENGTH = 1216;
export const XWING_ENC_LENGTH = 1120;

let support = null;

// Feature detection: SubtleCrypto.supports where it exists, then a trial
// generate / encapsulate / decapsulate, since an engine may claim an
// algorithm it cannot run. Cached; never throws.
export function supportsHybrid() {
  if (support === null) {
    support = (async () => {
      try {
        const S = globalThis.SubtleCrypto;
        if (S && typeof S.supports === "function") {
          for (const op of ["generateKey", "encapsulateBits", "decapsulateBits"]) {
            if (!S.supports(op, XWING)) return false;
          }
        }
        const kp = await subtle.generateKey(XWING, false, ["encapsulateBits", "decapsulateBits"]);
        const { sharedKey, ciphertext } = await subtle.encapsulateBits(XWING, kp.publicKey);
        const back = await subtle.decapsulateBits(XWING, kp.privateKey, ciphertext);
        const a = new Uint8Array(sharedKey);
        const b = new Uint8Array(back);
        return (
          ciphertext.byteLength === XWING_ENC_LENGTH &&
          a.length === 32 &&
          a.every((x, i) => x === b[i])
        );
      } catch {
        return false;
      }
    })();
  }
  return support;
}

export async function importXWingSeed(seed, extractable = false) {
  const s = toBytes(seed);
  if (s.length !== XWING_SEED_LENGTH) throw new TypeError("X-Wing seed must be 32 bytes");
  return subtle.importKey("raw-seed", s, XWING, extractable, ["decapsulateBits"]);
}

function isXWingPrivate(key) {
  return key instanceof CryptoKey && key.type === "private" && key.algorithm.name === XWING.name;
}

// A private X-Wing key given as a CryptoKey or as its raw 32-byte seed.
export async function asXWingPrivate(key) {
  if (isXWingPrivate(key)) return key;
  return importXWingSeed(key, false);
}

export async function importXWingPublic(raw) {
  const b = toBytes(raw);
  if (b.length !== XWING_PUBLIC_LENGTH) throw new TypeError("X-Wing public key must be 1216 bytes");
  return subtle.importKey("raw-public", b, XWING, true, ["encapsulateBits"]);
}

// The 1216-byte public key of a (possibly non-extractable) private key or seed.
export async function xwingPublicRaw(privateKey) {
  const sk = await asXWingPrivate(privateKey);
  const pub = await subtle.getPublicKey(sk, ["encapsulateBits"]);
  return new Uint8Array(await subtle.exportKey("raw-public", pub));
}

// A fresh key pair. With extractable, seed holds the raw 32-byte seed (to be
// wrapped for storage); otherwise seed is null.
export async function generateXWing(extractable = false) {
  const kp = await subtle.generateKey(XWING, extractable, ["encapsulateBits", "decapsulateBits"]);
  const publicKey = new Uint8Array(await subtle.exportKey("raw-public", kp.publicKey));
  const seed = extractable
    ? new Uint8Array(await subtle.exportKey("raw-seed", kp.privateKey))
    : null;
  return { privateKey: kp.privateKey, publicKey, seed };
}

// Encapsulate to a raw public key: { sharedSecret (32), enc (1120) }.
export async function xwingEncap(publicRaw) {
  const pk = await importXWingPublic(publicRaw);
  const { sharedKey, ciphertext } = await subtle.encapsulateBits(XWING, pk);
  return { sharedSecret: new Uint8Array(sharedKey), enc: new Uint8Array(ciphertext) };
}

export async function xwingDecap(privateKey, enc) {
  const e = toBytes(enc);
  if (e.length !== XWING_ENC_LENGTH) throw new TypeError("bad enc");
  const sk = await asXWingPrivate(privateKey);
  return new Uint8Array(await subtle.decapsulateBits(XWING, sk, e));
}
