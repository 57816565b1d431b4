// A small SHA-256 (FIPS 180-4) for the proof of work only: WebCrypto's digest() costs one
// promise per hash, which caps a browser at tens of thousands of tries a second; this one
// hashes the fixed prefix once and then only the last block or two per try. Never used for
// anything secret (the protocol's hashing stays on WebCrypto).

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

// One compression of the 64-byte block at bytes[offset..] into state (Int32Array(8)).
function compress(state, w, bytes, offset) {
  for (let i = 0; i < 16; i++) {
    const j = offset + 4 * i;
    w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15];
    const b = w[i - 2];
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0; state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0; state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0; state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0; state[7] = (state[7] + h) | 0;
}

// SHA-256 of bytes, as 32 bytes (for the self-test and the tests, not for the search).
export function sha256(bytes) {
  const length = bytes.length;
  const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[length] = 0x80;
  const bits = length * 8;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bits / 2 ** 32));
  view.setUint32(padded.length - 4, bits >>> 0);
  const state = Int32Array.from(IV);
  const w = new Int32Array(64);
  for (let offset = 0; offset < padded.length; offset += 64) compress(state, w, padded, offset);
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setUint32(4 * i, state[i]);
  return out;
}

function meets(state, bits) {
  if (bits <= 32) return bits === 0 || Math.clz32(state[0]) >= bits;
  return state[0] === 0 && Math.clz32(state[1]) >= bits - 32;
}

// The first counter in [start, start + count) such that SHA-256(prefix || decimal(counter))
// starts with `bits` zero bits, or -1. prefix is bytes; counters stay below 2^53.
export function search(prefix, bits, start, count) {
  const full = prefix.length & ~63;
  const mid = Int32Array.from(IV);
  const w = new Int32Array(64);
  for (let offset = 0; offset < full; offset += 64) compress(mid, w, prefix, offset);
  const restLength = prefix.length - full;
  const tail = new Uint8Array(128);
  tail.set(prefix.subarray(full));
  const state = new Int32Array(8);
  const end = start + count;
  for (let counter = start; counter < end; counter++) {
    const digits = String(counter);
    let n = restLength;
    for (let i = 0; i < digits.length; i++) tail[n++] = digits.charCodeAt(i);
    tail[n++] = 0x80;
    const blocks = n + 8 <= 64 ? 64 : 128;
    tail.fill(0, n, blocks - 4);
    const bitLength = (prefix.length + digits.length) * 8; // far below 2^32
    tail[blocks - 4] = bitLength >>> 24;
    tail[blocks - 3] = (bitLength >>> 16) & 0xff;
    tail[blocks - 2] = (bitLength >>> 8) & 0xff;
    tail[blocks - 1] = bitLength & 0xff;
    state.set(mid);
    compress(state, w, tail, 0);
    if (blocks === 128) compress(state, w, tail, 64);
    if (meets(state, bits)) return counter;
  }
  return -1;
}
