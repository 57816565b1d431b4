// Text form of the installation recovery private key (paper backup):
// base32 (RFC 4648, no padding) of raw32 || SHA-256(raw32)[0:2], in groups
// of 5 separated by '-'. Parsing accepts lower case, ignores spaces/dashes.
// kind "xwing" (the suite v2 part) checksums
// SHA-256("chuishao/v2/recovery-xwing" || 0x00 || raw32)[0:2] instead.
import { base32Decode, base32Encode } from "./base32.js";
import { ascii, concat, equalBytes, toBytes } from "./encodings.js";
import { sha256 } from "./primitives.js";

const TEXT_LENGTH = 55; // base32 of 34 bytes

export class RecoveryError extends Error {
  constructor() {
    super("not a recovery secret");
    this.name = "RecoveryError";
  }
}

const KINDS = { x25519: "", xwing: "chuishao/v2/recovery-xwing\u0000" };

async function checksum(raw, kind) {
  if (!Object.hasOwn(KINDS, kind)) throw new TypeError("unknown recovery key kind");
  return (await sha256(concat(ascii(KINDS[kind]), raw))).subarray(0, 2);
}

export async function encodeRecoverySecret(raw32, kind = "x25519") {
  const raw = toBytes(raw32);
  if (raw.length !== 32) throw new TypeError("recovery key must be 32 bytes");
  const text = base32Encode(concat(raw, await checksum(raw, kind)));
  return text.match(/.{1,5}/g).join("-");
}

export async function decodeRecoverySecret(text, kind = "x25519") {
  if (typeof text !== "string") throw new RecoveryError();
  const spaced = text.replace(/[ \-\t\r\n]/g, "");
  // ASCII before upper-casing: e.g. "ß".toUpperCase() is "SS" (a second spelling).
  if (!/^[\x00-\x7f]*$/.test(spaced)) throw new RecoveryError();
  const compact = spaced.toUpperCase();
  if (compact.length !== TEXT_LENGTH || !/^[A-Z2-7]+$/.test(compact)) throw new RecoveryError();
  const data = base32Decode(compact);
  if (!data) throw new RecoveryError();
  const raw = data.slice(0, 32);
  if (!equalBytes(await checksum(raw, kind), data.subarray(32))) {
    throw new RecoveryError();
  }
  return raw;
}
