"""Accessibility as a gate: every page a worker or a staff member can reach, checked in
Chromium with axe-core, in zh-CN and English, at phone (390×844) and desktop (1366×900) size,
with and without JavaScript where the page works without it; no page scrolls sideways at
320 px; the server-rendered HTML passes the W3C checker (vnu).

The pages are those of a real installation: the first version's fixture (tests/fixtures/v0.1),
migrated and served by `chuishao serve`, every account signed in through the login page with
its password and TOTP. axe-core comes from the npm registry (scripts/ensure-test-tools.sh) and
is evaluated through the DevTools protocol, so the pages keep their strict CSP.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.upgrade import installation as inst

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]

TOOLS = Path(__file__).resolve().parents[2] / ".venv" / "node" / "node_modules"
AXE = TOOLS / "axe-core" / "axe.min.js"
VNU = TOOLS / "vnu-jar" / "build" / "dist" / "vnu.jar"
SIZES = {"phone": (390, 844), "desktop": (1366, 900)}
LANGS = ("zh_CN", "en")
# Rules switched off, each with its reason. (None today.)
AXE_DISABLED: dict[str, str] = {}


def _require_tools() -> None:
    if AXE.exists() and VNU.exists():
        return
    message = "axe-core/vnu-jar missing (scripts/ensure-test-tools.sh)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _require_tools()
    found = inst.copy_sqlite(tmp_path_factory.mktemp("a11y"))
    found.chuishao("migrate")
    port = _free_port()
    env = found.env()
    env.update({"CHUISHAO_PORT": str(port), "CHUISHAO_BASE_URL": f"http://127.0.0.1:{port}",
                "CHUISHAO_POW_DIFFICULTY": "8"})
    server = subprocess.Popen([str(inst.CHUISHAO), "serve"], env=env, cwd=found.root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2)  # noqa: S310 - loopback
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("chuishao serve did not start") from None
            time.sleep(0.2)
    try:
        yield {"base": base, "installation": found}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def _axe(page: Any) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    options = {"rules": {rule: {"enabled": False} for rule in AXE_DISABLED}}
    result = page.evaluate("(options) => axe.run(document, options)", options)
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "targets": [n["target"] for n in v["nodes"]][:5]} for v in result["violations"]]


# The innermost elements that reach past the right edge, to say what to fix.
_WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter((e) => e.getBoundingClientRect().right > 321 && ![...e.children].some(
     (c) => c.getBoundingClientRect().right > 321))
  .slice(0, 4).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
     + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : ''))
  .join(', ')"""


def _sideways(page: Any) -> int:
    page.set_viewport_size({"width": 320, "height": 700})
    page.wait_for_timeout(50)
    width = int(page.evaluate("document.documentElement.scrollWidth"))
    return width


def _check(page: Any, base: str, path: str, label: str, problems: list[str],
           html_pages: dict[str, str]) -> None:
    for lang in LANGS:
        page.goto(f"{base}/language?lang={lang}&next=/", wait_until="load")
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            response = page.goto(base + path, wait_until="networkidle")
            assert response is not None and response.status < 400, (label, path, lang)
            for violation in _axe(page):
                problems.append(f"{label} {path} [{lang}, {size}]: {violation['id']} "
                                f"({violation['impact']}) {violation['help']} "
                                f"{json.dumps(violation['targets'], ensure_ascii=False)}")
        wide = _sideways(page)
        if wide > 320:
            culprits = page.evaluate(_WIDEST)
            problems.append(f"{label} {path} [{lang}]: scrolls sideways at 320 px "
                            f"(scrollWidth {wide}; widest: {culprits})")
        html_pages[f"{label}{path}-{lang}"] = page.request.get(base + path).text()


def _vnu(html_pages: dict[str, str], directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for number, (name, text) in enumerate(sorted(html_pages.items())):
        path = directory / f"{number:03d}.html"
        path.write_text(text, encoding="utf-8")
        files.append((name, path))
    done = subprocess.run(["java", "-jar", str(VNU), "--errors-only", "--format", "json",
                           *[str(p) for _, p in files]], capture_output=True, text=True,
                          timeout=300)
    names = {str(p.resolve()): name for name, p in files}
    report = json.loads(done.stderr or done.stdout or '{"messages": []}')
    return [f"{names.get(m.get('url', '').removeprefix('file:'), m.get('url'))}: "
            f"line {m.get('lastLine')}: {m.get('message')}"
            for m in report.get("messages", []) if m.get("type") == "error"]


def _sign_in(page: Any, base: str, found: inst.Installation, username: str) -> None:
    account = found.manifest["accounts"][username]
    page.goto(base + "/console/login", wait_until="load")
    page.fill("#l-username", username)
    page.fill("#l-password", account["password"])
    page.wait_for_selector("#login-submit:not([disabled])")
    code, _ = inst.totp(account["totp_secret_base32"])
    page.fill("#l-code", code)
    page.click("#login-submit")
    page.wait_for_url("**/console/cases", timeout=30_000)


def _staff_pages(found: inst.Installation) -> dict[str, list[str]]:
    cases = {label: case["case_id"] for label, case in found.manifest["cases"].items()}
    rewards = {r["case"]: rid for rid, r in found.manifest["rewards"].items()}
    return {
        "zhang.wei": ["/console/cases", f"/console/cases/{cases['C06']}",
                      f"/console/cases/{cases['C02']}", f"/console/cases/{cases['C05']}",
                      f"/console/cases/{cases['C06']}/rectifications", "/console/rectifications",
                      "/console/ledger", "/console/stats", f"/console/cases/{cases['C05']}/reward",
                      "/console/account"],
        "wang.qiang": ["/console/rewards", f"/console/rewards/{rewards['C05']}",
                       f"/console/cases/{cases['C09']}"],
        "zhao.min": ["/console/rewards", f"/console/rewards/{rewards['C07']}"],
        "sun.li": ["/console/audit", "/console/rewards"],
        "admin.chen": ["/console/admin", "/console/admin/invitations", "/console/admin/channels",
                       "/console/admin/notifications",
                       "/console/reward-policies", "/console/admin/board"],
    }


@pytest.mark.parametrize("username", ["zhang.wei", "wang.qiang", "zhao.min", "sun.li",
                                      "admin.chen"])
def test_console_pages_pass_axe(chromium: Any, site: dict[str, Any], username: str,
                                tmp_path: Path) -> None:
    found, base = site["installation"], site["base"]
    context = chromium.new_context()
    page = context.new_page()
    problems: list[str] = []
    html: dict[str, str] = {}
    try:
        _sign_in(page, base, found, username)
        for path in _staff_pages(found)[username]:
            _check(page, base, path, username, problems, html)
    finally:
        context.close()
    problems += _vnu(html, tmp_path / "html")
    assert not problems, "\n".join(problems)


def _as_without_scripts(route: Any) -> None:
    """The page as a browser without JavaScript builds it: its scripts never run and its
    <noscript> content is part of the document. axe itself needs scripts (its timers do not
    fire in a page with scripting off), so the page is served that way to a scripting page."""
    response = route.fetch()
    if "text/html" not in response.headers.get("content-type", ""):
        route.fulfill(response=response)
        return
    html = re.sub(r"<script\b[^>]*>.*?</script>", "", response.text(), flags=re.S)
    html = html.replace("<noscript>", "").replace("</noscript>", "")
    route.fulfill(response=response, body=html)


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_public_pages_pass_axe(chromium: Any, site: dict[str, Any], javascript: bool,
                               tmp_path: Path) -> None:
    base = site["base"]
    context = chromium.new_context()
    page = context.new_page()
    if not javascript:
        page.route(f"{base}/**", _as_without_scripts)
    problems: list[str] = []
    html: dict[str, str] = {}
    try:
        for path in ("/", "/followup", "/console/login"):
            _check(page, base, path, "public", problems, html)
    finally:
        context.close()
    problems += _vnu(html, tmp_path / "html")
    assert not problems, "\n".join(problems)
