"""A stamp solved by static/js/pow.js in Chromium verifies in Python."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from service.domain.pow import PowInvalid, ProofOfWork, leading_zero_bits

pytestmark = pytest.mark.browser

KEY = "test-secret-key-not-for-production"

SOLVE_JS = """
async ({challenge, difficulty}) => {
  const P = await import('/static/js/pow.js');
  const progress = [];
  const stamp = await P.solve(challenge, difficulty, {onProgress: (p) => progress.push(p)});
  return {stamp, progress};
}
"""

ABORT_JS = """
async ({challenge}) => {
  const P = await import('/static/js/pow.js');
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 300);
  try {
    await P.solve(challenge, 64, {signal: controller.signal});
    return 'solved';
  } catch (e) {
    return [e.name];
  }
}
"""

BAD_ARGS_JS = """
async ({challenge}) => {
  const P = await import('/static/js/pow.js');
  const out = [];
  for (const [c, d] of [[challenge, -1], [challenge, 65], [challenge, 1.5], ['', 8], [7, 8]]) {
    try { await P.solve(c, d); out.push('solved'); } catch (e) { out.push(e.name); }
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def page(browser_context: Any, static_server: str) -> Iterator[Any]:
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(static_server + "/")
    try:
        yield page
    finally:
        page.close()
    assert not errors, f"errors in page: {errors}"


def test_browser_stamp_verifies_in_python(page: Any) -> None:
    pow12 = ProofOfWork(KEY, 12)
    issued = pow12.issue()
    got = page.evaluate(SOLVE_JS, issued)
    stamp = got["stamp"]
    assert stamp.startswith(issued["challenge"] + ":")
    digest, expires_at = pow12.verify(stamp)
    counters = stamp.rpartition(":")[2].split(".")
    assert len(counters) == 64  # 64 puzzles of 6 bits: the expected work of 12 bits
    for index, counter in enumerate(counters):
        one = hashlib.sha256(f"{issued['challenge']}:{index}:{counter}".encode()).digest()
        assert leading_zero_bits(one) >= 6
    assert expires_at > dt.datetime.now(dt.UTC)
    # Progress: once per solved puzzle, counting up to all of them, with the expected effort.
    assert [p["solved"] for p in got["progress"]] == list(range(1, 65))
    assert all(p["puzzles"] == 64 and p["expected"] == 4096 for p in got["progress"])
    assert got["progress"][-1]["tries"] == sum(int(c) + 1 for c in counters)
    with pytest.raises(PowInvalid):
        ProofOfWork(KEY, 13).verify(stamp)  # a higher setting refuses the weaker challenge


def test_browser_solving_can_be_aborted(page: Any) -> None:
    challenge = ProofOfWork(KEY, 12).issue()["challenge"]
    assert page.evaluate(ABORT_JS, {"challenge": challenge}) == ["AbortError"]


SHA_JS = """
async (lengths) => {
  const S = await import('/static/js/sha256.js');
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const out = [];
  for (const n of lengths) {
    const bytes = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 255);
    const web = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    out.push([hex(S.sha256(bytes)), hex(web)]);
  }
  // search() against WebCrypto on prefixes that end in every place of a block.
  for (const n of [1, 50, 54, 55, 56, 63, 64, 65, 100, 127]) {
    const prefix = new TextEncoder().encode('p'.repeat(n) + ':');
    const c = S.search(prefix, 8, 0, 1 << 20);
    const msg = new TextEncoder().encode('p'.repeat(n) + ':' + c);
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', msg));
    out.push([d[0], c]);
  }
  return out;
}
"""


def test_own_sha256_matches_webcrypto(page: Any) -> None:
    got = page.evaluate(SHA_JS, [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 1000])
    for mine, web in got[:11]:
        assert mine == web
    for first_byte, counter in got[11:]:
        assert first_byte == 0 and counter >= 0


def test_browser_refuses_bad_arguments(page: Any) -> None:
    assert page.evaluate(BAD_ARGS_JS, {"challenge": "c"}) == [
        "RangeError", "RangeError", "RangeError", "TypeError", "TypeError",
    ]
