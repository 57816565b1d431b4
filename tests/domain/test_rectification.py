"""Rectification records over HTTP: opening, the five guarantees, progress with sealed evidence,
acceptance by a second person, write-off by an approver, the reporter's feed, refusals.

Cases come in through the real intake and are verified through the real case workflow; the
reporter reads the feed with the receipt, as the follow-up page does.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

import crypto
from service.domain import feed, rectification_facts, sealing, workflow
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, CaseEvent, StoredFile, User
from service.domain.models.rectification import Rectification, RectificationFile
from tests.conftest import fast_settings
from tests.console import sign_in
from tests.factories import api_client, make_reviewer, make_world, open_as

REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨管道泄漏无人处理。", "seen_at": "", "insider": "",
          "language": "zh_CN"}
TODAY = rectification_facts.today()
SOON = (TODAY + dt.timedelta(days=30)).isoformat()
LATER = (TODAY + dt.timedelta(days=45)).isoformat()
FIELDS = {
    "description": "二号液氨储罐出口阀门法兰泄漏", "location": "罐区东侧",
    "risk_assessment": "泄漏可致中毒，周边作业人员约20人", "responsible_unit": "设备部",
    "responsible_person": "王建国", "measures": "更换法兰垫片并加装泄漏报警器",
    "funds": "12000.50", "deadline": SOON, "contingency_plan": "启动液氨泄漏专项应急预案",
    "interim_measures": "设置警戒区，专人监护", "work_stopped": "1",
    "listed_supervision": "1", "supervision_by": "区应急管理局",
}


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    world.chief = make_reviewer(session, "chief", world.channel, roles="approver").user
    world.auditor = make_reviewer(session, "auditor", world.channel, roles="auditor").user
    session.commit()
    return world


def verified_case(client: TestClient, session, world, result: str = "true",  # type: ignore[no-untyped-def]
                  report: dict[str, Any] | None = None) -> tuple[Case, str]:
    receipt = api_client(client).submit("acme", report or REPORT)
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
    reviewer = world.reviewers[0].user
    for version, (action, params) in enumerate(
            [("accept", {}), ("start_verification", {}), ("verify", {"result": result})], 1):
        workflow.perform(session, world.settings, case, reviewer, action, version=version,
                         params=params)
    session.commit()
    return case, receipt


def reporter_feed(client: TestClient, receipt: str, session) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    response = client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret),
        "pow": api_client(client).stamp()})
    token = response.json()["token"]
    return client.get("/api/v1/followup", headers={"Authorization": f"Bearer {token}"}).json()


def as_user(client: TestClient, session, settings, user: User) -> str:  # type: ignore[no-untyped-def]
    client.cookies.clear()
    return sign_in(client, session, settings, user)


def open_record(client: TestClient, csrf: str, case: Case, **fields: Any):  # type: ignore[no-untyped-def]
    return client.post(f"/console/cases/{case.id}/rectifications",
                       data={"csrf_token": csrf, **fields}, follow_redirects=False)


def record_id(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 303, response.text[:500]
    match = re.match(r"/console/rectifications/(\d+)\?done=", response.headers["location"])
    assert match
    return int(match.group(1))


def act(client: TestClient, csrf: str, record: int, action: str, version: int,  # type: ignore[no-untyped-def]
        **fields: Any):
    return client.post(f"/console/rectifications/{record}/actions/{action}",
                       data={"csrf_token": csrf, "version": str(version), **fields},
                       follow_redirects=False)


def fresh(session, model, key):  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.get(model, key)


# ---------------------------------------------------------------------------- the whole life


def test_a_hazard_from_verified_case_to_write_off(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    case, receipt = verified_case(client, session, world)
    opener, inspector = world.reviewers[0].user, world.reviewers[1].user
    csrf = as_user(client, session, settings, opener)
    page = client.get(f"/console/cases/{case.id}")
    assert f'href="/console/cases/{case.id}/rectifications"' in page.text
    form = client.get(f"/console/cases/{case.id}/rectifications")
    assert form.status_code == 200 and 'id="form-open"' in form.text
    # A deadline in the past is refused; what was typed comes back in the form.
    past = (TODAY - dt.timedelta(days=1)).isoformat()
    refused = open_record(client, csrf, case, **{**FIELDS, "deadline": past})
    assert refused.status_code == 400 and "整改期限不能早于今天" in refused.text
    assert FIELDS["measures"] in refused.text
    assert session.scalar(select(func.count()).select_from(Rectification)) == 0
    assert fresh(session, Case, case.id).status == "verified"
    number = record_id(open_record(client, csrf, case, description=FIELDS["description"]))
    assert fresh(session, Case, case.id).status == "rectifying"
    page = client.get(f"/console/rectifications/{number}")
    assert page.status_code == 200 and 'id="button-decide"' in page.text
    # Deciding needs all five guarantees.
    incomplete = act(client, csrf, number, "decide", 1, **{**FIELDS, "funds": ""})
    assert incomplete.status_code == 400 and "五落实" in incomplete.text
    assert act(client, csrf, number, "decide", 1, **FIELDS).status_code == 303
    record = fresh(session, Rectification, number)
    assert record.state == "in_progress" and record.funds_fen == 1_200_050
    assert record.deadline.isoformat() == SOON and record.supervision_by == "区应急管理局"
    assert act(client, csrf, number, "progress", 2, text="已设置警戒区").status_code == 303
    assert act(client, csrf, number, "extend", 3, deadline=LATER).status_code == 400  # reason
    assert act(client, csrf, number, "extend", 3, deadline=LATER,
               reason="垫片需定制，供货周期两周").status_code == 303
    assert act(client, csrf, number, "request_acceptance", 4).status_code == 303
    # The opener (and handler) may not check their own work.
    same = act(client, csrf, number, "accept", 5, result="pass", date=TODAY.isoformat())
    assert same.status_code == 403 and "不能由" in same.text
    assert fresh(session, Rectification, number).state == "awaiting_acceptance"
    # A second reviewer fails it: back to work, the reporter is told.
    csrf2 = as_user(client, session, settings, inspector)
    assert act(client, csrf2, number, "accept", 5, result="fail",
               date=TODAY.isoformat()).status_code == 400  # findings are required
    assert act(client, csrf2, number, "accept", 5, result="fail", date=TODAY.isoformat(),
               text="报警器未接入中控室").status_code == 303
    assert fresh(session, Rectification, number).state == "in_progress"
    csrf = as_user(client, session, settings, opener)
    assert act(client, csrf, number, "progress", 6, text="报警器已接入").status_code == 303
    assert act(client, csrf, number, "request_acceptance", 7).status_code == 303
    csrf2 = as_user(client, session, settings, inspector)
    # Write-off before acceptance: refused.
    assert act(client, csrf2, number, "write_off", 8).status_code == 403  # not an approver
    assert act(client, csrf2, number, "accept", 8, result="pass",
               date=TODAY.isoformat()).status_code == 303
    record = fresh(session, Rectification, number)
    assert record.state == "accepted" and record.accepted_by == inspector.id
    assert record.accepted_on == TODAY
    assert fresh(session, Case, case.id).status == "rectified"
    # The approver writes it off; the case closes with its last record.
    csrf3 = as_user(client, session, settings, world.chief)
    assert act(client, csrf3, number, "write_off", 9).status_code == 303
    assert fresh(session, Rectification, number).state == "closed"
    assert fresh(session, Case, case.id).status == "closed"
    # A closed record cannot be edited.
    csrf = as_user(client, session, settings, opener)
    closed = act(client, csrf, number, "edit", 10, **FIELDS)
    assert closed.status_code == 409 and 'id="action-error"' in closed.text
    assert fresh(session, Rectification, number).version == 10
    # The reporter followed every step with the receipt, in plain words and without names.
    events = reporter_feed(client, receipt, session)["events"]
    assert [e["kind"] for e in events] == [
        "received", "accepted", "verifying", "verified", "rectification_opened",
        "measures_decided", "rectification_progress", "rectification_deadline",
        "rectification_failed", "rectification_progress", "rectification_accepted", "closed"]
    assert events[5]["data"]["deadline"] == SOON and events[7]["data"]["deadline"] == LATER
    raw = str(events)
    for name in ("reviewer0", "reviewer1", "chief", FIELDS["responsible_person"],
                 FIELDS["measures"], "报警器"):
        assert name not in raw
    from service.platform.i18n import Catalogs

    zh = Catalogs.load().gettext("zh_CN")
    texts = [feed.event_text(e["kind"], e["data"], zh) for e in events]
    assert f"已确定隐患整改措施，整改期限：{SOON}。" in texts
    assert all(texts)
    # Every step is on the audit trail and on the case timeline.
    actions = set(session.scalars(select(AuditEntry.action).where(
        AuditEntry.outcome == "ok", AuditEntry.action.like("rectification.%"))))
    assert {"rectification.open", "rectification.decide", "rectification.progress",
            "rectification.extend", "rectification.request_acceptance",
            "rectification.accept", "rectification.write_off"} <= actions
    timeline = client.get(f"/console/cases/{case.id}").text
    assert "整改记录已建立" in timeline and "rectification_record" not in timeline


def test_refusals_roles_and_csrf(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    from service.domain import channels

    case, _ = verified_case(client, session, world)
    unverified, _ = verified_case(client, session, world, result="false")
    csrf = as_user(client, session, settings, world.reviewers[0].user)
    assert open_record(client, csrf, unverified, **FIELDS).status_code == 409
    number = record_id(open_record(client, csrf, case, **FIELDS))
    # Write-off before acceptance: the approver is refused, nothing changes.
    chief = as_user(client, session, settings, world.chief)
    early = act(client, chief, number, "write_off", 1)
    assert early.status_code == 409 and "只有通过验收" in early.text
    assert act(client, chief, number, "nonsense", 1).status_code == 400
    # Approvers do not open records; auditors read but do not act.
    assert open_record(client, chief, case, **FIELDS).status_code == 403
    auditor = as_user(client, session, settings, world.auditor)
    assert client.get(f"/console/rectifications/{number}").status_code == 200
    assert act(client, auditor, number, "progress", 1, text="x").status_code == 403
    assert client.post(f"/console/rectifications/{number}/files", json={},
                       headers={"X-CSRF-Token": auditor}).status_code == 403
    # An administrator without a case role, and a reviewer of another line, see nothing.
    admin = make_reviewer(session, "admin", world.channel, roles="admin").user
    other = channels.add_channel(session, slug="bureau", kind="bureau", name_zh="区应急管理局")
    outsider = make_reviewer(session, "outsider", other).user
    session.commit()
    as_user(client, session, settings, admin)
    assert client.get(f"/console/rectifications/{number}").status_code == 403
    outsider_csrf = as_user(client, session, settings, outsider)
    assert client.get(f"/console/rectifications/{number}").status_code == 404
    assert client.get("/console/rectifications/999999").status_code == 404
    assert act(client, outsider_csrf, number, "progress", 1, text="x").status_code == 404
    assert client.get(f"/console/ledger/export?channel={world.channel.id}&period=2025"
                      ).status_code == 404
    # CSRF: a form without the token is refused before the view runs.
    as_user(client, session, settings, world.reviewers[0].user)
    no_csrf = client.post(f"/console/rectifications/{number}/actions/progress",
                          data={"version": "1", "text": "x"})
    assert no_csrf.status_code == 403
    assert fresh(session, Rectification, number).version == 1


def test_two_people_at_once_the_second_gets_a_conflict_and_keeps_their_text(  # type: ignore[no-untyped-def]
        client, session, world, settings) -> None:
    case, _ = verified_case(client, session, world)
    csrf = as_user(client, session, settings, world.reviewers[0].user)
    number = record_id(open_record(client, csrf, case, **FIELDS))
    assert act(client, csrf, number, "progress", 1, text="第一人写的进展").status_code == 303
    # The second person's form still carries version 1.
    csrf2 = as_user(client, session, settings, world.reviewers[1].user)
    stale = act(client, csrf2, number, "edit", 1, **{**FIELDS, "measures": "第二人改的措施"})
    assert stale.status_code == 409
    assert "此内容已被他人修改" in stale.text and "第二人改的措施" in stale.text
    record = fresh(session, Rectification, number)
    assert record.version == 2 and record.measures == FIELDS["measures"]
    # Reloaded, with the current version, it goes through.
    assert act(client, csrf2, number, "edit", 2, **{**FIELDS, "measures": "第二人改的措施"}
               ).status_code == 303
    assert fresh(session, Rectification, number).measures == "第二人改的措施"


def test_once_decided_the_deadline_moves_only_by_extension(client, session, world,  # type: ignore[no-untyped-def]
                                                          settings) -> None:
    case, _ = verified_case(client, session, world)
    csrf = as_user(client, session, settings, world.reviewers[0].user)
    number = record_id(open_record(client, csrf, case, **FIELDS))
    assert act(client, csrf, number, "decide", 1, **FIELDS).status_code == 303
    moved = act(client, csrf, number, "edit", 2, **{**FIELDS, "deadline": LATER})
    assert moved.status_code == 400
    assert act(client, csrf, number, "extend", 2, deadline=SOON, reason="x").status_code == 400
    past = (TODAY - dt.timedelta(days=3)).isoformat()
    assert act(client, csrf, number, "extend", 2, deadline=past, reason="x").status_code == 400
    assert act(client, csrf, number, "edit", 2, **{**FIELDS, "funds": "abc"}).status_code == 400
    assert act(client, csrf, number, "edit", 2, **{**FIELDS, "funds": "1.234"}
               ).status_code == 400
    assert fresh(session, Rectification, number).version == 2


# ---------------------------------------------------------------------------- evidence


def _sealed_upload(key: bytes, case: Case, data: bytes, name: str = "整改后.jpg"
                   ) -> tuple[dict[str, Any], list[bytes]]:
    file_id, meta_id = crypto.new_id(), crypto.new_id()
    file_key, prefix = crypto.new_key(), crypto.new_key()[:7]
    meta = {"name": name, "type": "image/jpeg", "size": len(data),
            "key": crypto.b64u_encode(file_key), "prefix": crypto.b64u_encode(prefix),
            "removed": [], "cleaned": False, "phase": "after"}
    stored, count = sealing.stored_layout(len(data))
    body = {"case_id": case.id,
            "file": {"id": file_id.hex(), "meta_item_id": meta_id.hex(), "stored_size": stored,
                     "chunk_count": count},
            "meta": {"id": meta_id.hex(), "blob": crypto.b64u_encode(crypto.seal_item(
                key, bytes.fromhex(case.id), meta_id, "file-meta", meta))}}
    chunks = list(crypto.seal_file(file_key, prefix, bytes.fromhex(case.id), file_id, [data],
                                   len(data)))
    return body, chunks


def test_evidence_sealed_for_the_case_key_and_size_limits(client, session, world,  # type: ignore[no-untyped-def]
                                                         settings) -> None:
    case, receipt = verified_case(client, session, world)
    me = world.reviewers[0]
    csrf = as_user(client, session, settings, me.user)
    headers = {"X-CSRF-Token": csrf, "Accept": "application/json"}
    number = record_id(open_record(client, csrf, case, **FIELDS))
    key, _ = open_as(me.private_key, session, case.id)
    photo = bytes(range(256)) * 700  # three chunks
    body, chunks = _sealed_upload(key, case, photo)
    file_id = body["file"]["id"]
    assert client.post(f"/console/rectifications/{number}/files", json=body,
                       headers=headers).status_code == 201
    # Progress cannot name a file that has not fully arrived.
    assert act(client, csrf, number, "progress", 1, files=[file_id],
               phases=["after"]).status_code == 400
    for index, chunk in enumerate(chunks):
        put = client.put(f"/console/rectifications/{number}/files/{file_id}/chunks/{index}",
                         content=chunk, headers=headers)
        assert put.status_code == 200, put.text
    assert client.post(f"/console/rectifications/{number}/files/{file_id}/finish", json={},
                       headers=headers).status_code == 200
    assert act(client, csrf, number, "progress", 1, text="更换后照片", files=[file_id],
               phases=["after"]).status_code == 303
    link = session.get(RectificationFile, file_id)
    assert link.phase == "after" and link.rectification_id == number
    # A colleague's key opens what this browser sealed: the real case key, the real format.
    colleague = world.reviewers[1]
    key2, items = open_as(colleague.private_key, session, case.id)
    meta = next(m for m in items["file-meta"] if m.get("phase") == "after")
    stored = [client.get(f"/console/cases/{case.id}/files/{file_id}/chunks/{i}").content
              for i in range(len(chunks))]
    plain = b"".join(crypto.open_file(crypto.b64u_decode(meta["key"]),
                                      crypto.b64u_decode(meta["prefix"]),
                                      bytes.fromhex(case.id), bytes.fromhex(file_id), stored,
                                      meta["size"]))
    assert plain == photo
    page = client.get(f"/console/rectifications/{number}")
    assert f'data-file-id="{file_id}"' in page.text
    # What the form's hint says is what happens: the reporter's follow-up session lists no
    # evidence file of the staff and cannot fetch one.
    assert "The reporter cannot open them" in client.get(
        f"/console/rectifications/{number}", headers={"Accept-Language": "en"}).text
    lookup = crypto.derive_receipt(receipt, get_installation(session).salt, 1000).lookup_secret
    token = client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(lookup), "pow": api_client(client).stamp()})
    auth = {"Authorization": f"Bearer {token.json()['token']}"}
    listed = client.get("/api/v1/followup", headers=auth).json()
    assert file_id not in {f["id"] for f in listed["files"]}
    assert client.get(f"/api/v1/followup/files/{file_id}/chunks/0",
                      headers=auth).status_code == 404
    # The same file twice, a file over the limit, a case not linked, a key not held.
    assert act(client, csrf, number, "progress", 2, files=[file_id]).status_code == 400
    small = fast_settings(settings.data_dir, max_file_bytes=100_000)
    client.app.state.settings = small
    client.app.routes[-1].app.state.settings = small  # the console sub-app
    big, _ = _sealed_upload(key, case, b"x" * 150_000)
    too_big = client.post(f"/console/rectifications/{number}/files", json=big, headers=headers)
    assert too_big.status_code == 413 and "MB" in too_big.json()["error"]["message"]
    other, _ = verified_case(client, session, world)
    foreign, _ = _sealed_upload(key, other, b"y" * 1000)
    assert client.post(f"/console/rectifications/{number}/files", json=foreign,
                       headers=headers).status_code == 400
    newcomer = make_reviewer(session, "newcomer", world.channel).user
    session.commit()
    csrf_new = as_user(client, session, settings, newcomer)
    keyless, _ = _sealed_upload(key, case, b"z" * 1000)
    assert client.post(f"/console/rectifications/{number}/files", json=keyless,
                       headers={"X-CSRF-Token": csrf_new, "Accept": "application/json"}
                       ).status_code == 403
    assert session.scalar(select(func.count()).select_from(StoredFile).where(
        StoredFile.author == "reviewer")) == 1


# ---------------------------------------------------------------------------- several cases


def test_one_hazard_several_cases_and_one_case_several_records(client, session, world,  # type: ignore[no-untyped-def]
                                                              settings) -> None:
    first, first_receipt = verified_case(client, session, world)
    second, second_receipt = verified_case(client, session, world, result="partly")
    opener, inspector = world.reviewers[0].user, world.reviewers[1].user
    csrf = as_user(client, session, settings, opener)
    one = record_id(open_record(client, csrf, first, **FIELDS))
    two = record_id(open_record(client, csrf, first, **{**FIELDS, "description": "安全阀未校验"}))
    assert act(client, csrf, one, "decide", 1, **FIELDS).status_code == 303
    assert act(client, csrf, one, "link_case", 2, case_id=second.id).status_code == 303
    assert act(client, csrf, one, "link_case", 3, case_id=second.id).status_code == 400
    assert fresh(session, Case, second.id).status == "rectifying"
    # The second reporter learns of the decided deadline when the case joins.
    assert "measures_decided" in [e["kind"] for e in reporter_feed(
        client, second_receipt, session)["events"]]
    assert act(client, csrf, one, "request_acceptance", 3).status_code == 303
    csrf2 = as_user(client, session, settings, inspector)
    assert act(client, csrf2, one, "accept", 4, result="pass",
               date=TODAY.isoformat()).status_code == 303
    # The second case has only this record: accepted. The first waits for its other record.
    assert fresh(session, Case, second.id).status == "rectified"
    assert fresh(session, Case, first.id).status == "rectifying"
    csrf = as_user(client, session, settings, opener)
    assert act(client, csrf, two, "decide", 1, **FIELDS).status_code == 303
    assert act(client, csrf, two, "request_acceptance", 2).status_code == 303
    csrf2 = as_user(client, session, settings, inspector)
    assert act(client, csrf2, two, "accept", 3, result="pass",
               date=TODAY.isoformat()).status_code == 303
    assert fresh(session, Case, first.id).status == "rectified"
    # The manual triage button cannot close a case whose records are not written off.
    chief = as_user(client, session, settings, world.chief)
    refused = client.post(f"/console/cases/{first.id}/actions/close",
                          data={"csrf_token": chief, "version": str(first.version)},
                          follow_redirects=False)
    assert refused.status_code == 303  # post/redirect/get: the case page says why
    assert 'id="action-error"' in client.get(refused.headers["location"]).text
    assert fresh(session, Case, first.id).status == "rectified"
    assert act(client, chief, one, "write_off", 5).status_code == 303
    assert fresh(session, Case, second.id).status == "closed"
    assert fresh(session, Case, first.id).status == "rectified"
    assert act(client, chief, two, "write_off", 4).status_code == 303
    assert fresh(session, Case, first.id).status == "closed"
    kinds = [e["kind"] for e in reporter_feed(client, first_receipt, session)["events"]]
    assert kinds.count("rectification_accepted") == 1 and kinds[-1] == "closed"


def test_overdue_needs_a_written_explanation_and_due_lists(client, session, world,  # type: ignore[no-untyped-def]
                                                          settings) -> None:
    case, _ = verified_case(client, session, world)
    csrf = as_user(client, session, settings, world.reviewers[0].user)
    late = record_id(open_record(client, csrf, case, **FIELDS))
    soon = record_id(open_record(client, csrf, case, **FIELDS))
    assert act(client, csrf, late, "decide", 1, **FIELDS).status_code == 303
    assert act(client, csrf, soon, "decide", 1, **{**FIELDS, "deadline": TODAY.isoformat()}
               ).status_code == 303
    assert act(client, csrf, late, "explain_overdue", 2, text="x").status_code == 409
    # Time passes: the deadline ran out.
    session.execute(text("UPDATE rectifications SET deadline = :d WHERE id = :id"),
                    {"d": TODAY - dt.timedelta(days=2), "id": late})
    session.commit()
    page = client.get(f"/console/rectifications/{late}")
    assert 'id="record-overdue"' in page.text and 'id="record-unexplained"' in page.text
    needs = act(client, csrf, late, "request_acceptance", 2)
    assert needs.status_code == 400 and "书面说明" in needs.text
    assert act(client, csrf, late, "explain_overdue", 2, text="").status_code == 400
    assert act(client, csrf, late, "explain_overdue", 2,
               text="供应商延迟交货，已督促并采取临时措施").status_code == 303
    assert act(client, csrf, late, "request_acceptance", 3).status_code == 303
    overdue = client.get("/console/rectifications?overdue=1").text
    assert f'data-record-id="{late}"' in overdue and f'data-record-id="{soon}"' not in overdue
    week = client.get("/console/rectifications?due=week").text
    assert f'data-record-id="{soon}"' in week and f'data-record-id="{late}"' not in week
    listing = client.get("/console/rectifications")
    assert listing.status_code == 200 and "逾期：1" in listing.text


# ---------------------------------------------------------------------------- public board


def _closed_record(client, session, world, settings, description: str,  # type: ignore[no-untyped-def]
                   publish: str | None) -> int:
    case, _ = verified_case(client, session, world)
    csrf = as_user(client, session, settings, world.reviewers[0].user)
    number = record_id(open_record(client, csrf, case, **{**FIELDS,
                                                           "description": description}))
    assert act(client, csrf, number, "decide", 1, **FIELDS).status_code == 303
    assert act(client, csrf, number, "request_acceptance", 2).status_code == 303
    csrf2 = as_user(client, session, settings, world.reviewers[1].user)
    assert act(client, csrf2, number, "accept", 3, result="pass",
               date=TODAY.isoformat()).status_code == 303
    chief = as_user(client, session, settings, world.chief)
    assert act(client, chief, number, "write_off", 4).status_code == 303
    if publish:
        assert act(client, chief, number, "publish", 5, public_text=publish).status_code == 303
    return number


def test_public_board_shows_only_published_week_granular_outcomes(client, session, world,  # type: ignore[no-untyped-def]
                                                                  settings) -> None:
    shown = _closed_record(client, session, world, settings, "内部描述甲", "罐区液氨泄漏隐患已整改销号")
    hidden = _closed_record(client, session, world, settings, "内部描述乙", None)
    assert shown and hidden
    client.cookies.clear()
    # Off by default: the board says so and shows nothing of the channel.
    off = client.get("/board?channel=acme")
    assert off.status_code == 404 and "罐区" not in off.text
    # Only an administrator turns it on.
    reviewer_csrf = as_user(client, session, settings, world.reviewers[0].user)
    assert client.post(f"/console/admin/board/{world.channel.id}",
                       data={"csrf_token": reviewer_csrf, "public_board": "1"},
                       follow_redirects=False).status_code == 403
    admin = make_reviewer(session, "admin", roles="admin").user
    session.commit()
    admin_csrf = as_user(client, session, settings, admin)
    assert 'id="board-acme"' in client.get("/console/admin/board").text
    assert client.post(f"/console/admin/board/{world.channel.id}",
                       data={"csrf_token": admin_csrf, "public_board": "1"},
                       follow_redirects=False).status_code == 303
    client.cookies.clear()
    year = TODAY.isocalendar()[0]
    page = client.get(f"/board?channel=acme&period={year}")
    assert page.status_code == 200
    assert "罐区液氨泄漏隐患已整改销号" in page.text
    for secret in ("内部描述甲", "内部描述乙", "液氨管道泄漏无人处理", "王建国", "reviewer0"):
        assert secret not in page.text
    assert re.search(r'id="count-found">2<', page.text)
    assert re.search(r'id="count-on-time">2<', page.text)
    assert re.search(r'id="rewards-paid">0\.00<', page.text)
    week = "{}-W{:02d}".format(*TODAY.isocalendar()[:2])
    assert f"<time>{week}</time>" in page.text
    # No date finer than a week anywhere on the page.
    assert not re.search(r"\d{4}-\d{2}-\d{2}", page.text)
    assert "<script" not in page.text  # works without JavaScript
    english = client.get(f"/board?channel=acme&period={year}", headers={"Accept-Language": "en"})
    assert "Hazards found" in english.text and "发现隐患" not in english.text
    bad = client.get("/board?channel=acme&period=someday")
    assert bad.status_code == 400 and 'id="board-error"' in bad.text
    other_week = client.get(f"/board?channel=acme&period={year - 1}-W10")
    assert "罐区液氨泄漏隐患已整改销号" not in other_week.text


def test_unknown_and_refused_actions_leave_the_record_alone(client, session, world,  # type: ignore[no-untyped-def]
                                                           settings) -> None:
    case, _ = verified_case(client, session, world)
    csrf = as_user(client, session, settings, world.reviewers[0].user)
    number = record_id(open_record(client, csrf, case, **FIELDS))
    before = session.scalar(select(func.count()).select_from(CaseEvent))
    for action, fields in [("accept", {}), ("publish", {"public_text": "x"}),
                           ("extend", {"deadline": LATER, "reason": "x"})]:
        assert act(client, csrf, number, action, 1, **fields).status_code == 409
    assert session.scalar(select(func.count()).select_from(CaseEvent)) == before
    assert fresh(session, Rectification, number).version == 1
