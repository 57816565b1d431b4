"""Staff notifications: a real SMTP server (aiosmtpd, STARTTLS or TLS, AUTH) and a real HTTP
receiver for group robots on loopback; one message per trigger to exactly the right people,
none of them carrying anything a report or a case says."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email
import hashlib
import hmac
import http.server
import ipaddress
import json
import re
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import Secret
from starlette.testclient import TestClient

from service.domain import housekeeping, notify, reward_records, storage, workflow
from service.domain.models import Case, User, utcnow
from service.domain.models.notify import NotifyOutbox
from service.domain.rewards.money import format_yuan
from service.platform.db import Database
from service.platform.settings import Settings
from tests.browser.test_accessibility import VNU, _vnu
from tests.console import sign_in
from tests.domain.test_followup import _form, _png, _receipt_from
from tests.domain.test_reward_lifecycle import (
    REPORT,
    browser_claim,
    followup_token,
    make_people,
    policy_row,
    verified_case,
)
from tests.factories import Reviewer, api_client, make_reviewer, with_token
from tests.serverproc import free_port

LATER = dt.timedelta(hours=3)  # past the end of every reporter-caused time bucket


# ---------------------------------------------------------------------------- real servers


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the test's own CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Mailbox:
    messages: list[email.message.Message] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    hold: threading.Event | None = None  # set: DATA waits for it (a send in flight)
    in_data: threading.Event = field(default_factory=threading.Event)
    delay: float = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.in_data.set()
        await asyncio.sleep(self.delay)
        if self.hold is not None:
            while not self.hold.is_set():
                await asyncio.sleep(0.05)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def bodies(self) -> list[str]:
        return [m["Subject"] + "\n" + m.get_payload(decode=True).decode() for m in self.messages]

    def to(self) -> list[str]:
        return sorted(m["To"] for m in self.messages)


USER, PASSWORD = "chuishao", "mail-secret"


class Authenticator:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == USER \
            and data.password.decode() == PASSWORD
        if ok:
            self.box.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)


def start(controller_kwargs: dict[str, Any], box: Mailbox) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, **controller_kwargs)
    controller.start()
    return controller, port


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


def _context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Iterator[tuple[Mailbox, int]]:
    """STARTTLS required, then AUTH required."""
    box = Mailbox()
    controller, port = start({"tls_context": _context(certificate), "require_starttls": True,
                              "authenticator": Authenticator(box), "auth_required": True}, box)
    try:
        yield box, port
    finally:
        controller.stop()


def mail_settings(settings: Settings, port: int, certificate: tuple[Path, Path],
                  **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "starttls",
        "smtp_username": USER, "smtp_password": Secret(PASSWORD),
        "smtp_from": "chuishao@example.org", "smtp_ca_file": str(certificate[0]),
        "smtp_timeout_seconds": 5}
    return replace(settings, **{**values, **changes})


@dataclass
class Receiver:
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.requests.append((self.path, body))
            answer = b'{"errcode":0,"code":0}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- helpers


def choose(client: TestClient, session: Session, settings: Settings, user: User,
           **form: Any) -> None:
    """The person's own choice, on their account page."""
    csrf = sign_in(client, session, settings, user)
    page = client.get("/console/account")
    assert page.status_code == 200 and 'id="notify-form"' in page.text
    data = {"csrf_token": csrf, "via": "email", "email": f"{user.username}@example.org",
            "kinds_default": "1", "digest": "default", **form}
    saved = client.post("/console/account/notifications", data=data, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    client.cookies.clear()


def deliver(database: Database, settings: Settings, after: dt.timedelta = LATER) -> tuple[int, int]:
    return notify.deliver_once(database, settings, now=utcnow() + after)


FORBIDDEN = [REPORT["unit"], REPORT["location"], REPORT["description"], "某机械厂", "ACME",
             "acme"]


def assert_says_nothing(texts: list[str], cases: list[Case], also: tuple[str, ...] = ()) -> None:
    assert texts
    for text in texts:
        for word in FORBIDDEN + [c.id for c in cases] + [c.id[:8] for c in cases] + list(also):
            assert word not in text, (word, text)


# ---------------------------------------------------------------------------- e-mail


def test_starttls_auth_and_the_message(smtp, certificate, settings: Settings, session: Session,
                                       database: Database, client: TestClient) -> None:
    box, port = smtp
    settings = mail_settings(settings, port, certificate)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user, language="en")
    receipt = api_client(client).submit("acme", REPORT)
    assert receipt
    # Nothing before the report's time bucket has ended.
    assert notify.deliver_once(database, settings) == (0, 0) and not box.messages
    assert deliver(database, settings) == (1, 0)
    assert box.logins == [USER] and box.to() == ["reviewer0@example.org"]
    body = box.bodies()[0]
    assert "New reports: 1" in body and "https://testserver/console" in body
    assert_says_nothing(box.bodies(), list(session.scalars(select(Case))))
    # Delivered once: another round sends nothing.
    assert deliver(database, settings) == (0, 0) and len(box.messages) == 1


def test_implicit_tls(certificate, settings: Settings, session: Session, database: Database,
                      client: TestClient) -> None:
    box = Mailbox()
    # The trigger connection of aiosmtpd's Controller needs TLS too. aiosmtpd does not see
    # that an implicit-TLS connection is encrypted, hence auth_require_tls off: the whole
    # connection is TLS from its first byte.
    controller, port = start({"ssl_context": _context(certificate),
                              "server_hostname": "127.0.0.1", "auth_require_tls": False,
                              "authenticator": Authenticator(box), "auth_required": True}, box)
    try:
        settings = mail_settings(settings, port, certificate, smtp_security="tls")
        people = make_people(session, settings)
        choose(client, session, settings, people.reviewer.user, language="zh_CN")
        api_client(client).submit("acme", REPORT)
        assert deliver(database, settings) == (1, 0)
        assert "新举报：1" in box.bodies()[0] and box.logins == [USER]
    finally:
        controller.stop()


def test_wrong_password_is_retried_with_backoff_and_shown_to_admins(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    box, port = smtp
    bad = mail_settings(settings, port, certificate, smtp_password=Secret("wrong"),
                        notify_max_attempts=2, notify_backoff_seconds=600)
    people = make_people(session, bad)
    choose(client, session, bad, people.reviewer.user)
    api_client(client).submit("acme", REPORT)
    assert deliver(database, bad) == (0, 1)
    row = session.scalar(select(NotifyOutbox))
    session.refresh(row)
    assert row.state == "pending" and "SMTPAuthenticationError" in row.last_error
    # Not again until the backoff has passed (600 s), then a second failure gives up.
    assert deliver(database, bad) == (0, 0)
    assert deliver(database, bad, LATER + dt.timedelta(seconds=700)) == (0, 1)
    session.refresh(row)
    assert row.state == "failed" and row.attempts == 2 and not box.messages
    csrf = sign_in(client, session, bad, people.admin.user)
    page = client.get("/console/admin/notifications")
    assert page.status_code == 200 and "SMTPAuthenticationError" in page.text
    assert "reviewer0" in page.text
    # The administrator fixes the password and asks again: delivered.
    assert client.post(f"/console/admin/notifications/{row.id}/retry",
                       data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    good = mail_settings(settings, port, certificate)
    assert deliver(database, good, LATER + dt.timedelta(seconds=800)) == (1, 0)
    assert len(box.messages) == 1


def test_no_password_without_tls(settings: Settings, session: Session, database: Database,
                                 client: TestClient) -> None:
    box = Mailbox()
    controller, port = start({"auth_require_tls": False, "authenticator": Authenticator(box)},
                             box)
    try:
        plain = replace(settings, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                        smtp_username=USER, smtp_password=Secret(PASSWORD))
        people = make_people(session, plain)
        choose(client, session, plain, people.reviewer.user)
        api_client(client).submit("acme", REPORT)
        assert deliver(database, plain) == (0, 1)
        assert box.logins == [] and box.messages == []
        row = session.scalar(select(NotifyOutbox))
        session.refresh(row)
        assert "without TLS" in row.last_error
    finally:
        controller.stop()


def test_bad_address_refused_and_changes_nothing(settings: Settings, session: Session,
                                                 client: TestClient) -> None:
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user)
    csrf = sign_in(client, session, settings, people.reviewer.user)
    for language, text in (("en", "This is not an e-mail address."),
                           ("zh_CN", "这不是一个电子邮件地址。")):
        refused = client.post("/console/account/notifications", data={
            "csrf_token": csrf, "via": "email", "email": "x@y\r\nBcc: z@evil.example",
            "digest": "default"}, headers={"Accept-Language": language.replace("_", "-")})
        assert refused.status_code == 400 and text in refused.text
    assert notify.preference(session, people.reviewer.user).email == "reviewer0@example.org"


# ---------------------------------------------------------------------------- every trigger


def test_each_trigger_tells_exactly_the_right_people_once(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    box, port = smtp
    settings = mail_settings(settings, port, certificate)
    people = make_people(session, settings)
    second = make_reviewer(session, "reviewer1", people.world.channel)
    from service.domain import channels
    other = channels.add_channel(session, slug="other", kind="enterprise", name_zh="别的工厂")
    elsewhere = make_reviewer(session, "elsewhere", other)
    far_approver = make_reviewer(session, "approver2", other, roles="approver")
    scoped_approver = make_reviewer(session, "approver3", None, roles="approver")
    session.commit()
    # Scope given as an administrator gives it: the records of acme, no keys.
    csrf = sign_in(client, session, settings, people.admin.user)
    scoped = client.post(f"/console/admin/users/{scoped_approver.user.id}/scope",
                         data={"csrf_token": csrf, "channel_id": str(people.world.channel.id)},
                         follow_redirects=False)
    assert scoped.status_code == 303, scoped.text
    client.cookies.clear()
    everyone: list[Reviewer] = [people.reviewer, second, people.approver, people.finance,
                                people.auditor, people.admin, elsewhere, far_approver,
                                scoped_approver]
    for person in everyone:
        choose(client, session, settings, person.user, language="en")

    def round_() -> list[str]:
        before = len(box.messages)
        deliver(database, settings)
        return sorted(m["To"].split("@")[0] for m in box.messages[before:])

    # A new case: the channel's two reviewers, no one else.
    case, receipt = verified_case(client, session, people)
    assert round_() == ["reviewer0", "reviewer1"]
    # A reporter's reply: the reviewers who received the case.
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    from service.domain import sealing
    from tests.factories import open_as
    case_key, _ = open_as(people.reviewer.private_key, session, case.id)
    reply_text = "东侧三号阀门每天夜班漏气"
    reply = sealing.seal_item_for_case(case_key, case.id, "reply", {"v": 1, "text": reply_text})
    assert client.post("/api/v1/followup/items", json=reply, headers=auth).status_code == 201
    assert round_() == ["reviewer0", "reviewer1"]
    # A proposed reward: the approver who sees the channel (not the one of another channel).
    csrf = sign_in(client, session, settings, people.reviewer.user)
    proposed = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(policy_row(session).id), "fine": "200000",
        "action": "propose"}, follow_redirects=False)
    assert proposed.status_code == 303
    assert round_() == ["approver1", "approver3"]
    # Approved, then claimed by the reporter: finance.
    record = reward_records.active_record(session, case)
    reward_records.approve(session, record, people.approver.user, record.version)
    session.commit()
    rewards = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"]
    _, body = browser_claim(rewards[0], keys.lookup_secret)
    claimed = client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body,
                          headers=auth)
    assert claimed.status_code == 201, claimed.text
    assert round_() == ["finance1"]
    # Nothing more without a new event.
    assert round_() == []
    # Neither the report nor the reply, the case's grade and statuses, nor the money.
    session.refresh(case)
    session.refresh(record)
    assert case.grade and record.amount_fen
    words = (reply_text, case.grade, case.status, format_yuan(record.amount_fen),
             str(record.amount_fen), str(record.amount_fen // 100), record.id)
    assert_says_nothing(box.bodies(), [case], also=words)
    assert receipt not in "".join(box.bodies())


def test_deadlines_approaching_and_passed_once_each(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    box, port = smtp
    settings = mail_settings(settings, port, certificate, notify_deadline_days=3)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user, language="en")
    choose(client, session, settings, people.approver.user, language="en")
    api_client(client).submit("acme", REPORT)
    case = session.scalar(select(Case))
    deliver(database, settings)
    box.messages.clear()
    due = case.accept_due_at
    assert due is not None
    assert housekeeping.announce_deadlines(database, settings, due - dt.timedelta(days=4)) == 0
    soon = due - dt.timedelta(days=2)
    assert housekeeping.announce_deadlines(database, settings, soon) == 1
    assert housekeeping.announce_deadlines(database, settings, soon + dt.timedelta(hours=1)) == 0
    notify.deliver_once(database, settings, now=soon + dt.timedelta(hours=1))
    assert box.to() == ["reviewer0@example.org"]
    assert "Deadlines approaching: 1" in box.bodies()[0]
    passed = due + dt.timedelta(hours=1)
    assert housekeeping.announce_deadlines(database, settings, passed) == 1
    assert housekeeping.announce_deadlines(database, settings, passed) == 0
    notify.deliver_once(database, settings, now=passed + dt.timedelta(minutes=1))
    assert len(box.messages) == 2 and "Deadlines passed: 1" in box.bodies()[1]
    # Accepted: the verification deadline is a new one, announced once in its turn; an
    # overdue case already announced is not announced again on later rounds.
    assert housekeeping.announce_deadlines(database, settings, passed + dt.timedelta(days=1)) == 0
    workflow.perform(session, settings, case, people.reviewer.user, "accept",
                     version=case.version, params={})
    session.commit()
    verify_due = case.verify_due_at
    assert verify_due is not None
    assert housekeeping.announce_deadlines(database, settings, verify_due - dt.timedelta(days=1)) == 1
    assert housekeeping.announce_deadlines(database, settings, verify_due - dt.timedelta(hours=1)) == 0
    assert_says_nothing(box.bodies(), [case])


def test_low_free_space_tells_the_administrators_once_a_day(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    """Below CHUISHAO_WARN_FREE_MB the administrators are told, before the disk fills, and
    nobody else; another instance or a restart noticing it the same day tells no one again."""
    box, port = smtp
    settings = mail_settings(settings, port, certificate)
    people = make_people(session, settings)
    for person in (people.admin, people.reviewer, people.approver, people.finance):
        choose(client, session, settings, person.user, language="en")
    low = replace(settings, warn_free_mb=1 << 40)  # MiB: more than any disk here has free
    watch = storage.Watch(low)
    for _ in range(3):
        report = watch.check(database, max_age=0)
        assert report.low_space and report.ready
    deliver(database, settings)
    assert box.to() == ["admin1@example.org"]
    assert "Free space on the server is below the warning threshold" in box.bodies()[0]
    assert storage.Watch(low).check(database, max_age=0).low_space
    deliver(database, settings)
    assert len(box.messages) == 1
    # A day later, still low: told again.
    with database.write_session() as later:
        assert notify.storage_low(later, utcnow() + dt.timedelta(days=1, minutes=1)) == 1
    assert_says_nothing(box.bodies(), [])


def test_daily_digest_replaces_single_messages(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    box, port = smtp
    settings = mail_settings(settings, port, certificate, notify_digest_hour=8)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user, language="en", digest="yes")
    for _ in range(3):
        api_client(client).submit("acme", REPORT)
    start = utcnow() + LATER
    notify.deliver_once(database, settings, now=start)
    digest_at = notify.next_digest(settings, start)
    assert not box.messages
    notify.deliver_once(database, settings, now=digest_at - dt.timedelta(minutes=1))
    assert not box.messages
    notify.deliver_once(database, settings, now=digest_at + dt.timedelta(minutes=1))
    assert len(box.messages) == 1 and "New reports: 3" in box.bodies()[0]


def test_opted_out_kind_and_installation_default(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    box, port = smtp
    settings = mail_settings(settings, port, certificate)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user)
    # The administrator turns "new report" off by default: a person on defaults gets none.
    csrf = sign_in(client, session, settings, people.admin.user)
    saved = client.post("/console/admin/notifications/defaults", data={
        "csrf_token": csrf, "kinds": ["reporter_activity", "deadline_passed"]},
        follow_redirects=False)
    assert saved.status_code == 303
    client.cookies.clear()
    api_client(client).submit("acme", REPORT)
    deliver(database, settings)
    assert not box.messages
    # Their own choice overrides the default.
    data = {"kinds": ["new_case"], "kinds_default": ""}
    choose(client, session, settings, people.reviewer.user, **data)
    api_client(client).submit("acme", REPORT)
    deliver(database, settings)
    assert len(box.messages) == 1


# ---------------------------------------------------------------------------- group robots


def _verify_dingtalk(path: str, secret: str) -> None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    stamp, sign = query["timestamp"][0], query["sign"][0]
    expected = base64.b64encode(hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(sign, expected)


def _verify_feishu(body: dict[str, Any], secret: str) -> None:
    key = f"{body['timestamp']}\n{secret}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(body["sign"], expected)


def test_group_robots_signed_and_content_free(receiver: Receiver, settings: Settings,
                                              session: Session, database: Database,
                                              client: TestClient) -> None:
    people = make_people(session, settings)
    second = make_reviewer(session, "reviewer1", people.world.channel)
    third = make_reviewer(session, "reviewer2", people.world.channel)
    session.commit()
    csrf = sign_in(client, session, settings, people.admin.user)
    base = f"http://127.0.0.1:{receiver.port}"
    for name, kind, path, secret in (("安全组", "wecom", "/cgi-bin/webhook/send?key=k1", ""),
                                     ("钉钉群", "dingtalk", "/robot/send?access_token=t", "SECd"),
                                     ("飞书群", "feishu", "/open-apis/bot/v2/hook/x", "fs")):
        added = client.post("/console/admin/notifications/webhooks", data={
            "csrf_token": csrf, "name": name, "kind": kind, "url": base + path,
            "secret": secret}, follow_redirects=False)
        assert added.status_code == 303, added.text
    refused = client.post("/console/admin/notifications/webhooks", data={
        "csrf_token": csrf, "name": "x", "kind": "wecom", "url": "http://example.org/hook"})
    assert refused.status_code == 400 and "https://" in refused.text
    client.cookies.clear()
    hooks = {h.kind: h.id for h in notify.webhooks(session)}
    for person, kind in ((people.reviewer, "wecom"), (second, "dingtalk"), (third, "feishu")):
        choose(client, session, settings, person.user, via="webhook",
               webhook_id=str(hooks[kind]), email="")
    api_client(client).submit("acme", REPORT)
    assert deliver(database, settings) == (3, 0)
    by_path = {urllib.parse.urlsplit(p).path: (p, json.loads(b)) for p, b in receiver.requests}
    assert len(receiver.requests) == 3
    wecom = by_path["/cgi-bin/webhook/send"][1]
    assert wecom["msgtype"] == "text" and "新举报：1" in wecom["text"]["content"]
    path, ding = by_path["/robot/send"]
    _verify_dingtalk(path, "SECd")
    _, feishu = by_path["/open-apis/bot/v2/hook/x"]
    _verify_feishu(feishu, "fs")
    assert feishu["msg_type"] == "text"
    # Removing a robot leaves its people without a way to be told, and the page says so.
    csrf = sign_in(client, session, settings, people.admin.user)
    removed = client.post(f"/console/admin/notifications/webhooks/{hooks['feishu']}/remove",
                          data={"csrf_token": csrf}, follow_redirects=False)
    assert removed.status_code == 303
    page = client.get("/console/admin/notifications")
    assert "飞书群" not in page.text and 'id="notify-unreachable"' in page.text
    assert "reviewer2" in page.text.split('id="notify-unreachable"')[1].split("</p>")[0]
    assert_says_nothing([b.decode() for _, b in receiver.requests] + list(by_path),
                        list(session.scalars(select(Case))))


# ---------------------------------------------------------------------------- without JavaScript


def test_nojs_report_and_evidence_alone_tell_the_reviewers(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    """The server-sealed path: a report, then a photo sent without any text (before, a file
    alone sent from the no-JavaScript page told nobody)."""
    box, port = smtp
    settings = mail_settings(settings, port, certificate)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user, language="en")
    receipt = _receipt_from(client.post("/report", data=with_token(client, _form())).text)
    assert deliver(database, settings) == (1, 0) and "New reports: 1" in box.bodies()[0]
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"})
    case = session.scalar(select(Case))
    capability = re.search(r'name="capability" value="([^"]+)"', page.text).group(1)
    reply = client.post("/followup/reply", data={"case": case.id, "capability": capability,
                                                  "text": "", "sealing": "noscript"},
                        files=[("files", ("a.png", _png(), "image/png"))])
    assert reply.status_code == 200, reply.text
    assert deliver(database, settings) == (1, 0)
    assert "Reporters' replies or new evidence: 1" in box.bodies()[1]
    form = _form()
    assert_says_nothing(box.bodies(), [case])
    for field_name in ("unit", "location", "seen_at"):
        assert all(form[field_name] not in body for body in box.bodies())


def test_deactivated_account_is_not_told(smtp, certificate, settings: Settings,
                                         session: Session, database: Database,
                                         client: TestClient) -> None:
    box, port = smtp
    settings = mail_settings(settings, port, certificate)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user)
    api_client(client).submit("acme", REPORT)
    csrf = sign_in(client, session, settings, people.admin.user)
    done = client.post(f"/console/admin/users/{people.reviewer.user.id}/deactivate",
                       data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert deliver(database, settings) == (0, 0) and not box.messages
    assert session.scalar(select(NotifyOutbox.state)) == "dropped"


def test_random_delay_holds_messages_back(smtp, certificate, settings: Settings,
                                          session: Session, database: Database,
                                          client: TestClient) -> None:
    box, port = smtp
    settings = mail_settings(settings, port, certificate, notify_max_delay_seconds=1800)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user)
    for _ in range(4):
        api_client(client).submit("acme", REPORT)
    start = utcnow() + LATER
    notify.deliver_once(database, settings, now=start, limit=0)  # schedules, sends nothing
    for row in session.scalars(select(NotifyOutbox)):
        session.refresh(row)
    dues = [row.due_at for row in session.scalars(select(NotifyOutbox))]
    assert all(start <= due <= start + dt.timedelta(seconds=1800) for due in dues), dues
    assert len(set(dues)) == 4  # each its own delay
    notify.deliver_once(database, settings, now=start + dt.timedelta(seconds=1801))
    assert sum(int(n) for n in re.findall(r"新举报：(\d+)", "".join(box.bodies()))) == 4


def test_a_robot_that_refuses_is_a_failure(settings: Settings, session: Session,
                                           database: Database, client: TestClient) -> None:
    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            answer = b'{"errcode":310000,"errmsg":"sign not match"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        people = make_people(session, settings)
        hook = notify.add_webhook(session, "钉钉群", "dingtalk",
                                  f"http://127.0.0.1:{server.server_address[1]}/robot/send"
                                  "?access_token=t", "SECwrong")
        session.commit()
        choose(client, session, settings, people.reviewer.user, via="webhook",
               webhook_id=str(hook.id), email="")
        api_client(client).submit("acme", REPORT)
        assert deliver(database, settings) == (0, 1)
        row = session.scalar(select(NotifyOutbox))
        session.refresh(row)
        assert row.state == "pending" and "sign not match" in row.last_error
    finally:
        server.shutdown()
        server.server_close()


def test_notification_pages_are_valid_html(settings: Settings, session: Session,
                                           client: TestClient, tmp_path: Path) -> None:
    if not VNU.exists():
        pytest.skip("vnu-jar missing (scripts/ensure-test-tools.sh)")
    people = make_people(session, settings)
    notify.add_webhook(session, "安全组", "wecom", "https://qyapi.weixin.qq.com/x?key=k", "")
    session.commit()
    pages = {}
    sign_in(client, session, settings, people.reviewer.user)
    pages["account"] = client.get("/console/account").text
    sign_in(client, session, settings, people.admin.user)
    pages["admin"] = client.get("/console/admin/notifications").text
    assert _vnu(pages, tmp_path / "html") == []


def test_a_resend_after_a_crash_keeps_its_message_id(
        smtp, certificate, settings: Settings, session: Session, database: Database,
        client: TestClient) -> None:
    """A worker took a message and died; meanwhile something new came for the same person.
    The resend is the message that was in flight, with its Message-ID (what a deduplicating
    mail system drops), not a new one merged with the new row."""
    box, port = smtp
    settings = mail_settings(settings, port, certificate)
    people = make_people(session, settings)
    choose(client, session, settings, people.reviewer.user, language="en")
    api_client(client).submit("acme", REPORT)
    taken_at = utcnow() + LATER
    with database.session() as worker:  # what deliver_once does before its worker was killed
        notify.schedule(worker, settings, taken_at)
        worker.flush()
        (in_flight,) = notify.claim(worker, settings, taken_at)
    api_client(client).submit("acme", REPORT)
    after_lease = taken_at + dt.timedelta(seconds=settings.notify_lease_seconds + 60)
    assert notify.deliver_once(database, settings, now=after_lease) == (2, 0)
    ids = [m["Message-ID"] for m in box.messages]
    assert notify.message_id(settings, in_flight) in ids
    assert [b.count("New reports: 1") for b in box.bodies()] == [1, 1]
