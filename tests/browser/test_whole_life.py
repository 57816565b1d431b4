"""The whole life of a report in real Chromium, with every person made in the console, once in
zh-CN and once in English.

A fresh installation (migrated, initialised and given its first administrator's link on the
command line; nothing else in the database) is set up by the administrator in the browser: a
channel, invitations for two reviewers, an approver, a finance officer and an auditor, each of
whom enrols in a browser of their own (password, keys made in the page, TOTP computed here,
the sign-in's proof of work); then the administrator makes the reviewers recipients and gives
the others the channel's scope.

Three reports arrive: one through the reporter's page with JavaScript, one without it, and one
from the Python client, a duplicate of the first. Reviewer 1 refuses the second (ticked box,
a reason), the approver reopens it, its reporter reads both on /followup. Reviewer 1 accepts and
verifies the first, records a fix made on the spot with a photo sealed in the page, reviewer 2
checks it; the duplicate pair is told apart on the page and the first one chosen as first
valid. A reward is proposed and approved, the reporter claims it with the receipt, finance
records the payment. The auditor reads the trail in sentences and opens both spreadsheets
(reward export, hazard ledger) with openpyxl.

Assertions are on what the pages show; the database is only read, to find which case a receipt
made. Screenshots of the case page, the rectification record, the audit trail and the ledgers
at 1366 and 768 px wide go to CHUISHAO_SCREENSHOTS (a folder) when it is set.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from playwright.sync_api import expect
from sqlalchemy import select

import crypto
from reviewer.auditview import FIELD_LABELS, SENTENCES
from service.client import Client, urllib_transport
from service.domain.installation import get_installation
from service.domain.models import Case, KeySlot
from service.domain.models.rewards import RewardClaimSlot
from service.platform.i18n import Catalogs
from tests.browser.installed import Installed, installed

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ["CHUISHAO_SCREENSHOTS"]) if os.environ.get("CHUISHAO_SCREENSHOTS") \
    else None
PASSWORD = "长城 correct horse battery"
CHANNEL = "acme"
FIRST = {"unit": "某机械厂", "location": "三号车间 液氨储罐区",
         "description": "液氨储罐的阀门泄漏，地面结霜，已经两周没有修理。"}
DUPLICATE: dict[str, Any] = {"v": 1, "unit": "某机械厂", "location": "液氨储罐区",
                             "category": "hazard",
                             "description": "三号车间液氨罐阀门漏气，氨味很重，一直没人修。",
                             "seen_at": "", "insider": "", "language": "zh_CN"}
ELSEWHERE = {"unit": "隔壁物流公司", "location": "城东仓库",
             "description": "物流公司仓库里堆放了大量烟花爆竹。"}
RAW_CODE = re.compile(r"\b(?:case|reward|rectification|admin|account|ledger|audit|session|"
                      r"password|policy|export)\.[a-z_.]+\b")


def tr(lang: str, message: str, **params: object) -> str:
    return Catalogs.load().gettext(lang)(message, **params)


def totp(secret: bytes, offset_steps: int = 0) -> str:
    return TOTP(secret, 6, SHA1(), 30).generate(  # noqa: S303 - RFC 6238 uses SHA-1
        time.time() + 30 * offset_steps).decode()


def shoot(page: Any, name: str) -> None:
    """The page at both widths the console must work at; nothing may stick out sideways."""
    for width, height in ((1366, 900), (768, 1024)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (name, width, overflow)
        if SHOTS is not None:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


@dataclass
class Person:
    username: str
    page: Any
    secret: bytes = b""


@dataclass
class World:
    """Browser contexts on the installation, each watched for errors and other origins."""

    chromium: Any
    site: Installed
    locale: str
    contexts: list[Any] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return "zh_CN" if self.locale == "zh-CN" else "en"

    def t(self, message: str, **params: object) -> str:
        return tr(self.lang, message, **params)

    def page(self, *, javascript: bool = True, locale: str | None = None) -> Any:
        context = self.chromium.new_context(base_url=self.site.base_url,
                                            locale=locale or self.locale,
                                            accept_downloads=True,
                                            java_script_enabled=javascript)
        context.on("request", lambda r: self.requests.append(r.url))
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text)
                if m.type == "error" and "favicon" not in m.location.get("url", "") else None)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        elsewhere = [u for u in self.requests if not u.startswith(self.site.base_url + "/")]
        assert not elsewhere, f"requests to other origins: {elsewhere}"
        assert not self.errors, f"errors in the pages: {self.errors}"

    # -------------------------------------------------------------------------- accounts

    def enrol(self, link_path: str, username: str, display: str, locale: str) -> Person:
        """Follow an invitation in a browser of one's own, then sign in there."""
        page = self.page(locale=locale)
        page.goto(link_path)
        page.wait_for_selector("#invite-submit:not([disabled])")
        page.fill("#i-username", username)
        page.fill("#i-display", display)
        page.fill("#i-password", PASSWORD)
        page.fill("#i-password2", PASSWORD)
        page.click("#invite-submit")
        page.wait_for_url(re.compile(r".*/console/invite/.+/totp$"))
        shown = page.get_attribute("#totp-secret", "data-secret")
        secret = base64.b32decode(shown + "=" * (-len(shown) % 8))
        page.fill("#t-code", totp(secret))
        page.click("#totp-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/console/login\?welcome=1$"))
        expect(page.locator("#welcome")).to_be_visible()
        # The enrolment spent this time step's code: sign in with the next one.
        page.wait_for_selector("#login-submit:not([disabled])")
        page.fill("#l-username", username)
        page.fill("#l-password", PASSWORD)
        page.fill("#l-code", totp(secret, 1))
        page.click("#login-submit")
        page.wait_for_url(re.compile(r".*/console/cases$"))
        return Person(username, page, secret)

    def invite(self, admin: Person, roles: list[str]) -> str:
        page = admin.page
        page.goto("/console/admin/invitations")
        for box in page.locator("#invite-create input[name=roles]").all():
            box.set_checked(box.get_attribute("value") in roles)
        page.click("#invite-create button[type=submit]")
        link = page.locator("#invitation-link")
        expect(link).to_be_visible()
        text = link.inner_text().strip()
        assert text.startswith(self.site.base_url + "/console/invite/")
        return str(text[len(self.site.base_url):])

    # -------------------------------------------------------------------------- reporters

    def report_in_page(self, page: Any, report: dict[str, str], *, javascript: bool) -> str:
        page.goto("/")
        if javascript:
            page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
        page.fill("#f-unit", report["unit"])
        page.fill("#f-location", report["location"])
        page.select_option("#f-category", "hazard")
        page.fill("#f-description", report["description"])
        page.click("#submit-report")
        selector = "#receipt-panel:not([hidden]) #receipt-code" if javascript \
            else "#receipt-code"
        page.wait_for_selector(selector)
        return str(page.text_content(selector)).strip()

    def followup(self, page: Any, receipt: str, *, javascript: bool) -> list[str]:
        page.goto("/followup")
        if javascript:
            page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
        page.fill("#f-receipt", receipt)
        page.click("#followup-form button[type=submit]")
        if javascript:
            page.wait_for_selector("#case-panel:not([hidden]) #events li")
        else:
            page.wait_for_selector("#events li")
        texts: list[str] = page.locator("#events li").all_inner_texts()
        return texts

    def slot_suites(self, *case_ids: str) -> set[str]:
        """The suites of the cases' key slots; none of them may be classical-only."""
        with self.site.session() as session:
            cases = session.scalars(select(Case).where(Case.id.in_(case_ids))).all()
            assert len(cases) == len(case_ids)
            assert not any(case.classical_only for case in cases)
            return set(session.scalars(select(KeySlot.suite).where(
                KeySlot.case_id.in_(case_ids))))

    def claim_suites(self, reward_id: str) -> set[str]:
        with self.site.session() as session:
            return set(session.scalars(select(RewardClaimSlot.suite).where(
                RewardClaimSlot.reward_id == reward_id)))

    def case_of(self, receipt: str) -> str:
        """Which case a receipt made (read only: the reviewers see cases, not receipts)."""
        with self.site.session() as session:
            done = get_installation(session)
            assert done is not None
            keys = crypto.derive_receipt(receipt, done.salt,
                                         self.site.settings.receipt_iterations)
            case = session.scalar(
                select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
            assert case is not None and case.ready
            return str(case.id)


@dataclass
class Crew:
    world: World
    people: dict[str, Person]


@pytest.fixture(scope="module")
def crew(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crew]:
    """One installation and its staff for both languages: setting up six accounts is the
    slow part, and an installation serves people of either language at once."""
    with installed(tmp_path_factory.mktemp("whole-life")) as site:
        world = World(chromium, site, "zh-CN")
        try:
            yield Crew(world, staff(world))
        finally:
            world.close()


def act(page: Any, form: str, done: str) -> None:
    """Submit a case or record form and wait for the page that says it was done."""
    page.click(f"{form} button[type=submit]")
    page.wait_for_url(re.compile(rf".*[?&]done={done}\b.*"))


def staff(world: World) -> dict[str, Person]:
    """The administrator sets up the channel and every account from the console."""
    t = world.t
    admin = world.enrol(world.site.admin_link, "admin", "管理员 Admin", "zh-CN")
    page = admin.page
    page.goto("/console/admin/channels")
    page.fill("#ch-slug", CHANNEL)
    page.select_option("#ch-kind", "enterprise")
    page.fill("#ch-zh", "某机械厂内部举报")
    page.fill("#ch-en", "ACME internal line")
    page.click("#channel-add button[type=submit]")
    expect(page.locator(f"#channel-{CHANNEL}")).to_contain_text("某机械厂内部举报")

    people = {"admin": admin}
    # Each enrols in a browser of their own, some in English, some in Chinese.
    for username, display, roles, locale in (("reviewer.one", "王芳", ["reviewer"], "zh-CN"),
                                             ("reviewer.two", "李雷", ["reviewer"], "en"),
                                             ("chief", "张主任", ["approver"], "en"),
                                             ("cashier", "赵会计", ["finance"], "zh-CN"),
                                             ("inspector", "钱审计", ["auditor"], "en")):
        link = world.invite(admin, roles)
        people[username] = world.enrol(link, username, display, locale)

    # Recipients: the two reviewers receive the channel's new reports.
    for username in ("reviewer.one", "reviewer.two"):
        page.goto("/console/admin/channels")
        row = page.locator(f"#channel-{CHANNEL}")
        form = row.locator("form[action$='/recipients']")
        form.locator("select[name=user_id]").select_option(label=username)
        form.locator("button[type=submit]").click()
        expect(page.locator(f"#channel-{CHANNEL} li", has_text=username)).to_be_visible()
    # Scope: the others see the channel's records.
    for username in ("chief", "cashier", "inspector"):
        page.goto("/console/admin")
        row = page.locator("#users tr", has=page.locator("td", has_text=re.compile(
            rf"^{re.escape(username)}$")))
        form = row.locator("form[action$='/scope']")
        form.locator("select[name=channel_id]").select_option(label=CHANNEL)
        form.locator("button[type=submit]").click()
        expect(page.locator("#users tr", has=page.locator("td", has_text=re.compile(
            rf"^{re.escape(username)}$"))).locator("td.scope li")).to_contain_text(CHANNEL)
    page.goto("/console/admin")
    users = page.locator("#users")
    for username in ("reviewer.one", "reviewer.two"):
        expect(users.locator("tr", has_text=username).locator("td.receives")).to_contain_text(
            CHANNEL)
    for username in ("chief", "cashier", "inspector"):
        expect(users.locator("tr", has_text=username).locator("td.receives")).to_contain_text(
            t("receives no reports"))
    page.goto("/console/admin/channels")
    expect(page.locator(f"#channel-{CHANNEL} td.scope-only")).to_contain_text("inspector")
    return people


def workbook(download: Any, folder: Path) -> Any:
    """A downloaded spreadsheet, saved under the name the browser was given, opened."""
    name = download.suggested_filename
    assert name.endswith(".xlsx"), name
    path = folder / name
    download.save_as(path)
    return openpyxl.load_workbook(path).active


def open_case(person: Person, case_id: str, text: str) -> Any:
    """The case page, with the report decrypted in the person's browser."""
    page = person.page
    page.goto(f"/console/cases/{case_id}")
    expect(page.locator("#report")).to_contain_text(text)
    return page


def verify_true(world: World, page: Any) -> None:
    t = world.t
    act(page, "#form-accept", "accept")
    expect(page.locator("#case-status")).to_have_text(t("Accepted"))
    page.select_option("#grade", "major")
    page.select_option("#criterion", index=1)
    act(page, "#form-grade", "grade")
    act(page, "#form-start_verification", "start_verification")
    expect(page.locator("#case-status")).to_have_text(t("Being verified"))
    page.select_option("#result", "true")
    act(page, "#form-verify", "verify")
    expect(page.locator("#case-status")).to_have_text(t("Verified"))


def set_place(page: Any, location: str) -> None:
    page.fill("#enterprise", "某机械厂")
    page.fill("#location", location)
    act(page, "#form-facts", "facts")


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_whole_life_of_a_report(crew: Crew, locale: str, tmp_path: Path) -> None:
    world, people = crew.world, crew.people
    world.locale = locale
    t, lang = world.t, world.lang
    for person in people.values():  # everyone reads the console in this run's language
        person.page.goto(f"/language?lang={lang}&next=/console/account")
        expect(person.page.locator("html")).to_have_attribute("lang", re.compile(
            "^zh" if lang == "zh_CN" else "^en"))
    # This run's reports and records are told apart from the other run's by a tag.
    tag = f"（{locale}）"
    first_report = {**FIRST, "description": FIRST["description"] + tag}
    duplicate = {**DUPLICATE, "description": DUPLICATE["description"] + tag}
    elsewhere = {**ELSEWHERE, "description": ELSEWHERE["description"] + tag}
    hazard = "液氨储罐出口阀门填料泄漏" + tag
    one, two, chief = people["reviewer.one"], people["reviewer.two"], people["chief"]
    cashier, inspector = people["cashier"], people["inspector"]

    # ---------------------------------------------------------------- three reports arrive
    # The duplicate tie needs both reports in one time period (an hour): never straddle one.
    step = world.site.settings.time_granularity_seconds
    if step - time.time() % step < 90:
        time.sleep(step - time.time() % step + 1)
    reporter = world.page()
    first_receipt = world.report_in_page(reporter, first_report, javascript=True)
    # The same hazard, sent at once from a script: the two share a time period.
    dup_receipt = Client(urllib_transport(world.site.base_url), language=world.locale).submit(
        CHANNEL, duplicate)
    plain = world.page(javascript=False)
    other_receipt = world.report_in_page(plain, elsewhere, javascript=False)
    first, dup, other = (world.case_of(r) for r in (first_receipt, dup_receipt, other_receipt))
    # Sealed in the page, by the Python client and by the server without JavaScript: every
    # key slot of all three is the hybrid (suite v2), so none is marked classical-only.
    assert world.slot_suites(first, dup, other) == {crypto.SUITE_V2}

    one.page.goto("/console/cases")
    for case_id in (first, dup, other):
        expect(one.page.locator(f"a[href='/console/cases/{case_id}']").first).to_be_visible()

    # ---------------------------------------------------------------- refused and reopened
    page = open_case(one, other, elsewhere["description"])
    expect(page.locator("#form-not_accept")).to_be_hidden()
    page.click("#refusal summary")
    page.select_option("#reason", "out_of_scope")
    note = "物流公司不在本厂内部热线受理范围，请向区应急管理局举报。"
    page.fill("#na-note", note)
    page.click("#button-not_accept")  # the box is not ticked: the browser keeps the form
    assert page.evaluate("document.getElementById('na-confirm').validity.valueMissing")
    expect(page.locator("#case-status")).to_have_text(t("New (waiting for acceptance)"))
    page.check("#na-confirm")
    page.click("#button-not_accept")
    page.wait_for_url(re.compile(r".*[?&]done=not_accept\b.*"))
    expect(page.locator("#case-status")).to_have_text(t("Not accepted"))

    page = chief.page
    page.goto(f"/console/cases/{other}")
    expect(page.locator("#reopen-window")).to_be_visible()
    why = "该物流公司的仓库在厂区内，属于本厂管理范围。"
    page.fill("#reopen-reason", why)
    act(page, "#form-reopen_refusal", "reopen_refusal")
    expect(page.locator("#action-done")).to_have_text(
        t("The refusal was reopened; the case waits for acceptance again."))
    expect(page.locator("#case-status")).to_have_text(t("New (waiting for acceptance)"))

    events = world.followup(plain, other_receipt, javascript=False)
    assert any(note in e for e in events), events
    assert any(why in e for e in events), events
    page = open_case(one, other, elsewhere["description"])
    act(page, "#form-accept", "accept")
    expect(page.locator("#case-status")).to_have_text(t("Accepted"))

    # ---------------------------------------------------------------- verified, fixed on the spot
    page = open_case(one, first, first_report["description"])
    set_place(page, "三号车间 液氨储罐区 东侧阀门")
    verify_true(world, page)
    page.click("#rectification-records")
    page.wait_for_url(f"**/console/cases/{first}/rectifications")
    page.fill("#f-description", hazard)
    act(page, "#form-open", "open")
    record_url = page.url.split("?")[0]
    page.locator("#spot-evidence-picker").wait_for()
    page.fill("#spot-person", "赵师傅（设备科）")
    page.fill("#spot-measures", "当场关闭上游阀门，更换阀门填料并检漏")
    photo = tmp_path / "现场.jpg"
    photo.write_bytes(bytes(range(256)) * 300)
    page.set_input_files("#spot-evidence-files", str(photo))
    act(page, "#form-fixed_on_spot", "fixed_on_spot")
    expect(page.locator("#record-on-spot")).to_have_text(t("removed on the spot"))
    expect(page.locator("#accept-hint")).to_be_visible()  # not by the one who recorded it
    expect(page.locator("li[data-file-id] button.evidence-open")).to_be_visible()
    expect(page.locator("#entries")).to_contain_text("现场.jpg")

    page = two.page
    page.goto(record_url)
    expect(page.locator("li[data-file-id] button.evidence-open")).to_be_visible()
    page.select_option("#accept-result", "pass")
    act(page, "#form-accept", "accept")
    expect(page.locator("#record-state")).to_have_text(t("Passed the acceptance check"))
    shoot(page, f"{lang}-rectification-record")

    # ---------------------------------------------------------------- the duplicate pair
    page = open_case(one, dup, duplicate["description"])
    set_place(page, "三号车间 液氨罐")
    page.select_option("#duplicate", first)
    act(page, "#form-link_duplicate", "link_duplicate")
    verify_true(world, page)
    expect(page.locator("#first-valid-open")).to_be_visible()
    choices = page.locator("#form-decide_first_valid fieldset label")
    labels = choices.all_inner_texts()
    assert len(labels) == 2 and len(set(labels)) == 2, labels
    for case_id, place in ((first, "东侧阀门"), (dup, "液氨罐")):
        label = page.locator(f"label[for='first-{case_id}']").inner_text()
        assert case_id[:8] in label and place in label, label
        # The radio sits on its label's first line, not on a line of its own above it.
        radio = page.locator(f"#first-{case_id}").bounding_box()
        text = page.locator(f"label[for='first-{case_id}']").bounding_box()
        assert radio and text and text["y"] <= radio["y"] < text["y"] + 24, (radio, text)
    page.check(f"#first-{first}")
    page.fill("#first-reason", "第一份举报写明了东侧阀门，现场核实的正是它。")
    act(page, "#form-decide_first_valid", "decide_first_valid")
    rows = page.locator("#duplicate-group tbody tr")
    expect(rows).to_have_count(2)
    first_row = rows.filter(has=page.locator(f"a[href='/console/cases/{first}']"))
    expect(first_row).to_contain_text(t("Yes"))
    expect(first_row).to_contain_text("第一份举报写明了东侧阀门")
    expect(rows.filter(has=page.locator(f"a[href='/console/cases/{dup}']"))).to_contain_text(
        t("No"))

    page = open_case(one, first, first_report["description"])
    expect(page.locator("#case-status")).to_have_text(t("Rectification accepted"))
    shoot(page, f"{lang}-case")

    # ---------------------------------------------------------------- the reward
    page.goto(f"/console/cases/{first}/reward")
    expect(page.locator("#first-valid")).to_have_text(t("yes"))
    policy = page.locator("#r-policy option", has_text="national-2018").get_attribute("value")
    page.select_option("#r-policy", policy)
    page.select_option("#r-type", "hazard")
    page.select_option("#r-grade", "major")
    page.fill("#r-fine", "200000")
    page.click("#form-reward button[value=preview]")
    expect(page.locator("#preview h3")).to_contain_text("30 000.00")
    page.click("#propose-button")
    page.wait_for_url(re.compile(r".*/console/rewards/[0-9a-f]+\?done=proposed$"))
    reward_url = page.url.split("?")[0]
    reward_id = reward_url.rsplit("/", 1)[1]
    expect(page.locator("#reward-status")).to_have_text(t("Proposed, waiting for approval"))

    page = chief.page
    page.goto(reward_url)
    page.click("#form-approve button[type=submit]")
    page.wait_for_url("**?done=*")
    expect(page.locator("#reward-status")).to_have_text(t("Approved, waiting for the claim"))

    events = world.followup(reporter, first_receipt, javascript=True)
    short = reward_id[:8]
    box = reporter.locator(f'#rewards .reward[data-reward-id="{reward_id}"]')
    expect(box.locator(".reward-amount")).to_contain_text("30 000.00")
    reporter.select_option(f"#claim-method-{short}", "bank")
    reporter.fill(f"#claim-account-{short}", "6222 0200 1234 5678")
    reporter.click(f"#claim-form-{short} button[type=submit]")
    reporter.wait_for_selector("#claim-code")
    code = reporter.locator("#claim-code").inner_text().strip()
    assert world.claim_suites(reward_id) == {crypto.SUITE_V2}  # the cashier's and recovery's
    assert any(t("The hazard was removed on the spot; a second person checks the work.") in e
               for e in events), events

    page = cashier.page
    page.goto(reward_url)
    expect(page.locator("#reward-status")).to_have_text(t("Claimed, waiting for payment"))
    page.click("#claim-open")
    expect(page.locator('#claim-fields dd[data-field="account"]')).to_have_text(
        "6222 0200 1234 5678")
    page.fill("#verify-code", code)
    page.click("#form-verify button[type=submit]")
    page.wait_for_url("**?done=verified*")
    page.fill("#pay-code", code)
    page.fill("#pay-reference", "PZ-2026-0042")
    page.click("#form-pay button[type=submit]")
    page.wait_for_url("**?done=paid*")
    expect(page.locator("#reward-status")).to_have_text(t("Paid"))

    # ---------------------------------------------------------------- the auditor
    page = inspector.page
    page.goto("/console/audit")
    sentences = page.locator("#audit td.sentence").all_inner_texts()
    known = {t(text) for text in SENTENCES.values()}
    assert set(sentences) <= known, set(sentences) - known
    for code_name in ("case.accept", "case.not_accept", "case.reopen_refusal",
                      "case.link_duplicate", "case.decide_first_valid",
                      "rectification.fixed_on_spot", "reward.approve", "reward.paid"):
        assert t(SENTENCES[code_name]) in sentences, code_name
    shown = page.locator("#audit").inner_text()
    assert not RAW_CODE.search(shown), RAW_CODE.findall(shown)
    labels = set(page.locator("#audit dl.fields dt").all_inner_texts())
    allowed = {t(text) for text in FIELD_LABELS.values()} | {t("Acceptance check")}
    assert labels <= allowed, labels - allowed
    for code_value in ("out_of_scope", "awaiting_acceptance", "not_accepted"):
        assert code_value not in shown, code_value
    accepted = page.locator("#audit tr[data-action='rectification.accept'] dl.fields").first
    expect(accepted).to_contain_text(t("Passed the acceptance check"))
    expect(accepted).to_contain_text(t("Passed"))
    shoot(page, f"{lang}-audit")

    page.goto("/console/rewards")
    expect(page.locator(f'#ledger tr[data-reward-id="{reward_id}"]')).to_contain_text(
        t("Paid"))
    with page.expect_download() as download:
        page.click("#export-xlsx button[type=submit]")
    sheet = workbook(download.value, tmp_path)
    header = [c.value for c in sheet[1]]
    row = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[0] == reward_id)
    values = dict(zip(header, row, strict=True))
    amount = next(v for k, v in values.items() if "Amount (yuan)" in k)
    fen = next(v for k, v in values.items() if "Amount (fen)" in k)
    status = next(v for k, v in values.items() if k.endswith("/ Status"))
    assert isinstance(amount, int | float) and amount == 30000, amount
    assert isinstance(fen, int) and fen == 3_000_000, fen
    assert status == f"{tr('zh_CN', 'Paid')} / Paid", status
    shoot(page, f"{lang}-reward-ledger")

    page.goto("/console/ledger")
    page.select_option("#ledger-channel", label="ACME internal line" if lang == "en"
                       else "某机械厂内部举报")
    with page.expect_download() as download:
        page.click("#ledger-form button[value=xlsx]")
    sheet = workbook(download.value, tmp_path)
    header = [c.value for c in sheet[1]]
    rows = [dict(zip(header, r, strict=True))
            for r in sheet.iter_rows(min_row=2, values_only=True) if any(r)]
    mine = [r for r in rows if r[t("Hazard description")] == hazard]
    assert len(mine) == 1, rows
    entry = mine[0]
    assert entry[t("Hazard grade")] == t("Major accident hazard")
    assert entry[t("State")] == t("Passed the acceptance check")
    shoot(page, f"{lang}-hazard-ledger")
