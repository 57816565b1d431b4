// Text form of the installation recovery private key (paper backup):
// base32 (RFC 4648, no padding) of raw32 || SHA-256(raw32)[0:2], in groups
// of 5 separated by '-'. Parsing accepts lower case, ignores spaces/dashes.
import { concat, equalBytes, toBytes } from "./encodings.js";
import { sha256 } from "./primitives.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const TEXT_LENGTH = 55; // base32 of 34 bytes

export class RecoveryError extends Error {
  constructor() {
    super("not a recovery secret");
    this.name = "RecoveryError";
  }
}

function base32Encode(bytes) {
  let out = "";
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

function base32Decode(text) {
  const out = [];
  let acc = 0;
  let bits = 0;
  for (const ch of text) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) throw new RecoveryError();
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((acc >>> (bits - 8)) & 255);
      bits -= 8;
    }
    acc &= (1 << bits) - 1;
  }
  if (acc !== 0) throw new RecoveryError(); // non-zero trailing bits: second spelling
  return new Uint8Array(out);
}

export async function encodeRecoverySecret(raw32) {
  const raw = toBytes(raw32);
  if (raw.length !== 32) throw new TypeError("recovery key must be 32 bytes");
  const text = base32Encode(concat(raw, (await sha256(raw)).subarray(0, 2)));
  return text.match(/.{1,5}/g).join("-");
}

export async function decodeRecoverySecret(text) {
  if (typeof text !== "string") throw new RecoveryError();
  const spaced = text.replace(/[ \-\t\r\n]/g, "");
  // ASCII before upper-casing: e.g. "ß".toUpperCase() is "SS" (a second spelling).
  if (!/^[\x00-\x7f]*$/.test(spaced)) throw new RecoveryError();
  const compact = spaced.toUpperCase();
  if (compact.length !== TEXT_LENGTH || !/^[A-Z2-7]+$/.test(compact)) throw new RecoveryError();
  const data = base32Decode(compact);
  const raw = data.slice(0, 32);
  if (!equalBytes((await sha256(raw)).subarray(0, 2), data.subarray(32))) {
    throw new RecoveryError();
  }
  return raw;
}
