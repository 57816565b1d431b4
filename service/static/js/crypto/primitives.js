// Thin wrappers over WebCrypto: SHA-256, HMAC, HKDF (RFC 5869), AES-GCM,
// PBKDF2, randomness. All return Uint8Array.
import { concat, toBytes } from "./encodings.js";

const subtle = globalThis.crypto.subtle;
const HASH_LEN = 32;

export function randomBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

export async function sha256(data) {
  return new Uint8Array(await subtle.digest("SHA-256", toBytes(data)));
}

export async function hmacSha256(key, data) {
  // HMAC pads keys with zeros to the block size, so an empty key equals
  // HashLen zero bytes (WebCrypto refuses empty HMAC keys).
  const k = key.length === 0 ? new Uint8Array(HASH_LEN) : key;
  const ck = await subtle.importKey("raw", k, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", ck, toBytes(data)));
}

export async function hkdfExtract(salt, ikm) {
  return hmacSha256(salt, ikm);
}

export async function hkdfExpand(prk, info, length) {
  if (length > 255 * HASH_LEN) throw new RangeError("HKDF length too large");
  const out = new Uint8Array(length);
  let t = new Uint8Array(0);
  for (let i = 1, o = 0; o < length; i++) {
    t = await hmacSha256(prk, concat(t, info, new Uint8Array([i])));
    out.set(t.subarray(0, Math.min(HASH_LEN, length - o)), o);
    o += HASH_LEN;
  }
  return out;
}

export async function hkdf(ikm, salt, info, length) {
  return hkdfExpand(await hkdfExtract(salt, ikm), info, length);
}

async function aesKey(key, usages) {
  if (key instanceof CryptoKey) return key;
  const k = toBytes(key);
  if (k.length !== 16 && k.length !== 32) throw new TypeError("bad AES key length");
  return subtle.importKey("raw", k, { name: "AES-GCM" }, false, usages);
}

export async function aesGcmEncrypt(key, nonce, plaintext, aad) {
  const ck = await aesKey(key, ["encrypt"]);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
  return new Uint8Array(await subtle.encrypt(params, ck, toBytes(plaintext)));
}

// Throws whatever WebCrypto throws on failure; callers map it to OpenError.
export async function aesGcmDecrypt(key, nonce, ciphertext, aad) {
  const ck = await aesKey(key, ["decrypt"]);
  const params = { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 };
  return new Uint8Array(await subtle.decrypt(params, ck, toBytes(ciphertext)));
}

// ChaCha20-Poly1305 (WebCrypto modern algorithms); only the published X-Wing
// HPKE vectors use it.
async function chachaKey(key, usages) {
  const k = toBytes(key);
  if (k.length !== 32) throw new TypeError("bad ChaCha20-Poly1305 key length");
  return subtle.importKey("raw-secret", k, { name: "ChaCha20-Poly1305" }, false, usages);
}

export async function chachaEncrypt(key, nonce, plaintext, aad) {
  const ck = await chachaKey(key, ["encrypt"]);
  const params = { name: "ChaCha20-Poly1305", iv: nonce, additionalData: aad };
  return new Uint8Array(await subtle.encrypt(params, ck, toBytes(plaintext)));
}

export async function chachaDecrypt(key, nonce, ciphertext, aad) {
  const ck = await chachaKey(key, ["decrypt"]);
  const params = { name: "ChaCha20-Poly1305", iv: nonce, additionalData: aad };
  return new Uint8Array(await subtle.decrypt(params, ck, toBytes(ciphertext)));
}

export async function pbkdf2Sha256(password, salt, iterations, length) {
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new RangeError("iterations must be a positive integer");
  }
  const ck = await subtle.importKey("raw", toBytes(password), "PBKDF2", false, ["deriveBits"]);
  const params = { name: "PBKDF2", hash: "SHA-256", salt: toBytes(salt), iterations };
  return new Uint8Array(await subtle.deriveBits(params, ck, length * 8));
}
