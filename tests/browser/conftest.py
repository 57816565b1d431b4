"""Fixtures for the browser tests: a real Chromium via Playwright and a tiny
static server (strict CSP) serving service/static under /static.

If Chromium is missing, the browser tests FAIL when the environment variable
CI is set and are skipped (loudly) otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import free_port, serve_in_thread

CHROMIUM = Path(os.environ.get("CHUISHAO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]
STATIC_DIR = REPO / "service" / "static"
CSP = "default-src 'none'; script-src 'self'; connect-src 'self'"
BLANK_PAGE = b"<!doctype html><html><head><meta charset=utf-8><title>t</title></head></html>"


def _require_chromium() -> None:
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return
    msg = f"Chromium not found at {CHROMIUM}: browser crypto tests cannot run"
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set, so this is a failure)", pytrace=False)
    print(f"\n{'!' * 72}\n!!! SKIPPING BROWSER TESTS: {msg}\n{'!' * 72}", file=sys.stderr)
    pytest.skip("SKIPPED LOUDLY: " + msg)


def _make_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def blank(request: Any) -> Response:
        return Response(BLANK_PAGE, media_type="text/html; charset=utf-8")

    class CSPMiddleware:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def send_with_csp(message: Any) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    headers.append((b"content-security-policy", CSP.encode()))
                    headers.append((b"cache-control", b"no-store"))
                    message["headers"] = headers
                await send(message)

            await self.app(scope, receive, send_with_csp)

    app = Starlette(
        routes=[
            Route("/", blank),
            Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
        ]
    )
    return CSPMiddleware(app)


@pytest.fixture(scope="session")
def static_server() -> Iterator[str]:
    """Serve service/static under /static and a blank CSP page at /."""
    with serve_in_thread(_make_app(), free_port(), lifespan="off", name="static-server") as base:
        yield base


@pytest.fixture(scope="session")
def browser_context(chromium: Any, static_server: str) -> Iterator[Any]:
    context = chromium.new_context(base_url=static_server)
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(static_server + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    try:
        yield context
    finally:
        context.close()
    assert not outside, f"page tried to load from elsewhere: {outside}"


@pytest.fixture(scope="module")
def crypto_page(browser_context: Any, static_server: str) -> Iterator[Any]:
    """A fresh page on the blank CSP page; the module loads via import()."""
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    page.goto(static_server + "/")
    ok = page.evaluate(
        "async () => { const m = await import('/static/js/crypto/index.js');"
        " return typeof m.sealItem === 'function'; }"
    )
    assert ok, "crypto module did not load"
    try:
        yield page
    finally:
        page.close()
    assert not errors, f"errors in page: {errors}"


JS_PRELUDE = """
const C = await import('/static/js/crypto/index.js');
const E = await import('/static/js/crypto/encodings.js');
const b = E.b64uDecode, u = E.b64uEncode, hex = E.bytesToHex, unhex = E.hexToBytes;
async function rejects(promiseFn) {
  try { await promiseFn(); } catch (e) { return e instanceof C.OpenError ? 'open' : String(e); }
  return 'accepted';
}
async function drain(gen) {
  const out = [];
  for await (const x of gen) out.push(x);
  return out;
}
"""


@pytest.fixture(scope="module")
def js(crypto_page: Any) -> Any:
    """js(body, arg) runs `body` as an async function of `arg` in the page, with the
    crypto module as C and helpers b (b64url decode), u (encode), hex, unhex,
    rejects(fn) -> 'open' | 'accepted' | other error text, drain(asyncGen)."""

    def call(body: str, arg: Any = None) -> Any:
        return crypto_page.evaluate(f"async (arg) => {{ {JS_PRELUDE}\n{body}\n}}", arg)

    return call
