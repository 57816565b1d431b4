"""Recipients follow roles, always; scope gives the other roles their channels.

Every account here is made the way an installation makes them: `chuishao init` and
`chuishao invite` on the command line, the console's invitation form and the new user's own
browser (tests/console.py), channels and roles through the console's admin pages.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from service import cli
from service.app import create_app
from service.domain.installation import get_installation
from service.domain.models import (
    AuditEntry,
    Case,
    Channel,
    ChannelRecipient,
    ChannelScope,
    Invitation,
    KeySlot,
    User,
)
from service.platform.db import Database
from service.platform.settings import Settings
from tests.conftest import BASE_URL, fast_settings
from tests.console import Enrolled, enrol, invitation_link, sign_in
from tests.factories import api_client

REPORT = {"v": 1, "unit": "某机械厂", "location": "二号车间", "category": "hazard",
          "description": "冲床的光电保护装置被拆除。"}
LINK = re.compile(r"https?://\S+/console/invite/\S+")


@dataclass
class Office:
    settings: Settings
    database: Database
    app: Any
    client: TestClient  # the administrator's browser
    csrf: str
    admin: User
    session: Session
    channels: dict[str, int]

    def invite(self, roles: list[str], channel: str | None = None,
               scope: list[str] | None = None) -> str:
        return invitation_link(self.client, self.csrf, roles,
                               self.channels[channel] if channel else None,
                               [self.channels[s] for s in scope or []])

    def person(self, username: str, roles: list[str], channel: str | None = None,
               scope: list[str] | None = None) -> Enrolled:
        return enrol(self.app, self.settings, self.invite(roles, channel, scope), username)

    def user(self, person: Enrolled) -> User:
        self.session.commit()
        user = self.session.get(User, person.user_id)
        assert user is not None
        return user

    def post(self, path: str, **form: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf, **form},
                                follow_redirects=False)

    def submit(self, channel: str = "plant") -> Case:
        """A report sent as `chuishao submit` sends it; the stored case."""
        receipt = api_client(self.client).submit(channel, REPORT)
        self.session.commit()
        installation = get_installation(self.session)
        assert installation is not None
        keys = crypto.derive_receipt(receipt, installation.salt,
                                     self.settings.receipt_iterations)
        case = self.session.scalar(select(Case).where(
            Case.lookup_hash == keys.lookup_hash.hex()))
        assert case is not None
        return case

    def slot_holders(self, case: Case) -> set[str]:
        self.session.commit()
        return {slot.key_id for slot in self.session.scalars(
            select(KeySlot).where(KeySlot.case_id == case.id, KeySlot.purpose == "case"))}

    def channel_key_ids(self, slug: str) -> set[str]:
        listed = self.client.get("/api/v1/channels").json()
        channel = next(c for c in listed["channels"] if c["id"] == slug)
        return {r["key_id"] for r in channel["recipients"] if r["holder"] == "reviewer"}

    def audit(self, action: str) -> list[AuditEntry]:
        self.session.commit()
        return list(self.session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                         .order_by(AuditEntry.id)))


def run_cli(settings: Settings, capsys: pytest.CaptureFixture[str],
            *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv), settings=settings)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def office(tmp_path, db_url, committed_database, capsys) -> Iterator[Office]:  # type: ignore[no-untyped-def]
    settings = fast_settings(tmp_path / "var", database_url=db_url)
    assert run_cli(settings, capsys, "init")[0] == 0
    code, out, _ = run_cli(settings, capsys, "invite", "--role", "admin")
    assert code == 0
    app = create_app(settings, database=committed_database)
    admin = enrol(app, settings, LINK.search(out).group(0), "admin.chen")  # type: ignore[union-attr]
    session = committed_database.sessionmaker()
    with TestClient(app, base_url=BASE_URL) as client:
        csrf = sign_in(client, session, settings, session.get(User, admin.user_id))
        for slug, kind, name in (("plant", "enterprise", "一号厂内部举报"),
                                 ("bureau", "bureau", "东区应急管理局")):
            assert client.post("/console/admin/channels", data={
                "csrf_token": csrf, "slug": slug, "kind": kind, "name_zh": name},
                follow_redirects=False).status_code == 303
        ids = {c.slug: c.id for c in session.scalars(select(Channel))}
        me = session.get(User, admin.user_id)
        assert me is not None
        place = Office(settings, committed_database, app, client, csrf, me, session, ids)
        yield place
    session.close()


# ---------------------------------------------------------------------------- role changes


def test_taking_the_reviewer_role_away_stops_new_reports(office: Office) -> None:
    mei = office.person("mei", ["reviewer"], channel="plant")
    key_id = office.user(mei).key_id
    first = office.submit()
    assert key_id in office.slot_holders(first)

    # The admin makes her an auditor in the console.
    assert office.post(f"/console/admin/users/{mei.user_id}/roles",
                       roles=["auditor"]).status_code == 303
    session = office.session
    session.commit()
    assert session.get(ChannelRecipient, (office.channels["plant"], mei.user_id)) is None
    assert session.get(ChannelScope, (office.channels["plant"], mei.user_id)) is not None
    (removed,) = office.audit("admin.recipient.remove")
    assert removed.details["reason"] == "role" and removed.details["username"] == "mei"
    # Same transaction as the role change: the entry right after it.
    (roles_entry,) = office.audit("admin.roles")
    assert removed.id == roles_entry.id + 1

    # New reports are no longer sealed to her key; the old one stays readable with her slot.
    assert key_id not in office.channel_key_ids("plant")
    second = office.submit()
    assert key_id not in office.slot_holders(second)
    assert key_id in office.slot_holders(first)

    # As an auditor she still sees the channel's cases (scope), without being able to open
    # the new one.
    with TestClient(office.app, base_url=BASE_URL) as browser:
        sign_in(browser, office.session, office.settings, office.user(mei))
        listed = browser.get("/console/cases")
        assert second.id in listed.text and first.id in listed.text
        page = browser.get(f"/console/cases/{second.id}")
        assert page.status_code == 200 and '"slot": ""' in page.text

    # The admin sees who receives and who does not.
    users = office.client.get("/console/admin").text
    row = re.search(rf'<tr id="user-{mei.user_id}">.*?</tr>', users, re.S).group(0)  # type: ignore[union-attr]
    assert "不接收举报" in row and "plant" in row
    channels = office.client.get("/console/admin/channels").text
    plant = re.search(r'<tr id="channel-plant">.*?</tr>', channels, re.S).group(0)  # type: ignore[union-attr]
    receiving = re.search(r"<td>\s*<ul>(.*?)</ul>", plant, re.S).group(1)  # type: ignore[union-attr]
    scope_only = re.search(r'<td class="scope-only">(.*?)</td>', plant, re.S).group(1)  # type: ignore[union-attr]
    assert "mei" not in receiving and "mei" in scope_only

    # Made a reviewer again, she is not silently a recipient: the admin adds her.
    assert office.post(f"/console/admin/users/{mei.user_id}/roles",
                       roles=["reviewer", "auditor"]).status_code == 303
    assert key_id not in office.channel_key_ids("plant")
    assert office.post(f"/console/admin/channels/{office.channels['plant']}/recipients",
                       user_id=str(mei.user_id)).status_code == 303
    assert key_id in office.channel_key_ids("plant")


def test_deactivation_stops_new_reports(office: Office) -> None:
    nan = office.person("nan", ["reviewer"], channel="plant")
    key_id = office.user(nan).key_id
    assert key_id in office.channel_key_ids("plant")
    assert office.post(f"/console/admin/users/{nan.user_id}/deactivate").status_code == 303
    office.session.commit()
    assert office.session.get(ChannelRecipient, (office.channels["plant"], nan.user_id)) is None
    (removed,) = office.audit("admin.recipient.remove")
    assert removed.details["reason"] == "deactivated"
    assert key_id not in office.slot_holders(office.submit())
    # Reactivated: signs in again, receives nothing until the admin adds her back.
    assert office.post(f"/console/admin/users/{nan.user_id}/reactivate").status_code == 303
    assert key_id not in office.channel_key_ids("plant")


def test_leftover_rows_never_receive_keys(office: Office) -> None:
    """Intake seals to reviewers only, whatever rows a database holds (an installation
    upgraded before its migration ran, or a row written by hand)."""
    yu = office.person("yu", ["reviewer"], channel="plant")
    user = office.user(yu)
    user.roles = "finance"  # a direct write, as a database writer or an old version would
    office.session.commit()
    assert office.session.get(ChannelRecipient, (office.channels["plant"], yu.user_id))
    assert user.key_id not in office.channel_key_ids("plant")
    assert user.key_id not in office.slot_holders(office.submit())
    # The console says what intake does: she is not listed as receiving.
    channels = office.client.get("/console/admin/channels").text
    plant = re.search(r'<tr id="channel-plant">.*?</tr>', channels, re.S).group(0)  # type: ignore[union-attr]
    assert "yu" not in re.search(r"<td>\s*<ul>(.*?)</ul>", plant, re.S).group(1)  # type: ignore[union-attr]
    assert "yu" in re.search(r'<td class="scope-only">(.*?)</td>', plant, re.S).group(1)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- invitations


def test_invitation_form_refuses_a_channel_for_other_roles(office: Office) -> None:
    for roles in (["finance"], ["auditor"], ["approver"], ["approver", "finance"]):
        for language, text in (("zh-CN", "只有受理人员接收举报渠道的新举报"),
                               ("en", "Only reviewers receive a channel's new reports")):
            refused = office.client.post("/console/admin/invitations", data={
                "csrf_token": office.csrf, "roles": roles, "hours": "24",
                "channel": str(office.channels["plant"])},
                headers={"Accept-Language": language})
            assert refused.status_code == 400, (roles, language)
            assert text in html.unescape(refused.text), (roles, language)
    office.session.commit()
    assert office.session.scalar(select(Invitation).where(
        Invitation.roles != "admin")) is None
    assert {e.details.get("reason") for e in office.audit("admin.invite")
            if e.outcome == "refused"} == {"recipient_role"}


def test_invite_command_refuses_a_channel_for_other_roles(office: Office, capsys) -> None:  # type: ignore[no-untyped-def]
    before = len(office.session.scalars(select(Invitation)).all())
    code, out, err = run_cli(office.settings, capsys, "invite", "--role", "finance",
                             "--channel", "plant")
    assert code == 2 and "/console/invite/" not in out
    assert "只有受理人员接收举报渠道的新举报" in err  # the installation's default language
    office.session.commit()
    assert len(office.session.scalars(select(Invitation)).all()) == before
    # A finance officer with a channel in scope instead: enrolled, never a recipient.
    code, out, _ = run_cli(office.settings, capsys, "invite", "--role", "finance",
                           "--scope", "plant")
    assert code == 0
    zhao = enrol(office.app, office.settings, LINK.search(out).group(0), "zhao.min")  # type: ignore[union-attr]
    office.session.commit()
    assert office.session.get(ChannelRecipient, (office.channels["plant"], zhao.user_id)) is None
    assert office.session.get(ChannelScope, (office.channels["plant"], zhao.user_id))
    assert office.user(zhao).key_id not in office.channel_key_ids("plant")
    # Reviewers still get their channel from the command line.
    code, out, _ = run_cli(office.settings, capsys, "invite", "--role", "reviewer",
                           "--channel", "plant")
    zhang = enrol(office.app, office.settings, LINK.search(out).group(0), "zhang.wei")  # type: ignore[union-attr]
    assert office.user(zhang).key_id in office.channel_key_ids("plant")


# ---------------------------------------------------------------------------- scope


def test_every_role_works_from_its_scope(office: Office, capsys) -> None:  # type: ignore[no-untyped-def]
    office.person("li.na", ["reviewer"], channel="plant")
    approver = office.person("wang.qiang", ["approver"], scope=["plant"])
    code, out, _ = run_cli(office.settings, capsys, "invite", "--role", "auditor",
                           "--scope", "plant")
    auditor = enrol(office.app, office.settings, LINK.search(out).group(0), "sun.li")  # type: ignore[union-attr]
    case = office.submit()
    for person in (approver, auditor):
        user = office.user(person)
        assert user.key_id not in office.slot_holders(case)
        assert office.session.get(ChannelRecipient, (office.channels["plant"], user.id)) is None
        with TestClient(office.app, base_url=BASE_URL) as browser:
            sign_in(browser, office.session, office.settings, user)
            assert case.id in browser.get("/console/cases").text
            assert browser.get(f"/console/cases/{case.id}").status_code == 200
            assert browser.get(f"/console/cases/{case.id}/rectifications").status_code == 200
            ledger = browser.get("/console/ledger")
            assert ledger.status_code == 200 and "一号厂内部举报</option>" in ledger.text
            assert browser.get(f"/console/stats?channel={office.channels['plant']}"
                               ).status_code == 200
            assert browser.get(f"/console/cases/{case.id}/reward").status_code == 200

    # Outside the scope: the same 404 as an unknown case.
    other = office.submit("bureau")
    with TestClient(office.app, base_url=BASE_URL) as browser:
        sign_in(browser, office.session, office.settings, office.user(approver))
        assert browser.get(f"/console/cases/{other.id}").status_code == 404
        # The admin adds the bureau to the approver's scope in the console...
        bureau = office.channels["bureau"]
        assert office.post(f"/console/admin/users/{approver.user_id}/scope",
                           channel_id=str(bureau)).status_code == 303
        assert browser.get(f"/console/cases/{other.id}").status_code == 200
        # ... and takes it away again.
        assert office.post(f"/console/admin/users/{approver.user_id}/scope/{bureau}/remove"
                           ).status_code == 303
        assert browser.get(f"/console/cases/{other.id}").status_code == 404
    assert [e.outcome for e in office.audit("admin.scope.add")] == ["ok"]
    assert [e.outcome for e in office.audit("admin.scope.remove")] == ["ok"]
    assert office.post(f"/console/admin/users/{approver.user_id}/scope/{bureau}/remove"
                       ).status_code == 404

    # The command line does the same, audited.
    assert run_cli(office.settings, capsys, "scope", "add", "sun.li", "bureau")[0] == 0
    office.session.commit()
    assert office.session.get(ChannelScope, (bureau, auditor.user_id)) is not None
    assert run_cli(office.settings, capsys, "scope", "remove", "sun.li", "bureau")[0] == 0
    code, _, err = run_cli(office.settings, capsys, "scope", "remove", "sun.li", "bureau")
    assert code == 2 and "此举报渠道不在该账号的可查看范围内" in err
    code, _, err = run_cli(office.settings, capsys, "scope", "add", "nobody", "bureau")
    assert code == 2 and "没有此名称的账号或举报渠道" in err
    code, out, _ = run_cli(office.settings, capsys, "scope", "list")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("sun.li\t"))
    assert "receives-no-reports" in line and "scope:plant" in line
    assert [e.details.get("via") for e in office.audit("admin.scope.add")][-1] == "command line"
