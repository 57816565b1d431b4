"""A stamp solved by static/js/pow.js in Chromium verifies in Python."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from service.pow import PowInvalid, ProofOfWork, leading_zero_bits

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
  let reports = 0;
  const onProgress = () => { if (++reports === 2) controller.abort(); };
  try {
    await P.solve(challenge, 64, {onProgress, signal: controller.signal});
    return 'solved';
  } catch (e) {
    return [e.name, reports];
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
    assert leading_zero_bits(bytes.fromhex(digest)) >= 12
    assert digest == hashlib.sha256(stamp.encode()).hexdigest()
    assert expires_at > dt.datetime.now(dt.UTC)
    tries = int(stamp.rpartition(":")[2])
    # Progress was reported every few thousand tries, with the expected effort.
    assert len(got["progress"]) == tries // 4096
    assert all(p["expected"] == 4096 for p in got["progress"])
    with pytest.raises(PowInvalid):
        ProofOfWork(KEY, 13).verify(stamp)  # a higher setting refuses the weaker challenge


def test_browser_solving_can_be_aborted(page: Any) -> None:
    challenge = ProofOfWork(KEY, 12).issue()["challenge"]
    assert page.evaluate(ABORT_JS, {"challenge": challenge}) == ["AbortError", 2]


def test_browser_refuses_bad_arguments(page: Any) -> None:
    assert page.evaluate(BAD_ARGS_JS, {"challenge": "c"}) == [
        "RangeError", "RangeError", "RangeError", "TypeError", "TypeError",
    ]
