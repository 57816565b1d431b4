// Proof-of-work for the anonymous forms (see service/domain/pow.py, docs/API.md §3.2). The work of
// `difficulty` bits is split into `puzzles` small puzzles of `bits` zero bits each (the same
// expected number of hashes, far less spread): puzzle i is solved by a counter such that
// SHA-256(challenge ":" i ":" counter) starts with `bits` zero bits; the stamp is
// challenge ":" counter_0 "." counter_1 "." ... Hashing is our own SHA-256 (sha256.js) in
// Web Workers, one per core up to four, so the page stays responsive; without workers the
// same search runs in slices on the page. No dependencies.
import { search } from "./sha256.js";

const MAX_DIFFICULTY = 64;
const SPLIT_BITS = 6;
// Counters searched per message: small enough to notice an abort quickly on a slow phone.
const SLICE = 1 << 15;
const MAX_WORKERS = 4;

export function puzzleShape(difficulty) {
  const split = Math.min(SPLIT_BITS, difficulty);
  return { puzzles: 2 ** split, bits: difficulty - split };
}

function abortError(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException("Aborted", "AbortError");
}

// The same interface as a Worker running powworker.js, on the page's own thread.
class InlineSearch {
  constructor() {
    this.onmessage = null;
    this.encoder = new TextEncoder();
  }

  postMessage({ id, prefix, bits, start, count }) {
    setTimeout(() => {
      const counter = search(this.encoder.encode(prefix), bits, start, count);
      if (this.onmessage) this.onmessage({ data: { id, counter } });
    }, 0);
  }

  terminate() {
    this.onmessage = null;
  }
}

function startSearchers() {
  const wanted = Math.max(1, Math.min(MAX_WORKERS, navigator.hardwareConcurrency || 2));
  const searchers = [];
  try {
    for (let i = 0; i < wanted; i++) {
      searchers.push(new Worker(new URL("./powworker.js", import.meta.url), { type: "module" }));
    }
  } catch {
    for (const worker of searchers) worker.terminate();
    return [new InlineSearch()];
  }
  return searchers;
}

// Resolves to the stamp; onProgress({solved, puzzles, tries, expected}) is called each time a
// puzzle is solved (each is the same expected share of the work, so solved/puzzles is an
// honest progress figure); an aborted signal rejects with the signal's reason.
export async function solve(challenge, difficulty, { onProgress, signal } = {}) {
  if (typeof challenge !== "string" || challenge === "") {
    throw new TypeError("challenge must be a non-empty string");
  }
  if (!Number.isInteger(difficulty) || difficulty < 0 || difficulty > MAX_DIFFICULTY) {
    throw new RangeError(`difficulty must be an integer between 0 and ${MAX_DIFFICULTY}`);
  }
  if (signal && signal.aborted) throw abortError(signal);
  const { puzzles, bits } = puzzleShape(difficulty);
  const expected = puzzles * 2 ** bits;
  const counters = new Array(puzzles);
  let searchers = startSearchers();
  let inline = searchers[0] instanceof InlineSearch;
  let next = 0;
  let solved = 0;
  let tries = 0;
  let id = 0;
  const jobs = new Map(); // message id -> { index, start }
  try {
    await new Promise((resolve, reject) => {
      const onAbort = () => reject(abortError(signal));
      if (signal) signal.addEventListener("abort", onAbort, { once: true });
      const send = (searcher, index, start) => {
        id += 1;
        jobs.set(id, { index, start });
        searcher.postMessage({ id, prefix: `${challenge}:${index}:`, bits, start, count: SLICE });
      };
      const take = (searcher) => {
        if (next < puzzles) send(searcher, next++, 0);
      };
      const listen = (searcher) => {
        searcher.onmessage = (event) => {
          if (signal && signal.aborted) return;
          const job = jobs.get(event.data.id);
          jobs.delete(event.data.id);
          if (!job) return;
          const found = event.data.counter;
          if (found < 0) {
            tries += SLICE;
            if (job.start + SLICE >= Number.MAX_SAFE_INTEGER) {
              reject(new Error("no stamp found"));
              return;
            }
            send(searcher, job.index, job.start + SLICE);
            return;
          }
          tries += found - job.start + 1;
          counters[job.index] = found;
          solved += 1;
          if (onProgress) onProgress({ solved, puzzles, tries, expected });
          if (solved === puzzles) {
            if (signal) signal.removeEventListener("abort", onAbort);
            resolve();
          } else {
            take(searcher);
          }
        };
        if (!inline) {
          // A worker that cannot start (an old browser, a blocked script): search on the page.
          searcher.onerror = (event) => {
            event.preventDefault();
            if (inline) return;
            inline = true;
            for (const worker of searchers) worker.terminate();
            const pending = [...jobs.values()];
            jobs.clear();
            searchers = [new InlineSearch()];
            listen(searchers[0]);
            for (const job of pending) send(searchers[0], job.index, job.start);
            if (!pending.length) take(searchers[0]);
          };
        }
      };
      for (const searcher of searchers) {
        listen(searcher);
        take(searcher);
      }
    });
  } finally {
    for (const searcher of searchers) searcher.terminate();
  }
  return `${challenge}:${counters.join(".")}`;
}

// A stamp solved ahead of time, while the reporter is still typing, so sending does not wait
// for it. fetchChallenge() answers GET /api/v1/pow (no upload priced in). A stamp is used
// once; a kept one is solved again before its challenge expires (10 minutes on the server).
export class StampReserve {
  constructor(fetchChallenge, { freshForMs = 8 * 60 * 1000 } = {}) {
    this.fetchChallenge = fetchChallenge;
    this.freshForMs = freshForMs;
    this.pending = null; // Promise of { stamp, at } or null
    this.timer = null;
  }

  // Start solving in the background (idempotent).
  fill() {
    if (this.pending) return;
    const at = Date.now();
    const job = this.fetchChallenge()
      .then((challenge) => solve(challenge.challenge, challenge.difficulty))
      .then((stamp) => ({ stamp, at }));
    this.pending = job;
    job.then(() => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        if (this.pending === job) {
          this.pending = null;
          this.fill();
        }
      }, this.freshForMs);
    }, () => {
      if (this.pending === job) this.pending = null; // offline, say: take() solves afresh
    });
  }

  // A fresh stamp: the prepared one if there is one (waiting for it if it is being solved),
  // else one solved now with onProgress. The next one is started at once.
  async take(onProgress) {
    const job = this.pending;
    this.pending = null;
    clearTimeout(this.timer);
    let stamp = null;
    if (job) {
      try {
        const ready = await job;
        if (Date.now() - ready.at < this.freshForMs) stamp = ready.stamp;
      } catch {
        stamp = null;
      }
    }
    if (stamp === null) {
      const challenge = await this.fetchChallenge();
      stamp = await solve(challenge.challenge, challenge.difficulty, { onProgress });
    }
    this.fill();
    return stamp;
  }
}
