// PADMÉ length padding and the 0x80-then-zeros padding of sealed items.
import { OpenError } from "./encodings.js";

function ilog2(n) {
  // floor(log2 n) for a positive safe integer, exact (no float rounding).
  return n.toString(2).length - 1;
}

export function padme(length) {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError("bad length");
  if (length < 2) return length;
  const e = ilog2(length);
  const s = ilog2(e) + 1;
  const lastBits = e - s;
  const unit = 2 ** lastBits;
  return Math.ceil(length / unit) * unit;
}

export const ITEM_MIN_PADDED = 256;

export function padItem(data) {
  const total = padme(Math.max(data.length + 1, ITEM_MIN_PADDED));
  const out = new Uint8Array(total);
  out.set(data, 0);
  out[data.length] = 0x80;
  return out;
}

export function unpadItem(padded) {
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0) end--;
  if (end === 0 || padded[end - 1] !== 0x80) throw new OpenError();
  const n = end - 1;
  if (padded.length !== padme(Math.max(n + 1, ITEM_MIN_PADDED))) throw new OpenError();
  return padded.subarray(0, n);
}
