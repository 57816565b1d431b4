"""The audit trail as an auditor reads it: sentences, readable details, filters, exports, and
a head and count that agree. The auditor is invited by an admin through the console."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import select
from starlette.testclient import TestClient

from reviewer import auditview
from service.domain import audit, channels, installation, rectification, workflow
from service.domain.models import User
from tests.console import enrol, invitation_link, sign_in
from tests.factories import make_reviewer

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r'"([a-z_]+(?:\.[a-z_]+)+)"')


def _written_codes() -> set[str]:
    """Every action code the code base appends, as written in its calls."""
    codes: set[str] = set()
    for path in [*ROOT.glob("reviewer/**/*.py"), *ROOT.glob("service/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r"(?:audit\.(?:append|defer|record_refusal)|record_failure|"
                                r"_refusal|@action)\((?:[^()]|\([^()]*\))*\)", text):
            found = CODE.search(call.group(0))
            if found and not found.group(1).endswith((".py", ".json")):
                codes.add(found.group(1))
    codes |= {f"case.{name}" for name in workflow.ACTIONS}
    codes |= {f"rectification.{name}" for name in rectification.ACTIONS}
    return codes | {"login", "logout", "csrf", "forbidden"}


def test_every_written_action_has_a_sentence() -> None:
    codes = _written_codes()
    assert {"reward.approve", "admin.roles", "case.accept_rectification",
            "export.completed"} <= codes  # the scan really finds them
    missing = sorted(codes - set(auditview.SENTENCES))
    assert not missing, f"audit actions without a sentence: {missing}"


def _auditor(client: TestClient, app, session, settings) -> User:  # type: ignore[no-untyped-def]
    installation.initialise(session, settings)
    admin = make_reviewer(session, "admin.wang", roles="admin").user
    admin.display_name = "王管理员"
    session.commit()
    csrf = sign_in(client, session, settings, admin)
    link = invitation_link(client, csrf, ["auditor"])
    enrolled = enrol(app, settings, link, "sun.li")
    user = session.get(User, enrolled.user_id)
    assert user is not None
    return user


def test_trail_reads_as_sentences_with_fields(client, app, session, settings) -> None:  # type: ignore[no-untyped-def]
    auditor = _auditor(client, app, session, settings)
    admin = session.scalar(select(User).where(User.username == "admin.wang"))
    audit.append(session, "case.accept_rectification", actor=admin, target="case-abc",
                 details={"from": "rectifying", "to": "rectified", "note": "您好"})
    audit.append(session, "reward.approve", actor=admin, target="rw-1",
                 details={"amount_fen": 123456})
    session.commit()
    sign_in(client, session, settings, auditor)
    for lang, sentence, state, amount in (
            ("zh_CN", "通过了整改验收", "整改已验收", "1 234.56 元"),
            ("en", "Accepted the rectification", "Rectification accepted", "1 234.56 yuan")):
        client.cookies.set("lang", lang)
        page = client.get("/console/audit", headers={"Accept-Language": lang.replace("_", "-")})
        assert page.status_code == 200
        assert sentence in page.text and state in page.text and amount in page.text, lang
        assert "王管理员" in page.text  # the display name, not only the username
        assert "\\u60a8" not in page.text and "您好" in page.text
        assert 'data-action="case.accept_rectification"' in page.text


def test_head_and_count_agree(client, app, session, settings) -> None:  # type: ignore[no-untyped-def]
    auditor = _auditor(client, app, session, settings)
    sign_in(client, session, settings, auditor)
    page = client.get("/console/audit?verify=1").text
    intact = re.search(r'id="chain-ok">[^<]*?(\d+)', page)
    head = re.search(r'id="chain-head">[^<]*?(\d+)', page)
    assert intact and head and intact.group(1) == head.group(1), (intact, head)


def test_filters_and_exports_carry_the_same_rows(client, app, session, settings) -> None:  # type: ignore[no-untyped-def]
    auditor = _auditor(client, app, session, settings)
    admin = session.scalar(select(User).where(User.username == "admin.wang"))
    audit.append(session, "case.accept", actor=admin, target="case-1")
    audit.append(session, "case.accept", actor=admin, target="case-2", outcome="refused",
                 details={"code": "not_allowed_now"})
    audit.append(session, "reward.paid", actor=admin, target="rw-9",
                 details={"amount_fen": 5000})
    session.commit()
    sign_in(client, session, settings, auditor)
    client.headers["Accept-Language"] = "en"
    shown = client.get("/console/audit?action=case.&outcome=refused").text
    assert 'data-action="case.accept"' in shown and "rw-9" not in shown
    assert "case-2" in shown and ">case-1<" not in shown
    by_case = client.get("/console/audit?case=rw-9").text
    assert "rw-9" in by_case and "case-2" not in by_case
    assert 'data-action="reward.paid"' not in client.get(
        "/console/audit?actor=sun.li").text
    assert client.get("/console/audit?from=yesterday").status_code == 400
    raw = client.get("/console/audit/export.csv?action=case.").content
    assert raw.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][4] == "Action" and {row[8] for row in table[1:]} == {"case.accept"}
    sheet_bytes = client.get("/console/audit/export.xlsx?action=case.").content
    sheet = load_workbook(io.BytesIO(sheet_bytes)).active
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == table[0]
    # The same values: a time is a real date-time cell, an empty text an empty cell.
    # The CSV writes the time with its offset; the XLSX cell has no zone (the header names it).
    assert [["" if v is None else str(v.isoformat() if hasattr(v, "isoformat") else v)
             for v in row] for row in values[1:]] == [
        [row[0], row[1][:19], *row[2:]] for row in table[1:]]
    assert all(row[1].endswith("+08:00") for row in table[1:])
    assert table[0][1] == "Time (UTC+08:00)"
    assert sheet.cell(2, 2).is_date
    assert {"audit.viewed", "audit.exported"} <= set(session.scalars(
        select(audit.AuditEntry.action)))


def test_days_are_the_installation_zone_days(client, app, session, settings) -> None:  # type: ignore[no-untyped-def]
    # 17:30 UTC on 1 December is half past one on 2 December in Shanghai: the page shows it
    # on the 2nd, so the filter for the 2nd must find it (it once filtered by UTC days).
    auditor = _auditor(client, app, session, settings)
    admin = session.scalar(select(User).where(User.username == "admin.wang"))
    late = dt.datetime(2026, 12, 1, 17, 30, tzinfo=dt.UTC)
    audit.append(session, "case.accept", actor=admin, target="late-night", now=late)
    session.commit()
    sign_in(client, session, settings, auditor)
    assert "late-night" in client.get("/console/audit?from=2026-12-02&to=2026-12-02").text
    assert "late-night" not in client.get("/console/audit?from=2026-12-01&to=2026-12-01").text


def test_a_channel_in_the_details_is_named(client, app, session, settings) -> None:  # type: ignore[no-untyped-def]
    # Scope and recipient changes recorded the channel's row id, shown to the auditor as "3".
    auditor = _auditor(client, app, session, settings)
    admin = session.scalar(select(User).where(User.username == "admin.wang"))
    channel = channels.add_channel(session, slug="hongda", kind="enterprise",
                                   name_zh="宏达机械")
    audit.append(session, "admin.scope.add", actor=admin, target="someone",
                 details={"channel_id": channel.id, "username": "someone"})
    session.commit()
    sign_in(client, session, settings, auditor)
    page = client.get("/console/audit?action=admin.scope").text
    assert f"{channel.name_zh} ({channel.slug})" in page
