// Byte encodings: hex, base64url (no padding), UTF-8, small byte helpers. Also OpenError, as
// every module imports this one anyway.

// Every failure to open anything; generic, so no detail of what failed leaks to callers.
export class OpenError extends Error {
  constructor() {
    super("could not open");
    this.name = "OpenError";
  }
}

const HEX = "0123456789abcdef";

export function bytesToHex(bytes) {
  const b = toBytes(bytes);
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i] >> 4] + HEX[b[i] & 15];
  return s;
}

export function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError("invalid hex");
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function b64uEncode(bytes) {
  const b = toBytes(bytes);
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function b64uDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new TypeError("invalid base64url");
  }
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  if (b64uEncode(out) !== text) throw new TypeError("non-canonical base64url");
  return out;
}

const ENC = new TextEncoder();
const DEC = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8Encode(text) {
  return ENC.encode(text);
}

export function utf8Decode(bytes) {
  return DEC.decode(bytes);
}

// ASCII label to bytes (labels are fixed ASCII strings).
export function ascii(text) {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) throw new TypeError("label is not ASCII");
    out[i] = c;
  }
  return out;
}

// Copy any BufferSource into a fresh Uint8Array view (no copy for Uint8Array).
export function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  throw new TypeError("expected bytes");
}

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u32be(n) {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError("uint32 out of range");
  return new Uint8Array([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

export function i2osp(n, len) {
  const out = new Uint8Array(len);
  let v = n;
  for (let i = len - 1; i >= 0; i--) {
    out[i] = v & 255;
    v = Math.floor(v / 256);
  }
  if (v !== 0) throw new RangeError("integer too large");
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// 16-byte id from a Uint8Array(16) or its text form (32 lowercase hex chars).
export function idBytes(id) {
  if (typeof id === "string") {
    if (!/^[0-9a-f]{32}$/.test(id)) throw new TypeError("invalid id");
    return hexToBytes(id);
  }
  const b = toBytes(id);
  if (b.length !== 16) throw new TypeError("invalid id");
  return b;
}
