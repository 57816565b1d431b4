// Proof-of-work for the anonymous forms (see service/pow.py): find a counter such that
// SHA-256(challenge ":" counter) starts with `difficulty` zero bits. No dependencies.

// Digests are requested in batches: one await per hash would leave WebCrypto mostly idle.
const BATCH = 256;
const PROGRESS_EVERY = 4096;
const MAX_DIFFICULTY = 64;

function leadingZeroBits(bytes) {
  let bits = 0;
  for (const b of bytes) {
    if (b === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(b) - 24;
  }
  return bits;
}

function abortError(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException("Aborted", "AbortError");
}

// Resolves to the stamp `challenge:counter`; onProgress({tries, expected}) is called every few
// thousand tries; an aborted signal rejects with the signal's reason.
export async function solve(challenge, difficulty, {onProgress, signal} = {}) {
  if (typeof challenge !== "string" || challenge === "") {
    throw new TypeError("challenge must be a non-empty string");
  }
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > MAX_DIFFICULTY) {
    throw new RangeError(`difficulty must be an integer between 0 and ${MAX_DIFFICULTY}`);
  }
  const encoder = new TextEncoder();
  const prefix = challenge + ":";
  const expected = 2 ** difficulty;
  let nextReport = PROGRESS_EVERY;
  // Counters stay far below 20 decimal digits (the server's limit) and exact in a Number.
  for (let start = 0; start < Number.MAX_SAFE_INTEGER; start += BATCH) {
    if (signal && signal.aborted) throw abortError(signal);
    const digests = [];
    for (let i = 0; i < BATCH; i++) {
      digests.push(crypto.subtle.digest("SHA-256", encoder.encode(prefix + (start + i))));
    }
    const results = await Promise.all(digests);
    for (let i = 0; i < BATCH; i++) {
      if (leadingZeroBits(new Uint8Array(results[i])) >= difficulty) {
        return prefix + (start + i);
      }
    }
    const tries = start + BATCH;
    if (onProgress && tries >= nextReport) {
      nextReport += PROGRESS_EVERY;
      onProgress({tries, expected});
    }
  }
  throw new Error("no stamp found");
}
