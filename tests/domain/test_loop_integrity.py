# ruff: noqa: F811  (pytest fixtures are parameters named like the imported fixture)
"""The rectification loop holds: no "rectified" without a record, a fix on the spot is
recorded and checked by a second person, refusals are confirmed, explained and reopenable,
every case shows its next deadline and the deadline list reaches every case.

Every account is made as an installation makes them: the console's invitation form and the
new user's own browser (tests/console.py, the ``office`` of test_recipients.py); reports come
in as `chuishao submit` sends them; every step goes through the console's HTTP forms.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

import crypto
from service.domain import cases, feed, rectification_facts, workflow
from service.domain.installation import get_installation
from service.domain.models import Case, User, utcnow
from service.domain.models.rectification import Rectification, RectificationFile
from service.platform import localtime
from service.platform.i18n import Catalogs
from service.platform.settings import Settings, SettingsError
from tests.conftest import BASE_URL
from tests.console import Enrolled, sign_in

# The office (installation, administrator, channels) made as test_recipients.py makes it.
from tests.domain.test_recipients import REPORT, Office, office  # noqa: F401
from tests.domain.test_rectification import _sealed_upload
from tests.factories import api_client, open_as

TODAY = rectification_facts.today()
ZH = Catalogs.load().gettext("zh_CN")


class Person:
    """One member of staff in a browser of their own."""

    def __init__(self, office: Office, enrolled: Enrolled) -> None:
        self.office, self.enrolled = office, enrolled
        self.client = TestClient(office.app, base_url=BASE_URL)
        self.user = office.user(enrolled)
        self.csrf = sign_in(self.client, office.session, office.settings, self.user)

    def case_action(self, case: Case, action: str, **fields: Any) -> Any:
        version = fresh(self.office, case).version
        return self.client.post(f"/console/cases/{case.id}/actions/{action}",
                                data={"csrf_token": self.csrf, "version": str(version),
                                      **fields}, follow_redirects=False)

    def record_action(self, number: int, action: str, **fields: Any) -> Any:
        self.office.session.commit()
        self.office.session.expire_all()
        record = self.office.session.get(Rectification, number)
        assert record is not None
        return self.client.post(f"/console/rectifications/{number}/actions/{action}",
                                data={"csrf_token": self.csrf, "version": str(record.version),
                                      **fields}, follow_redirects=False)


def fresh(office: Office, case: Case) -> Case:
    office.session.commit()  # a new transaction sees what the other browsers wrote
    office.session.expire_all()
    found = office.session.get(Case, case.id)
    assert found is not None
    return found


def submit(office: Office) -> tuple[Case, str]:
    receipt = api_client(office.client).submit("plant", REPORT)
    office.session.commit()
    installation = get_installation(office.session)
    assert installation is not None
    keys = crypto.derive_receipt(receipt, installation.salt, office.settings.receipt_iterations)
    case = office.session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
    assert case is not None
    return case, receipt


def reporter_events(office: Office, receipt: str) -> list[dict[str, Any]]:
    installation = get_installation(office.session)
    assert installation is not None
    keys = crypto.derive_receipt(receipt, installation.salt, office.settings.receipt_iterations)
    response = office.client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret),
        "pow": api_client(office.client).stamp()})
    token = response.json()["token"]
    events: list[dict[str, Any]] = office.client.get(
        "/api/v1/followup", headers={"Authorization": f"Bearer {token}"}).json()["events"]
    return events


def done(response: Any) -> None:
    assert response.status_code == 303, response.text[:300]
    assert "?done=" in response.headers["location"], response.headers["location"]


def refused(person: Person, response: Any, case: Case) -> str:
    """A refused case action redirects to the case page (never stays on the action URL)."""
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(f"/console/cases/{case.id}?failed="), location
    page = person.client.get(location)
    assert page.status_code == 200
    match = re.search(r'id="action-error">([^<]*)<', page.text)
    assert match, "no error on the page"
    return match.group(1)


@pytest.fixture
def staff(office: Office) -> dict[str, Person]:
    people = {
        "li": office.person("li.na", ["reviewer"], "plant"),
        "wang": office.person("wang.qiang", ["reviewer"], "plant"),
        # Approver and auditor get the channel as scope, never as recipients.
        "zhou": office.person("zhou.jie", ["approver"], scope=["plant"]),
        "sun": office.person("sun.li", ["auditor"], scope=["plant"]),
    }
    return {name: Person(office, enrolled) for name, enrolled in people.items()}


def verified(office: Office, staff: dict[str, Person]) -> tuple[Case, str]:
    case, receipt = submit(office)
    li = staff["li"]
    for action, fields in (("accept", {}), ("start_verification", {}),
                           ("verify", {"result": "true"})):
        done(li.case_action(case, action, **fields))
    return case, receipt


# ---------------------------------------------------------------------------- no bypass


def test_one_reviewer_cannot_click_a_hazard_to_rectified(office: Office,
                                                          staff: dict[str, Person]) -> None:
    case, receipt = verified(office, staff)
    li = staff["li"]
    page = li.client.get(f"/console/cases/{case.id}").text
    assert 'id="form-open_rectification"' not in page
    assert 'id="form-accept_rectification"' not in page
    assert 'id="rectify-through-records"' in page
    # Sending the old forms anyway: refused, the case stays where it is, the trail says so.
    for action in ("open_rectification", "accept_rectification"):
        message = refused(li, li.case_action(case, action), case)
        assert "整改记录" in message
    assert fresh(office, case).status == "verified"
    # An approver cannot close it either: a confirmed hazard needs an accepted rectification.
    zhou = staff["zhou"]
    refused(zhou, zhou.case_action(case, "close"), case)
    assert fresh(office, case).status == "verified"
    kinds = [e["kind"] for e in reporter_events(office, receipt)]
    assert "rectification_accepted" not in kinds and "closed" not in kinds
    actions = {(e.action, e.outcome) for e in office.audit("case.accept_rectification")}
    assert actions == {("case.accept_rectification", "refused")}


# ---------------------------------------------------------------------------- on the spot


def upload(person: Person, office: Office, number: int, case: Case) -> str:
    key, _ = open_as(person.enrolled.private_key, office.session, case.id)
    body, chunks = _sealed_upload(key, case, b"\xff\xd8" + bytes(range(200)) * 10, "现场.jpg")
    headers = {"X-CSRF-Token": person.csrf, "Accept": "application/json"}
    base = f"/console/rectifications/{number}/files"
    assert person.client.post(base, json=body, headers=headers).status_code == 201
    file_id = str(body["file"]["id"])
    for index, chunk in enumerate(chunks):
        assert person.client.put(f"{base}/{file_id}/chunks/{index}", content=chunk,
                                 headers=headers).status_code == 200
    assert person.client.post(f"{base}/{file_id}/finish", json={},
                              headers=headers).status_code == 200
    return file_id


def test_a_hazard_removed_on_the_spot_is_recorded_checked_and_counted(  # noqa: PLR0915
        office: Office, staff: dict[str, Person]) -> None:
    case, receipt = verified(office, staff)
    li, wang, zhou, sun = staff["li"], staff["wang"], staff["zhou"], staff["sun"]
    opened = li.client.post(f"/console/cases/{case.id}/rectifications", data={
        "csrf_token": li.csrf, "description": "冲床光电保护装置被拆除"}, follow_redirects=False)
    assert opened.status_code == 303
    number = int(re.search(r"/rectifications/(\d+)", opened.headers["location"]).group(1))  # type: ignore[union-attr]
    page = li.client.get(f"/console/rectifications/{number}").text
    assert 'id="form-fixed_on_spot"' in page and 'id="spot-evidence-picker"' in page
    spot = {"responsible_person": "张师傅（设备科）", "measures": "当场重新装回光电保护装置并试机",
            "date": TODAY.isoformat()}
    # Without evidence, or without who and how, nothing is recorded.
    missing = li.record_action(number, "fixed_on_spot", **spot)
    assert missing.status_code == 400 and "证据" in missing.text
    assert li.record_action(number, "fixed_on_spot",
                            **{**spot, "measures": ""}).status_code == 400
    future = (TODAY + dt.timedelta(days=2)).isoformat()
    assert li.record_action(number, "fixed_on_spot", **{**spot, "date": future}).status_code \
        == 400
    file_id = upload(li, office, number, case)
    done = li.record_action(number, "fixed_on_spot", **spot, files=[file_id], phases=["after"])
    assert done.status_code == 303, done.text[:300]
    office.session.commit()
    office.session.expire_all()
    record = office.session.get(Rectification, number)
    assert record is not None and record.state == "awaiting_acceptance" and record.on_the_spot
    assert record.fixed_on == TODAY and record.responsible_person == spot["responsible_person"]
    assert office.session.get(RectificationFile, file_id) is not None
    assert fresh(office, case).status == "rectifying"
    # The one who recorded it cannot check it; a colleague can.
    same = li.record_action(number, "accept", result="pass", date=TODAY.isoformat())
    assert same.status_code == 403 and "不能由" in same.text
    assert wang.record_action(number, "accept", result="pass",
                              date=TODAY.isoformat()).status_code == 303
    assert fresh(office, case).status == "rectified"
    # The approver (scope from the console, not a recipient) reads and writes it off.
    assert zhou.client.get(f"/console/rectifications/{number}").status_code == 200
    assert zhou.client.get(f"/console/cases/{case.id}/rectifications").status_code == 200
    listing = zhou.client.get("/console/rectifications")
    assert listing.status_code == 200 and f"/console/rectifications/{number}" in listing.text
    assert zhou.record_action(number, "write_off").status_code == 303
    assert fresh(office, case).status == "closed"
    # The record page says how it was rectified.
    page = zhou.client.get(f"/console/rectifications/{number}").text
    assert 'id="record-on-spot"' in page and "当场整改" in page
    # Ledger and statistics count it like any other, for the approver and the auditor.
    channel = office.channels["plant"]
    for person in (zhou, sun):
        ledger_page = person.client.get(f"/console/ledger?channel={channel}")
        assert ledger_page.status_code == 200
        assert re.search(rf'<option value="{channel}"[^>]*selected', ledger_page.text)
        exported = person.client.get(f"/console/ledger/export?channel={channel}"
                                     f"&period={TODAY.year}&format=csv")
        assert exported.status_code == 200, exported.text[:300]
        rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
        row = next(r for r in rows[1:] if r[0] == rectification_facts.number(record))
        assert spot["measures"] in row and spot["responsible_person"] in row
        assert any("当场整改" in cell for cell in row)
        stats = person.client.get(f"/console/stats?channel={channel}&year={TODAY.year}")
        assert stats.status_code == 200 and 'id="stats-table"' in stats.text
        quarter = (TODAY.month - 1) // 3 + 1
        line = re.search(rf"<th>Q{quarter}</th>(.*?)</tr>", stats.text, re.S)
        assert line and '<td class="found">1</td>' in line.group(1)
        assert '<td class="on_time">1</td>' in line.group(1)
    # The reporter was told in plain words, without names.
    events = reporter_events(office, receipt)
    kinds = [e["kind"] for e in events]
    assert "rectification_on_spot" in kinds and kinds[-2:] == ["rectification_accepted",
                                                                 "closed"]
    text = feed.event_text("rectification_on_spot", {}, ZH)
    assert text and "当场整改" in text
    assert "张师傅" not in str(events)
    trail = office.audit("rectification.fixed_on_spot")
    assert [e.outcome for e in trail] == ["refused", "refused", "refused", "ok"]


# ---------------------------------------------------------------------------- refusal


def test_refusal_is_confirmed_explained_and_reopened_by_an_approver(  # noqa: PLR0915
        office: Office, staff: dict[str, Person]) -> None:
    case, receipt = submit(office)
    li, zhou = staff["li"], staff["zhou"]
    page = li.client.get(f"/console/cases/{case.id}").text
    # Accepting and refusing are apart: the refusal is folded away, with its own box.
    assert '<details class="refusal" id="refusal">' in page
    assert 'id="na-confirm" required' in page and 'id="na-note"' in page
    assert 'class="danger" id="button-not_accept"' in page
    note = "该单位不在本热线受理范围内，请向属地应急管理局举报。"
    unconfirmed = li.case_action(case, "not_accept", reason="out_of_scope", note=note)
    assert "勾选" in refused(li, unconfirmed, case)
    silent = li.case_action(case, "not_accept", reason="out_of_scope", confirm="1")
    assert "理由" in refused(li, silent, case)
    assert fresh(office, case).status == "new"
    done(li.case_action(case, "not_accept", reason="out_of_scope", confirm="1",
                          note=note))
    assert fresh(office, case).status == "not_accepted"
    # The reporter reads the listed reason and the reviewers' words.
    event = reporter_events(office, receipt)[-1]
    assert event["kind"] == "not_accepted"
    text = feed.event_text(event["kind"], event["data"], ZH)
    assert text and note in text and "不予受理" not in note and "原因" in text
    # The reviewer sees the window; only an approver gets the reopen form.
    assert 'id="reopen-window"' in li.client.get(f"/console/cases/{case.id}").text
    assert 'id="form-reopen_refusal"' not in li.client.get(f"/console/cases/{case.id}").text
    refused(li, li.case_action(case, "reopen_refusal", reason="再看看"), case)
    approver_page = zhou.client.get(f"/console/cases/{case.id}").text
    assert 'id="form-reopen_refusal"' in approver_page
    assert refused(zhou, zhou.case_action(case, "reopen_refusal", reason=""), case)
    why = "该单位在本区设有分厂，属于受理范围。"
    done(zhou.case_action(case, "reopen_refusal", reason=why))
    stored = fresh(office, case)
    assert stored.status == "new" and stored.not_accepted_reason is None
    assert stored.accept_due_at is not None and stored.accept_due_at > utcnow()
    event = reporter_events(office, receipt)[-1]
    assert event["kind"] == "refusal_reopened"
    text = feed.event_text(event["kind"], event["data"], ZH)
    assert text and why in text and "重新" in text
    assert "zhou" not in str(event)
    trail = office.audit("case.reopen_refusal")
    assert [(e.outcome, e.actor) for e in trail][-1] == ("ok", "zhou.jie")
    assert trail[-1].details and trail[-1].details["reason"] == why


def test_a_refusal_is_reopened_only_within_the_window_and_not_by_its_author(
        office: Office, staff: dict[str, Person]) -> None:
    both = Person(office, office.person("boss.liu", ["reviewer", "approver"], "plant"))
    case, _ = submit(office)
    done(both.case_action(case, "not_accept", reason="no_clear_target", confirm="1",
                            note="没有写明单位和地点。"))
    message = refused(both, both.case_action(case, "reopen_refusal", reason="我再看看"), case)
    assert "审批人" in message
    session, settings = office.session, office.settings
    stored = fresh(office, case)
    zhou = office.session.get(User, staff["zhou"].user.id)
    assert zhou is not None
    late = utcnow() + dt.timedelta(days=settings.reopen_days, hours=1)
    with pytest.raises(workflow.NotAllowedNow) as closed:
        workflow.perform(session, settings, stored, zhou, "reopen_refusal",
                         version=stored.version, params={"reason": "补充材料"}, now=late)
    assert closed.value.code == "reopen_window"
    session.rollback()
    assert fresh(office, case).status == "not_accepted"


# ---------------------------------------------------------------------------- deadlines


def test_every_case_shows_its_next_deadline_and_the_due_list_reaches_them_all(
        office: Office, staff: dict[str, Person]) -> None:
    li, wang = staff["li"], staff["wang"]
    new, _ = submit(office)
    refused_case, _ = submit(office)
    done(li.case_action(refused_case, "not_accept", reason="out_of_scope", confirm="1",
                          note="不属于本热线"))
    rectifying, _ = verified(office, staff)
    opened = li.client.post(f"/console/cases/{rectifying.id}/rectifications", data={
        "csrf_token": li.csrf, "description": "配电室积水"}, follow_redirects=False)
    number = int(re.search(r"/rectifications/(\d+)", opened.headers["location"]).group(1))  # type: ignore[union-attr]
    soon = TODAY + dt.timedelta(days=5)
    assert li.record_action(number, "decide", description="配电室积水", responsible_unit="动力车间",
                            responsible_person="李明", measures="排水", funds="100",
                            deadline=soon.isoformat(),
                            contingency_plan="停电预案").status_code == 303
    verifying, _ = submit(office)
    done(wang.case_action(verifying, "accept"))
    stored = fresh(office, rectifying)
    assert stored.status == "rectifying"
    due = workflow.due_at(stored, office.settings)
    assert due is not None and localtime.local(due).date() == soon
    page = li.client.get(f"/console/cases/{rectifying.id}").text
    shown = re.search(r'<dd id="due">(.*?)</dd>', page, re.S)
    assert shown and soon.isoformat() in shown.group(1) and "整改" in shown.group(1)
    assert "overdue" not in shown.group(1)
    # The record's deadline runs out: the case is overdue too, on its page and in the list.
    office.session.commit()
    office.session.expire_all()
    record = office.session.get(Rectification, number)
    assert record is not None
    late = localtime.midnight(soon + dt.timedelta(days=1)) + dt.timedelta(hours=1)
    assert workflow.is_overdue(fresh(office, rectifying), office.settings, late)
    overdue_ids = {c.id for c in cases.list_cases(
        office.session, office.settings, li.user, cases.Filters(overdue=True), late).cases}
    assert rectifying.id in overdue_ids and refused_case.id not in overdue_ids
    # Nearest deadline first, two a page: every case appears once, deadlines first.
    seen: list[str] = []
    after = None
    while True:
        page_ = cases.list_cases(office.session, office.settings, li.user,
                                 cases.Filters(sort="due", after=after), limit=2)
        seen += [c.id for c in page_.cases]
        if page_.next_cursor is None:
            break
        after = page_.next_cursor
    everyone = {new.id, refused_case.id, rectifying.id, verifying.id}
    assert sorted(seen) == sorted(everyone)
    assert seen[-1] == refused_case.id  # no deadline: last
    dues = [workflow.due_at(office.session.get(Case, i), office.settings)  # type: ignore[arg-type]
            for i in seen[:-1]]
    assert all(d is not None for d in dues) and dues == sorted(dues)  # type: ignore[type-var]
    # Over HTTP the list links to the next page and shows which deadline it is.
    listing = li.client.get("/console/cases?sort=due")
    assert listing.status_code == 200 and "</time> · 整改" in listing.text
    assert listing.text.count('class="case-row"') == 4


# ---------------------------------------------------------------------------- PRG, time


def test_a_refusal_message_in_the_address_cannot_be_forged(office: Office,
                                                            staff: dict[str, Person]) -> None:
    case, _ = submit(office)
    li, wang = staff["li"], staff["wang"]
    location = li.case_action(case, "verify", result="true").headers["location"]
    assert 'id="action-error"' in li.client.get(location).text
    # Another user, or a changed text, shows nothing.
    assert 'id="action-error"' not in wang.client.get(location).text
    payload = crypto.b64u_encode(b'{"m":"Call 110 now","p":{}}')
    forged = re.sub(r"failed=[^&]+", f"failed={payload}", location)
    assert 'id="action-error"' not in li.client.get(forged).text


def test_times_are_shown_in_the_installation_zone_with_its_offset() -> None:
    moment = dt.datetime(2026, 12, 1, 6, 48, tzinfo=dt.UTC)
    localtime.install("Asia/Shanghai")
    assert localtime.show(moment) == "2026-12-01 14:48 (UTC+08:00)"
    assert localtime.show(moment, granularity=3600) == "2026-12-01 14:48–15:48 (UTC+08:00)"
    bucket = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
    assert localtime.show(bucket, granularity=3600) == "2026-12-01 14:00–15:00 (UTC+08:00)"
    assert localtime.iso(moment) == "2026-12-01T14:48:00+08:00"
    assert localtime.today(dt.datetime(2026, 12, 1, 17, 0, tzinfo=dt.UTC)) == dt.date(2026, 12, 2)
    try:
        localtime.install("Europe/Berlin")
        assert localtime.show(moment) == "2026-12-01 07:48 (UTC+01:00)"
        assert localtime.show(dt.datetime(2026, 7, 1, 6, 0, tzinfo=dt.UTC)) \
            == "2026-07-01 08:00 (UTC+02:00)"
    finally:
        localtime.install("Asia/Shanghai")
    assert Settings.from_environ({"CHUISHAO_TIME_ZONE": "America/New_York"}).time_zone \
        == "America/New_York"
    with pytest.raises(SettingsError):
        Settings.from_environ({"CHUISHAO_TIME_ZONE": "UTC+8"})
    assert Settings().time_zone == "Asia/Shanghai"


def test_the_console_labels_times_and_shows_coarse_ones_as_spans(
        office: Office, staff: dict[str, Person]) -> None:
    case, _ = submit(office)
    li = staff["li"]
    done(li.case_action(case, "accept"))
    page = li.client.get(f"/console/cases/{case.id}").text
    received = localtime.local(case.created_at)
    span = f"{received:%Y-%m-%d %H:%M}–"
    assert span in page, "the reception time is shown as the hour it stands for"
    assert "(UTC+08:00)" in page and " UTC<" not in page
    entries = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', page)
    assert entries and all(shown.endswith("(UTC+08:00)") and iso.endswith("+08:00")
                           for iso, shown in entries)
