"""CPU-heavy work of anonymous requests runs in a lane before the database gate, never on
the event loop: every path that derives a key from what a visitor sent has a prepare step.

The live attacks (with their figures) are in tests/reliability/test_dos.py; these check, in
process and fast, that no such path falls back to computing on the loop.
"""

from __future__ import annotations

import logging
import re

import anyio
import pytest
from starlette.testclient import TestClient

from service.client import solve_pow
from service.platform import offload
from tests.factories import api_client, make_world, with_token

REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨管道泄漏无人处理。", "seen_at": "", "insider": "",
          "language": "zh_CN"}
ON_LOOP = "without its prepare step"
# Every no-JavaScript post carries the marker its form holds inside <noscript> (reportform).
NOSCRIPT = {"sealing": "noscript"}


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _csrf(client: TestClient) -> dict[str, str]:
    page = client.get("/console/login").text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token is not None
    return {"X-CSRF-Token": token.group(1), "Accept": "application/json"}


@pytest.mark.parametrize("body", [
    {"username": "nobody-here", "auth_secret": "A" * 43, "totp": "123456"},
    {"username": "reviewer0", "auth_secret": "A" * 43, "totp": "123456"},
    {"totp": "1"},
    [1, 2],
    7,
])
def test_sign_in_scrypt_is_done_before_the_gate(client: TestClient, world, caplog, body) -> None:  # type: ignore[no-untyped-def]
    headers = _csrf(client)
    if isinstance(body, dict):
        # Every attempt carries a solved stamp for the claimed name, as login.js sends it:
        # only then does the attempt reach the scrypt, which must happen in the lane.
        pre = client.post("/console/api/prelogin", json={"username": body.get("username")},
                          headers=headers).json()["pow"]
        body = {**body, "pow": solve_pow(pre["challenge"], pre["difficulty"])}
    with caplog.at_level(logging.WARNING, logger="chuishao.offload"):
        response = client.post("/console/login", json=body, headers=headers)
    if isinstance(body, dict):
        assert response.status_code == 401
    else:
        # A body that cannot carry a stamp is refused for the stamp, before any scrypt.
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "pow_invalid"
    assert ON_LOOP not in caplog.text


def test_nojs_receipt_derivations_are_done_before_the_gate(client: TestClient, world, caplog) -> None:  # type: ignore[no-untyped-def]
    receipt = api_client(client).submit("acme", REPORT)
    with caplog.at_level(logging.WARNING, logger="chuishao.offload"):
        assert client.post("/followup", data={"receipt": receipt, **NOSCRIPT}).status_code == 200
        assert client.post("/followup", data={"receipt": "1" * 20, **NOSCRIPT}).status_code == 404
        claim = client.post("/followup/claim", data={"receipt": receipt, "reward": "x",
                                                     **NOSCRIPT})
    assert claim.status_code in (400, 404)
    assert ON_LOOP not in caplog.text


def test_a_nojs_report_derives_its_receipt_before_the_gate(client: TestClient, world, caplog) -> None:  # type: ignore[no-untyped-def]
    form = {"channel": "acme", "unit": "某厂", "location": "", "category": "hazard",
            "description": "安全门被拆除。", "seen_at": "", "insider": "", **NOSCRIPT}
    with caplog.at_level(logging.WARNING, logger="chuishao.offload"):
        page = client.post("/report", data=with_token(client, form))
    assert page.status_code == 200, page.text[:300]
    receipt = re.search(r"\d{3}( \d{3}){6}", page.text)
    assert receipt is not None
    assert client.post("/followup", data={"receipt": receipt.group(0),
                                                  **NOSCRIPT}).status_code == 200
    assert ON_LOOP not in caplog.text


def test_a_lane_runs_one_at_a_time_in_order_and_answers_busy_after_the_wait(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    monkeypatch.setattr(offload, "MAX_WAIT_SECONDS", 0.5)
    running = 0
    most = 0
    order: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
            order.append(n)
        return n

    async def main() -> list[str]:
        results: list[str] = []

        async def one(n: int) -> None:
            try:
                results.append(str(await offload.run("receipt", work, n)))
            except offload.Busy:
                results.append("busy")

        async with anyio.create_task_group() as tasks:
            for n in range(20):
                tasks.start_soon(one, n)
                await anyio.sleep(0.001)
        return results

    # A loop of its own in a thread of its own: the session's Playwright (sync API) keeps
    # asyncio marked as running in the main thread once a browser test has started it.
    outcome: list[list[str]] = []
    runner = threading.Thread(target=lambda: outcome.append(anyio.run(main)))
    runner.start()
    runner.join()
    assert outcome, "the lane's event loop failed"
    results = outcome[0]
    assert most == 1
    assert order == sorted(order)  # arrival order
    assert "busy" in results and "0" in results  # ~10 fit in the wait, the rest are told
