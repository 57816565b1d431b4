// X25519 (and, for the RFC 9180 vectors, P-256) key handling on WebCrypto.
import { ascii, b64uDecode, bytesToHex, concat, hexToBytes, idBytes, toBytes } from "./encodings.js";
import { sha256 } from "./primitives.js";

const subtle = globalThis.crypto.subtle;

// PKCS#8 DER of an X25519 private key is this 16-byte prefix || raw32 (48 bytes).
export const PKCS8_X25519_PREFIX = hexToBytes("302e020100300506032b656e04220420");
// PKCS#8 of a P-256 private key without the optional public key field.
const PKCS8_P256_PREFIX = hexToBytes(
  "3041020100301306072a8648ce3d020106082a8648ce3d030107042730250201010420",
);
const X25519 = { name: "X25519" };
const P256 = { name: "ECDH", namedCurve: "P-256" };

export function x25519Pkcs8(raw) {
  const b = toBytes(raw);
  if (b.length !== 32) throw new TypeError("X25519 private key must be 32 bytes");
  return concat(PKCS8_X25519_PREFIX, b);
}

export async function importX25519Private(raw, extractable = false) {
  return subtle.importKey("pkcs8", x25519Pkcs8(raw), X25519, extractable, ["deriveBits"]);
}

export async function importX25519Public(raw) {
  const b = toBytes(raw);
  if (b.length !== 32) throw new TypeError("X25519 public key must be 32 bytes");
  return subtle.importKey("raw", b, X25519, true, []);
}

function isPrivate(key, name) {
  return key instanceof CryptoKey && key.type === "private" && key.algorithm.name === name;
}

// A private X25519 key given as a CryptoKey or as raw 32 bytes.
export async function asX25519Private(key) {
  if (isPrivate(key, "X25519")) return key;
  return importX25519Private(key, false);
}

const BASEPOINT = new Uint8Array(32);
BASEPOINT[0] = 9;
let basepointKey = null;

// Public key of a (possibly non-extractable) X25519 private key: X25519(sk, 9).
export async function x25519PublicRaw(privateKey) {
  if (basepointKey === null) basepointKey = await importX25519Public(BASEPOINT);
  const bits = await subtle.deriveBits({ name: "X25519", public: basepointKey }, privateKey, 256);
  return new Uint8Array(bits);
}

export async function x25519(privateKey, publicRaw) {
  const pub = await importX25519Public(publicRaw);
  return new Uint8Array(await subtle.deriveBits({ name: "X25519", public: pub }, privateKey, 256));
}

export async function generateX25519(extractable) {
  const kp = await subtle.generateKey(X25519, extractable, ["deriveBits"]);
  const publicRaw = new Uint8Array(await subtle.exportKey("raw", kp.publicKey));
  return { privateKey: kp.privateKey, publicKey: publicRaw };
}

// Raw 32 bytes of an extractable X25519 private key.
export async function x25519PrivateRaw(privateKey) {
  const der = new Uint8Array(await subtle.exportKey("pkcs8", privateKey));
  if (der.length !== 48) throw new TypeError("unexpected PKCS#8 encoding");
  for (let i = 0; i < 16; i++) {
    if (der[i] !== PKCS8_X25519_PREFIX[i]) throw new TypeError("unexpected PKCS#8 encoding");
  }
  return der.slice(16);
}

// key_id(pk) = SHA-256(raw public key)[0:16], for an X25519 (32 bytes) or an
// X-Wing (1216 bytes) public key: the lengths keep the two kinds apart.
export async function keyId(publicRaw) {
  const b = toBytes(publicRaw);
  if (b.length !== 32 && b.length !== 1216) {
    throw new TypeError("public key must be 32 (X25519) or 1216 (X-Wing) bytes");
  }
  return (await sha256(b)).slice(0, 16);
}

// "chuishao/v1/keyset" || 0x00 || key ids sorted bytewise (duplicates rejected).
export function keysetHashInput(keyIds) {
  const ids = Array.from(keyIds, (k) => idBytes(k));
  const hexes = ids.map(bytesToHex);
  if (new Set(hexes).size !== hexes.length) throw new TypeError("duplicate key id");
  const order = ids.map((id, i) => [hexes[i], id]);
  order.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return concat(ascii("chuishao/v1/keyset"), new Uint8Array([0]), ...order.map(([, id]) => id));
}

// --- P-256 (only needed for the RFC 9180 test vectors) ---

export async function importP256Private(raw, extractable = true) {
  const b = toBytes(raw);
  if (b.length !== 32) throw new TypeError("P-256 private key must be 32 bytes");
  return subtle.importKey("pkcs8", concat(PKCS8_P256_PREFIX, b), P256, extractable, [
    "deriveBits",
  ]);
}

export async function p256PublicRaw(privateKey) {
  const jwk = await subtle.exportKey("jwk", privateKey);
  return concat(new Uint8Array([4]), b64uDecode(jwk.x), b64uDecode(jwk.y));
}

export async function p256(privateKey, publicRaw) {
  const pub = await subtle.importKey("raw", toBytes(publicRaw), P256, true, []);
  return new Uint8Array(await subtle.deriveBits({ name: "ECDH", public: pub }, privateKey, 256));
}

export async function generateP256() {
  const kp = await subtle.generateKey(P256, true, ["deriveBits"]);
  const publicRaw = new Uint8Array(await subtle.exportKey("raw", kp.publicKey));
  return { privateKey: kp.privateKey, publicKey: publicRaw };
}
