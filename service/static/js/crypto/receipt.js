// Reporter receipts: 20 uniform decimal digits and their Damm check digit,
// shown as 7 groups of 3 (receipts given before the check digit have 20 digits,
// still accepted). The 20 random digits derive the reporter's X25519 key,
// X-Wing key (suite v2) and a server lookup secret.
import { ascii, concat, toBytes } from "./encodings.js";
import { importX25519Private, x25519PublicRaw } from "./keys.js";
import { hkdf, pbkdf2Sha256, randomBytes, sha256 } from "./primitives.js";
import { importXWingSeed, xwingPublicRaw } from "./xwing.js";

export const RECEIPT_DIGITS = 20;
export const RECEIPT_LENGTH = 21;

// Damm's quasigroup of order 10: catches every single-digit error and every
// swap of two neighbouring digits (the same table as crypto/_receipt.py).
const DAMM_TABLE = [
  [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
  [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
  [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
  [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
  [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
  [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
  [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
  [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
  [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
  [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];
export const RECEIPT_ITERATIONS = 600000;

export class ReceiptError extends Error {
  constructor() {
    super("invalid receipt");
    this.name = "ReceiptError";
  }
}

// 21 digits whose check digit does not match: one was mistyped or two swapped.
export class ReceiptMistyped extends ReceiptError {
  constructor() {
    super();
    this.name = "ReceiptMistyped";
  }
}

export function dammCheckDigit(digits) {
  let interim = 0;
  for (const c of digits) interim = DAMM_TABLE[interim][c.charCodeAt(0) - 48];
  return String(interim);
}

function rngBytes(rng, n) {
  const out = rng ? toBytes(rng(n)) : randomBytes(n);
  if (out.length !== n) throw new TypeError("random source returned the wrong number of bytes");
  return out;
}

// Rejection sampling: byte b < 250 gives digit b % 10. Bytes are drawn 32 at
// a time and used in order (the rest of the last batch is dropped), exactly
// like the Python side, so an injected rng gives the same receipt.
export function newReceipt(opts = {}) {
  let digits = "";
  while (digits.length < RECEIPT_DIGITS) {
    for (const b of rngBytes(opts.rng, 32)) {
      if (b < 250) {
        digits += String(b % 10);
        if (digits.length === RECEIPT_DIGITS) break;
      }
    }
  }
  return digits + dammCheckDigit(digits);
}

// NFKC (full-width digits work), then drop whitespace (categories Zs, Zl, Zp
// and \t\n\v\f\r) and dashes (Pd); the result must be 21 ASCII digits that
// pass the check, or 20 (a receipt given before the check digit).
function receiptText(text) {
  if (typeof text !== "string") throw new ReceiptError();
  const d = text.normalize("NFKC").replace(/[\p{Zs}\p{Zl}\p{Zp}\p{Pd}\t\n\v\f\r]/gu, "");
  if (!/^[0-9]{20,21}$/.test(d)) throw new ReceiptError();
  if (d.length === RECEIPT_LENGTH && dammCheckDigit(d) !== "0") throw new ReceiptMistyped();
  return d;
}

// 21 digits in seven groups of three; an older 20-digit receipt in five of four.
export function formatReceipt(receipt) {
  const d = receiptText(receipt);
  return d.match(d.length === RECEIPT_LENGTH ? /.{3}/g : /.{4}/g).join(" ");
}

// The 20 digits the keys derive from (the check digit verified and dropped).
export function normalizeReceipt(text) {
  return receiptText(text).slice(0, RECEIPT_DIGITS);
}

export async function deriveReceipt(
  receipt,
  installationSalt,
  iterations = RECEIPT_ITERATIONS,
  opts = {},
) {
  const digits = normalizeReceipt(receipt);
  const salt = toBytes(installationSalt);
  if (salt.length !== 32) throw new TypeError("installation salt must be 32 bytes");
  const seed = await pbkdf2Sha256(
    ascii(digits),
    concat(ascii("chuishao/v1/receipt"), new Uint8Array([0]), salt),
    iterations,
    64,
  );
  const privateKey = await importX25519Private(seed.subarray(0, 32), false);
  const publicKey = await x25519PublicRaw(privateKey);
  const xw = await receiptXWing(seed, opts);
  seed.fill(0, 0, 32);
  const lookupSecret = seed.slice(32, 64);
  const lookupHash = await sha256(lookupSecret);
  return { privateKey, publicKey, lookupSecret, lookupHash, ...xw };
}

// xwing_seed = HKDF(ikm = the whole 64-byte seed, salt empty,
// "chuishao/v2/receipt-xwing", 32). Without the hybrid in this browser the
// X-Wing fields are null; opts.exposeXWingSeed returns the seed (vectors only).
async function receiptXWing(seed, opts) {
  const xs = await hkdf(seed, new Uint8Array(0), ascii("chuishao/v2/receipt-xwing"), 32);
  const out = { xwingPrivateKey: null, xwingPublic: null };
  if (opts.exposeXWingSeed) out.xwingSeed = xs.slice();
  if (opts.hybrid !== false) {
    try {
      out.xwingPrivateKey = await importXWingSeed(xs, false);
      out.xwingPublic = await xwingPublicRaw(out.xwingPrivateKey);
    } catch {
      out.xwingPrivateKey = null;
      out.xwingPublic = null;
    }
  }
  xs.fill(0);
  return out;
}
