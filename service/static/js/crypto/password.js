// Reviewer passwords: PBKDF2 master secret split into the server auth secret
// and the key-encryption key that wraps the reviewer's X25519 private key.
import { ascii, concat, equalBytes, idBytes, OpenError, toBytes, utf8Encode } from "./encodings.js";
import {
  importX25519Private,
  keyId as publicKeyId,
  x25519PrivateRaw,
  x25519PublicRaw,
  x25519Pkcs8,
} from "./keys.js";
import { aesGcmEncrypt, pbkdf2Sha256, randomBytes } from "./primitives.js";
import { XWING, xwingPublicRaw } from "./xwing.js";

export const PASSWORD_ITERATIONS = 600000;
export const WRAP_VERSION = 0x01;
export const WRAPPED_LENGTH = 1 + 12 + 48 + 16;
const subtle = globalThis.crypto.subtle;

export async function derivePassword(password, userSalt, iterations = PASSWORD_ITERATIONS) {
  if (typeof password !== "string") throw new TypeError("password must be a string");
  const salt = toBytes(userSalt);
  if (salt.length !== 16) throw new TypeError("user salt must be 16 bytes");
  const master = await pbkdf2Sha256(
    utf8Encode(password.normalize("NFC")),
    concat(ascii("chuishao/v1/password"), new Uint8Array([0]), salt),
    iterations,
    64,
  );
  return { authSecret: master.slice(0, 32), kek: master.slice(32, 64) };
}

export function wrapAad(keyId) {
  return concat(ascii("chuishao/v1/wrapped-key"), new Uint8Array([0]), idBytes(keyId));
}

async function kekKey(kek, usages) {
  if (kek instanceof CryptoKey) return kek;
  const k = toBytes(kek);
  if (k.length !== 32) throw new TypeError("kek must be 32 bytes");
  return subtle.importKey("raw", k, { name: "AES-GCM" }, false, usages);
}

// privateKey: raw 32 bytes or an extractable X25519 CryptoKey.
export async function wrapPrivateKey(kek, privateKey, keyId, opts = {}) {
  const raw =
    privateKey instanceof CryptoKey ? await x25519PrivateRaw(privateKey) : toBytes(privateKey);
  const id = idBytes(keyId);
  const priv = await importX25519Private(raw, false);
  if (!equalBytes(await publicKeyId(await x25519PublicRaw(priv)), id)) {
    throw new TypeError("key id does not belong to this private key");
  }
  const pkcs8 = x25519Pkcs8(raw);
  let nonce;
  if (opts.nonce !== undefined) nonce = toBytes(opts.nonce);
  else nonce = opts.rng ? toBytes(opts.rng(12)) : randomBytes(12);
  if (nonce.length !== 12) throw new TypeError("nonce must be 12 bytes");
  const ct = await aesGcmEncrypt(await kekKey(kek, ["encrypt"]), nonce, pkcs8, wrapAad(id));
  pkcs8.fill(0);
  return concat(new Uint8Array([WRAP_VERSION]), nonce, ct);
}

// Returns a NON-extractable X25519 CryptoKey (deriveBits), unwrapped by
// WebCrypto straight from the PKCS#8 plaintext. Its public key must have
// the given key id.
export async function unwrapPrivateKey(kek, blob, keyId) {
  try {
    const b = toBytes(blob);
    if (b.length !== WRAPPED_LENGTH || b[0] !== WRAP_VERSION) throw new OpenError();
    const id = idBytes(keyId);
    const params = {
      name: "AES-GCM",
      iv: b.subarray(1, 13),
      additionalData: wrapAad(id),
      tagLength: 128,
    };
    const key = await subtle.unwrapKey(
      "pkcs8",
      b.subarray(13),
      await kekKey(kek, ["unwrapKey"]),
      params,
      { name: "X25519" },
      false,
      ["deriveBits"],
    );
    if (!equalBytes(await publicKeyId(await x25519PublicRaw(key)), id)) throw new OpenError();
    return key;
  } catch {
    throw new OpenError();
  }
}


// Suite v2: the reviewer's 32-byte X-Wing seed wrapped by the same kek.
// wrapped = 0x02 || nonce (12) || AES-256-GCM(kek, nonce, seed,
//           "chuishao/v2/wrapped-xwing" || 0x00 || key_id)          = 61 bytes
export const XWING_WRAP_VERSION = 0x02;
export const XWING_WRAPPED_LENGTH = 1 + 12 + 32 + 16;

function xwingWrapAad(keyId) {
  return concat(ascii("chuishao/v2/wrapped-xwing"), new Uint8Array([0]), idBytes(keyId));
}

// seed: the raw 32 bytes (e.g. generateXWing(true).seed).
export async function wrapXWingSeed(kek, seed, keyId, opts = {}) {
  const raw = toBytes(seed);
  if (raw.length !== 32) throw new TypeError("X-Wing seed must be 32 bytes");
  const id = idBytes(keyId);
  if (!equalBytes(await publicKeyId(await xwingPublicRaw(raw)), id)) {
    throw new TypeError("key id does not belong to this X-Wing seed");
  }
  let nonce;
  if (opts.nonce !== undefined) nonce = toBytes(opts.nonce);
  else nonce = opts.rng ? toBytes(opts.rng(12)) : randomBytes(12);
  if (nonce.length !== 12) throw new TypeError("nonce must be 12 bytes");
  const ct = await aesGcmEncrypt(await kekKey(kek, ["encrypt"]), nonce, raw, xwingWrapAad(id));
  return concat(new Uint8Array([XWING_WRAP_VERSION]), nonce, ct);
}

// Returns a NON-extractable MLKEM768-X25519 CryptoKey (decapsulateBits),
// unwrapped by WebCrypto from the seed; its public key must have the key id.
// { extractable: true } only to wrap the seed again at once (a new password, or the
// console's key store, which cannot keep an X-Wing CryptoKey across pages).
export async function unwrapXWingSeed(kek, blob, keyId, { extractable = false } = {}) {
  try {
    const b = toBytes(blob);
    if (b.length !== XWING_WRAPPED_LENGTH || b[0] !== XWING_WRAP_VERSION) throw new OpenError();
    const id = idBytes(keyId);
    const params = {
      name: "AES-GCM",
      iv: b.subarray(1, 13),
      additionalData: xwingWrapAad(id),
      tagLength: 128,
    };
    const key = await subtle.unwrapKey(
      "raw-seed",
      b.subarray(13),
      await kekKey(kek, ["unwrapKey"]),
      params,
      XWING,
      extractable,
      ["decapsulateBits"],
    );
    if (!equalBytes(await publicKeyId(await xwingPublicRaw(key)), id)) throw new OpenError();
    return key;
  } catch {
    throw new OpenError();
  }
}
