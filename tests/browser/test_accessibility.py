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

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.serverproc import free_port, serving
from tests.upgrade import installation as inst

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]

TOOLS = Path(__file__).resolve().parents[2] / ".venv" / "node" / "node_modules"
AXE = TOOLS / "axe-core" / "axe.min.js"
VNU = TOOLS / "vnu-jar" / "build" / "dist" / "vnu.jar"
SIZES = {"phone": (390, 844), "desktop": (1366, 900)}
LANGS = ("zh_CN", "en")
# Rules switched off, each with its reason. (None today.)
AXE_DISABLED: dict[str, str] = {}
# Every (who, page or state, language, size) checked in this run, for the summary at the end.
CHECKED: list[tuple[str, str, str, str]] = []


def _require_tools() -> None:
    if AXE.exists() and VNU.exists():
        return
    message = "axe-core/vnu-jar missing (scripts/ensure-test-tools.sh)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _require_tools()
    found = inst.copy_sqlite(tmp_path_factory.mktemp("a11y"))
    found.chuishao("migrate")
    port = free_port()
    env = found.env()
    env.update({"CHUISHAO_PORT": str(port), "CHUISHAO_BASE_URL": f"http://127.0.0.1:{port}",
                "CHUISHAO_POW_DIFFICULTY": "8"})
    with serving(env, found.root / "serve.log", command=(str(inst.CHUISHAO),),
                 cwd=found.root) as base:
        yield {"base": base, "installation": found}


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


def _violations(page: Any, where: str, problems: list[str]) -> None:
    for violation in _axe(page):
        problems.append(f"{where}: {violation['id']} ({violation['impact']}) {violation['help']} "
                        f"{json.dumps(violation['targets'], ensure_ascii=False)}")


def _wide(page: Any, where: str, problems: list[str]) -> None:
    wide = _sideways(page)
    if wide > 320:
        culprits = page.evaluate(_WIDEST)
        problems.append(f"{where}: scrolls sideways at 320 px "
                        f"(scrollWidth {wide}; widest: {culprits})")


def _check(page: Any, base: str, path: str, label: str, problems: list[str],
           html_pages: dict[str, str], status: int | None = None) -> None:
    for lang in LANGS:
        _language(page, base, lang)
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            response = page.goto(base + path, wait_until="load", timeout=90_000)
            _settle(page)
            assert response is not None, (label, path, lang)
            if status is None:
                assert response.status < 400, (label, path, lang, response.status)
            else:
                assert response.status == status, (label, path, lang, response.status)
            _violations(page, f"{label} {path} [{lang}, {size}]", problems)
            CHECKED.append((label, path, lang, size))
        _wide(page, f"{label} {path} [{lang}]", problems)
        html_pages[f"{label}{path}-{lang}"] = page.request.get(base + path).text()


def _settle(page: Any) -> None:
    """Let a page's own requests (a script's fetches) finish before it is checked. A page that
    never goes quiet (a connection Chromium keeps open) is checked as it stands: waiting for
    quiet is a courtesy here, not a condition of the check."""
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_load_state("networkidle", timeout=15_000)


def _check_here(page: Any, label: str, what: str, lang: str, problems: list[str]) -> None:
    """The page as it stands (a state reached by a form or a script, not by an address): at
    both sizes, then at 320 px, without loading it again."""
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(100)
        _violations(page, f"{label} {what} [{lang}, {size}]", problems)
        CHECKED.append((label, what, lang, size))
    _wide(page, f"{label} {what} [{lang}]", problems)
    page.set_viewport_size({"width": SIZES["phone"][0], "height": SIZES["phone"][1]})


def _language(page: Any, base: str, lang: str) -> None:
    page.goto(f"{base}/language?lang={lang}&next=/", wait_until="load")


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
    """The pages each account is sure to be checked on: a case in every status it can see, a
    reward in every state. The link crawl (_crawl) adds any other console page they link to."""
    cases = {label: case["case_id"] for label, case in found.manifest["cases"].items()}
    rewards = {r["case"]: rid for rid, r in found.manifest["rewards"].items()}
    channels = {slug: c["id"] for slug, c in found.manifest["channels"].items()}
    return {
        "zhang.wei": ["/console/cases", f"/console/cases/{cases['C06']}",
                      f"/console/cases/{cases['C01']}", f"/console/cases/{cases['C02']}",
                      f"/console/cases/{cases['C03']}", f"/console/cases/{cases['C05']}",
                      f"/console/cases/{cases['C08']}", f"/console/cases/{cases['C09']}",
                      f"/console/cases/{cases['C11']}",
                      f"/console/cases/{cases['C06']}/rectifications", "/console/rectifications",
                      "/console/ledger", "/console/stats", f"/console/cases/{cases['C05']}/reward",
                      f"/console/cases/{cases['C09']}/reward", "/console/account"],
        "li.na": ["/console/cases", f"/console/cases/{cases['C07']}",
                  f"/console/cases/{cases['C04']}", f"/console/cases/{cases['C10']}",
                  f"/console/cases/{cases['C07']}/reward", "/console/rewards"],
        "wang.qiang": ["/console/rewards", f"/console/rewards/{rewards['C05']}",
                       f"/console/rewards/{rewards['C06']}", f"/console/cases/{cases['C09']}",
                       f"/console/cases/{cases['C05']}/reward", "/console/stats",
                       "/console/account"],
        "zhao.min": ["/console/rewards", f"/console/rewards/{rewards['C07']}",
                     f"/console/rewards/{rewards['C06']}", f"/console/rewards/{rewards['C09']}",
                     "/console/cases", "/console/account"],
        "sun.li": ["/console/audit", "/console/rewards", f"/console/rewards/{rewards['C09']}",
                   "/console/stats", "/console/ledger", "/console/rectifications",
                   "/console/cases", "/console/account"],
        "admin.chen": ["/console/admin", "/console/admin/invitations", "/console/admin/channels",
                       *[f"/console/admin/channels/{number}/poster"
                         for number in sorted(channels.values())],
                       f"/console/admin/channels/{channels['hongda-jixie']}/poster?lang=en",
                       "/console/admin/notifications",
                       "/console/reward-policies", "/console/admin/board", "/console/cases",
                       "/console/account"],
    }


def _console_get_routes() -> list[Any]:
    from reviewer.views import (
        accounts,
        admin,
        cases,
        notifications,
        posters,
        rectification,
        rewards,
    )

    # In the order of reviewer/app.py.
    modules = (accounts, cases, admin, notifications, posters, rewards, rectification)
    return [route for module in modules for route in module.ROUTES
            if "GET" in (route.methods or ())]


# Console addresses answered with something other than a page, each with its reason; the
# sign-in and invitation pages are checked by the tests for people not signed in.
NOT_PAGES = {
    "/api/me/key": "JSON for the console's scripts",
    "/cases/{case_id}/replies": "JSON (sealed replies) polled by the case page",
    "/cases/{case_id}/files/{file_id}/chunks/{index:int}": "ciphertext of a file",
    "/admin/channels/{channel_id:int}/poster/file": "the poster as PDF/PNG/SVG",
    "/ledger/export": "a CSV download",
    "/rewards/exports/{export_id}/manifest.json": "a JSON download",
    "/audit/head.json": "a JSON download",
    "/audit/export.{fmt}": "a CSV/JSON download",
    "/audit/signing.pub": "a key file",
    "/login": "checked in test_public_pages_pass_axe",
    "/invite/{token}": "checked in test_invitation_pages_pass_axe",
    "/invite/{token}/totp": "checked in test_invitation_pages_pass_axe",
}

# Every console link and GET form of a page, as paths with their query.
_LINKS = """() => [...document.querySelectorAll('a[href]'), ...document.querySelectorAll(
  'form[action]')].filter((e) => e.tagName === 'A' || (e.method || 'get').toLowerCase() === 'get')
  .map((e) => new URL(e.tagName === 'A' ? e.href : e.action, location.href))
  .filter((u) => u.origin === location.origin && u.pathname.startsWith('/console/'))
  .map((u) => u.pathname + u.search)"""


def _route_of(path: str, routes: list[Any]) -> str | None:
    inner = path.split("?", 1)[0].removeprefix("/console")
    for route in routes:
        if route.path_regex.match(inner):
            return str(route.path)
    return None


def _crawl(page: Any, base: str, start: list[str]) -> list[str]:
    """The given pages, and one page of every other kind they link to, and so on: every
    console page this account can reach by following links."""
    routes = _console_get_routes()
    pages = list(start)
    covered = {_route_of(path, routes) for path in pages}
    done = 0
    while done < len(pages):
        path = pages[done]
        done += 1
        page.goto(base + path, wait_until="load", timeout=90_000)
        _settle(page)
        for link in page.evaluate(_LINKS):
            route = _route_of(link, routes)
            if route is None or route in NOT_PAGES or route in covered or route == "/":
                continue
            covered.add(route)
            pages.append(link)
    return pages


@pytest.mark.parametrize("username", ["zhang.wei", "li.na", "wang.qiang", "zhao.min", "sun.li",
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
        pages = _crawl(page, base, _staff_pages(found)[username])
        for path in pages:
            _check(page, base, path, username, problems, html)
        # The console's own error pages: an address that does not exist, and a page of
        # another role.
        _check(page, base, "/console/no-such-page", username, problems, html, status=404)
        other = "/console/audit" if username == "admin.chen" else "/console/admin"
        _check(page, base, other, username, problems, html, status=403)
    finally:
        context.close()
    problems += _vnu(html, tmp_path / "html")
    assert not problems, "\n".join(problems)


def test_console_routes_are_all_known() -> None:
    """A new console page is either crawled (it has a link) or named in NOT_PAGES."""
    paths = {str(route.path) for route in _console_get_routes()}
    assert set(NOT_PAGES) <= paths


class _WithoutScripts:
    """The page as a browser without JavaScript builds it: its scripts never run and its
    <noscript> content is part of the document. axe itself needs scripts (its timers do not
    fire in a page with scripting off), so the page is served that way to a scripting page.
    Redirects are left to the browser, as without JavaScript; the last page as the server
    sent it is kept for the HTML checker."""

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, route: Any) -> None:
        # A fetch can meet a kept-alive connection the server is closing (uvicorn closes idle
        # ones after 5 s): then it errors or waits, and a route left unanswered holds the page
        # until the navigation's timeout. A GET is safe to ask again.
        for attempt in range(3):
            try:
                response = route.fetch(max_redirects=0, max_retries=2, timeout=20_000)
                break
            except Exception:  # noqa: BLE001 - Playwright's network errors have no common class
                if attempt == 2:
                    route.abort()
                    raise
        if "text/html" not in response.headers.get("content-type", ""):
            route.fulfill(response=response)
            return
        self.last = response.text()
        html = re.sub(r"<script\b[^>]*>.*?</script>", "", self.last, flags=re.S)
        html = html.replace("<noscript>", "").replace("</noscript>", "")
        route.fulfill(response=response, body=html)


_as_without_scripts = _WithoutScripts()


def _board_on(site: dict[str, Any], chromium: Any) -> list[str]:
    """Both channels on the public board, switched on by the admin on the console's page."""
    found, base = site["installation"], site["base"]
    if site.get("board"):
        return list(site["board"])
    context = chromium.new_context()
    page = context.new_page()
    try:
        _sign_in(page, base, found, "admin.chen")
        for slug in found.manifest["channels"]:
            page.goto(base + "/console/admin/board", wait_until="load")
            button = page.locator(f"#board-{slug} form button")
            if page.locator(f"#board-{slug} input[name=public_board][value='1']").count():
                button.click()
                page.wait_for_load_state("load")
    finally:
        context.close()
    site["board"] = [f"/board?channel={slug}" for slug in found.manifest["channels"]]
    return list(site["board"])


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_public_pages_pass_axe(chromium: Any, site: dict[str, Any], javascript: bool,
                               tmp_path: Path) -> None:
    base = site["base"]
    boards = _board_on(site, chromium)
    context = chromium.new_context()
    page = context.new_page()
    if not javascript:
        page.route(f"{base}/**", _WithoutScripts())
    problems: list[str] = []
    html: dict[str, str] = {}
    try:
        for path in ("/", "/followup", "/console/login", "/board", *boards,
                     f"{boards[0]}&period=2024", "/report/sent"):
            _check(page, base, path, "public", problems, html)
        for path in ("/no-such-page", "/board?channel=no-such-line"):
            _check(page, base, path, "public", problems, html, status=404)
    finally:
        context.close()
    problems += _vnu(html, tmp_path / "html")
    assert not problems, "\n".join(problems)


def _fill_report(page: Any, slug: str) -> None:
    page.check(f"input[name=channel][value='{slug}']")
    page.fill("#f-unit", "某机械厂")
    page.fill("#f-location", "三号车间 液氨储罐区")
    page.select_option("#f-category", "hazard")
    page.fill("#f-description", "液氨储罐阀门泄漏，报警器已断电三天。")
    page.fill("#f-seen", "11月20日 夜班")


def _open_case(page: Any, receipt: str) -> None:
    page.fill("#f-receipt", receipt)
    page.click("#followup-form button[type=submit]")


def test_reporter_states_pass_axe_without_javascript(chromium: Any, site: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """What a worker without JavaScript sees after sending: the receipt page, the page once it
    is written down, a refused receipt and the case opened with a receipt (a message from the
    reviewers, a reward to claim, a reward paid), and the page after a reply."""
    found, base = site["installation"], site["base"]
    receipts = {label: case["receipt"] for label, case in found.manifest["cases"].items()}
    served = _WithoutScripts()
    context = chromium.new_context()
    page = context.new_page()
    page.route(f"{base}/**", served)
    problems: list[str] = []
    html: dict[str, str] = {}

    def here(what: str, lang: str) -> None:
        _check_here(page, "nojs", what, lang, problems)
        html[f"nojs {what}-{lang}"] = served.last

    try:
        for lang in LANGS:
            _language(page, base, lang)
            page.goto(base + "/", wait_until="load")
            _fill_report(page, "xiangyang-yjj")
            page.click("#submit-report")
            page.wait_for_selector("#receipt-code")
            assert page.url.endswith("/report/sent")
            here("/report/sent (receipt)", lang)
            page.click("#receipt-written")
            page.wait_for_selector("#report-form")
            page.goto(base + "/report/sent", wait_until="load")
            page.wait_for_selector("#already-sent")
            here("/report/sent (written down)", lang)
            page.goto(base + "/followup", wait_until="load")
            _open_case(page, "1234 5678 9012 3456 7890")
            page.wait_for_selector("#refusal")
            here("/followup (unknown receipt)", lang)
            for label in ("C02", "C06", "C09"):
                page.goto(base + "/followup", wait_until="load")
                _open_case(page, receipts[label])
                page.wait_for_selector("#case-status")
                here(f"/followup (case {label})", lang)
            page.fill("#f-reply", "阀门编号 V-12。" if lang == "zh_CN" else "Valve V-12.")
            page.click("section.reply button[type=submit]")
            page.wait_for_selector(".notice[role=status]")
            here("/followup/reply (sent)", lang)
    finally:
        context.close()
    problems += _vnu(html, tmp_path / "html")
    assert not problems, "\n".join(problems)


def test_reporter_states_pass_axe_with_javascript(chromium: Any, site: dict[str, Any]) -> None:
    """The same with JavaScript: the receipt shown in the page after sealing in the browser,
    a refused receipt, and the case opened in the follow-up page (message, reward to claim,
    reward paid). These are states of the page built by its script: axe only, no vnu."""
    found, base = site["installation"], site["base"]
    receipts = {label: case["receipt"] for label, case in found.manifest["cases"].items()}
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    try:
        for lang in LANGS:
            _language(page, base, lang)
            page.goto(base + "/", wait_until="load")
            page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
            _fill_report(page, "hongda-jixie")
            page.click("#submit-report")
            page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code")
            _check_here(page, "js", "/ (receipt shown)", lang, problems)
            page.click("#receipt-written")
            page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
            page.goto(base + "/followup", wait_until="load")
            page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
            _open_case(page, "1234 5678 9012 3456 7890")
            page.wait_for_selector("#form-error:not([hidden])")
            _check_here(page, "js", "/followup (unknown receipt)", lang, problems)
            for label in ("C02", "C06", "C09"):
                page.goto(base + "/followup", wait_until="load")
                page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
                _open_case(page, receipts[label])
                page.wait_for_selector("#case-panel:not([hidden]) #case-status")
                _settle(page)
                _check_here(page, "js", f"/followup (case {label})", lang, problems)
    finally:
        context.close()
    assert not problems, "\n".join(problems)


def test_invitation_pages_pass_axe(chromium: Any, site: dict[str, Any], tmp_path: Path) -> None:
    """The pages a new staff member reaches from an invitation link: accepting it, then the
    authenticator step."""
    found, base = site["installation"], site["base"]
    context = chromium.new_context()
    page = context.new_page()
    problems: list[str] = []
    html: dict[str, str] = {}
    try:
        _sign_in(page, base, found, "admin.chen")
        page.goto(base + "/console/admin/invitations", wait_until="load")
        page.check("#invite-create input[name=roles][value=reviewer]")
        page.click("#invite-create button[type=submit]")
        page.wait_for_selector("#invitation-link")
        _check_here(page, "admin.chen", "/console/admin/invitations (link made)", "zh_CN",
                    problems)
        link = page.text_content("#invitation-link").strip()
        page.context.clear_cookies()
        path = link[link.index("/console/invite/"):]
        _check(page, base, path, "invitee", problems, html)
        page.goto(base + path, wait_until="load")
        page.fill("#i-username", "wu.fang")
        page.fill("#i-display", "吴芳")
        page.fill("#i-password", "correct horse battery staple 42")
        page.fill("#i-password2", "correct horse battery staple 42")
        page.wait_for_selector("#invite-submit:not([disabled])")
        page.click("#invite-submit")
        page.wait_for_url("**/totp", timeout=60_000)
        _check(page, base, path + "/totp", "invitee", problems, html)
    finally:
        context.close()
    problems += _vnu(html, tmp_path / "html")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    pages = sorted({(who, what) for who, what, _, _ in CHECKED})
    print(f"\naccessibility: {len(CHECKED)} checks of {len(pages)} pages or states")
    for who, what in pages:
        runs = sorted({f"{lang}/{size}" for w, p, lang, size in CHECKED if (w, p) == (who, what)})
        print(f"  {who:11} {what}  [{', '.join(runs)}]")


# ---------------------------------------------------------------------------- contrast by hand

# In the page: for every text node's element and every chart shape, its colour and every
# colour that may lie behind it (the ancestors' background colours, composited; each stop of a
# gradient among them; the fill of any chart shape under a chart label), and its rendered size.
_COLOURS = """() => {
  const rgba = (text) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(text || '');
    if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => {
    const a = top[3] + under[3] * (1 - top[3]);
    if (!a) return [0, 0, 0, 0];
    return [0, 1, 2].map((i) => (top[i] * top[3] + under[i] * under[3] * (1 - top[3])) / a)
      .concat([a]);
  };
  const stops = (image) => (image.match(/rgba?\\([^)]+\\)/g) || []).map(rgba);
  // Every colour the element may stand on: composited from the page up.
  const behind = (element) => {
    const chain = [];
    for (let e = element; e && e.nodeType === 1; e = e.parentElement) chain.push(e);
    let layers = [[255, 255, 255, 1]];
    for (const e of chain.reverse()) {
      const style = getComputedStyle(e);
      const images = stops(style.backgroundImage);
      const colour = rgba(style.backgroundColor);
      let next = layers;
      if (colour && colour[3] > 0) next = next.map((u) => over(colour, u));
      if (images.length) next = images.flatMap((s) => next.map((u) => over(s, u)));
      layers = next;
    }
    return layers;
  };
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
    + (e.getAttribute('class') ? '.' + e.getAttribute('class').trim().split(/\\s+/).join('.') : '');
  const shapes = [...document.querySelectorAll('svg rect, svg circle, svg path')];
  const out = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const e = node.parentElement;
    if (!node.textContent.trim() || seen.has(e)) continue;
    seen.add(e);
    const box = e.getBoundingClientRect();
    const style = getComputedStyle(e);
    if (!box.width || !box.height || style.visibility === 'hidden' || e.closest('[hidden], title, script, style, noscript, option')) continue;
    const inSvg = e.closest('svg');
    let colour = rgba(inSvg ? style.fill : style.color);
    let backs = behind(inSvg || e);
    if (inSvg) {
      // A chart label over a bar stands on the bar.
      for (const s of shapes) {
        const r = s.getBoundingClientRect();
        if (r.left < box.right && r.right > box.left && r.top < box.bottom && r.bottom > box.top)
          backs = backs.concat(backs.map((u) => over(rgba(getComputedStyle(s).fill), u)));
      }
    }
    const opacity = [...(function* () { for (let a = e; a; a = a.parentElement) yield a; })()]
      .reduce((o, a) => o * Number(getComputedStyle(a).opacity), 1);
    colour = [colour[0], colour[1], colour[2], colour[3] * opacity];
    const scale = inSvg ? inSvg.getBoundingClientRect().width / (inSvg.viewBox.baseVal.width || inSvg.getBoundingClientRect().width) : 1;
    out.push({kind: 'text', what: name(e) + ' "' + node.textContent.trim().slice(0, 30) + '"',
              colour, backs, px: parseFloat(style.fontSize) * scale,
              bold: Number(style.fontWeight) >= 700});
  }
  for (const s of document.querySelectorAll('svg rect[fill], svg circle[fill], svg path[fill]')) {
    const style = getComputedStyle(s);
    const edge = style.stroke && style.stroke !== 'none' ? style.stroke : style.fill;
    out.push({kind: 'shape', what: name(s), colour: rgba(edge), backs: behind(s.closest('svg'))});
  }
  return out;
}"""


def _luminance(colour: list[float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4
    red, green, blue = (channel(v) for v in colour[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _ratio(front: list[float], back: list[float]) -> float:
    alpha = front[3]
    shown = [front[i] * alpha + back[i] * (1 - alpha) for i in range(3)] + [1]
    lighter, darker = sorted((_luminance(shown), _luminance(back)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _contrast_faults(found: list[dict[str, Any]], where: str) -> list[str]:
    """WCAG 1.4.3 (text 4.5:1, large text 3:1) and 1.4.11 (chart shapes 3:1 against what they
    stand on), against the worst colour that may lie behind."""
    faults = []
    for item in found:
        if item["colour"] is None:
            continue
        worst = min(_ratio(item["colour"], back) for back in item["backs"])
        if item["kind"] == "text":
            large = item["px"] >= 24 or (item["bold"] and item["px"] >= 18.66)
            need = 3.0 if large else 4.5
        else:
            need = 3.0
        if worst < need:
            faults.append(f"{where}: {item['kind']} {item['what']}: contrast {worst:.2f} < {need}")
    return faults


@pytest.mark.parametrize("username", ["zhang.wei", "sun.li"])
def test_contrast_by_hand_on_statistics_and_audit(chromium: Any, site: dict[str, Any],
                                                  username: str) -> None:
    """Where axe cannot decide colour contrast (text in an SVG chart, text over a gradient or an
    overlapping shape), the colours the page computes are checked here: every text and chart
    shape of the statistics and audit pages, and axe's 'incomplete' contrast nodes among them."""
    found, base = site["installation"], site["base"]
    pages = {"zhang.wei": ["/console/stats", "/console/stats?year=2024"],
             "sun.li": ["/console/audit", "/console/audit?outcome=refused", "/console/stats"]}
    context = chromium.new_context()
    page = context.new_page()
    problems: list[str] = []
    undecided = 0
    try:
        _sign_in(page, base, found, username)
        for lang in LANGS:
            _language(page, base, lang)
            for path in pages[username]:
                for size, (width, height) in SIZES.items():
                    page.set_viewport_size({"width": width, "height": height})
                    page.goto(base + path, wait_until="load", timeout=90_000)
                    _settle(page)
                    where = f"{username} {path} [{lang}, {size}]"
                    items = page.evaluate(_COLOURS)
                    assert items, where
                    problems += _contrast_faults(items, where)
                    _axe(page)  # loads axe into the page
                    result = page.evaluate(
                        "() => axe.run(document, {runOnly: ['color-contrast']})")
                    undecided += sum(len(r["nodes"]) for r in result["incomplete"])
                    CHECKED.append((f"{username} (contrast)", path, lang, size))
    finally:
        context.close()
    print(f"\n{username}: axe left {undecided} contrast nodes undecided; checked by hand above")
    assert not problems, "\n".join(problems)
