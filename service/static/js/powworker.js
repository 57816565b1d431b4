// Proof-of-work worker (see pow.js): searches one slice of counters of one puzzle per message,
// off the page's thread. The answer is { id, counter } with counter -1 if the slice had none.
import { search } from "./sha256.js";

const encoder = new TextEncoder();

self.onmessage = (event) => {
  const { id, prefix, bits, start, count } = event.data;
  const counter = search(encoder.encode(prefix), bits, start, count);
  self.postMessage({ id, counter });
};
