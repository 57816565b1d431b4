"""The case side of the console over HTTP: list, access, triage, messages, notes, grants.

Cases come in through the real intake (tests.factories.api_client); reviewers open them with
their real keys, as their browsers would.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

import crypto
from service.app import create_app
from service.domain import cases, channels, sealing, workflow
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, HazardCriterion, KeySlot, SealedItem
from tests.conftest import BASE_URL
from tests.console import sign_in
from tests.factories import api_client, make_reviewer, make_world, open_as, open_reporter_slot

REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨管道泄漏无人处理。", "seen_at": "", "insider": "yes",
          "language": "zh_CN"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def submit(client: TestClient, session, report: dict[str, Any] | None = None,  # type: ignore[no-untyped-def]
           **kwargs: Any) -> tuple[Case, str]:
    receipt = api_client(client).submit("acme", report or REPORT, **kwargs)
    salt = get_installation(session).salt
    keys = crypto.derive_receipt(receipt, salt, 1000)
    case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
    return case, receipt


def reporter_feed(client: TestClient, receipt: str, session) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    response = client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret),
        "pow": api_client(client).stamp()})
    token = response.json()["token"]
    feed = client.get("/api/v1/followup", headers={"Authorization": f"Bearer {token}"}).json()
    feed["_private"] = keys.private
    feed["_keys"] = keys
    return feed


def act(client: TestClient, csrf: str, case: Case, action: str, version: int,  # type: ignore[no-untyped-def]
        **fields: Any):
    return client.post(f"/console/cases/{case.id}/actions/{action}",
                       data={"csrf_token": csrf, "version": str(version), **fields},
                       follow_redirects=False)


def refused_page(client: TestClient, response, case: Case) -> str:  # type: ignore[no-untyped-def]
    """A refused action redirects (post/redirect/get) to the case page, which says why."""
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(f"/console/cases/{case.id}?failed="), location
    page = client.get(location)
    assert page.status_code == 200 and 'id="action-error"' in page.text
    return page.text


def sealed(key: bytes, case: Case, kind: str, content: dict[str, Any]) -> dict[str, str]:
    return sealing.seal_item_for_case(key, case.id, kind, content)


# ---------------------------------------------------------------------------- list and access


def test_list_shows_rows_with_slots_and_filters(client, session, world, settings,  # type: ignore[no-untyped-def]
                                                monkeypatch) -> None:
    first, _ = submit(client, session)
    second, _ = submit(client, session, {**REPORT, "unit": "某钢厂"})
    third, _ = submit(client, session, {**REPORT, "unit": "某纺织厂"})
    me = world.reviewers[0]
    csrf = sign_in(client, session, settings, me.user)
    page = client.get("/console/cases")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    rows = re.findall(r'<tr class="case-row" data-case-id="([0-9a-f]{32})" data-slot="([^"]*)"'
                      r' data-item-id="([0-9a-f]{32})" data-item-blob="([^"]+)"', page.text)
    assert {r[0] for r in rows} == {first.id, second.id, third.id}
    for case_id, slot, item_id, blob in rows:
        # What the row carries is exactly what this reviewer's browser needs to read it.
        key = crypto.open_key(crypto.b64u_decode(slot), me.private_key, bytes.fromhex(case_id))
        report = crypto.open_item(key, bytes.fromhex(case_id), bytes.fromhex(item_id), "report",
                                  crypto.b64u_decode(blob))
        assert report["description"] == REPORT["description"]
    # Filters: status, mine, sealed on server, overdue, grade.
    assert act(client, csrf, second, "accept", 1).status_code == 303
    assert act(client, csrf, third, "assign", 1, assignee=str(me.user.id)).status_code == 303
    assert set(re.findall(r'data-case-id="(\w+)"', client.get(
        "/console/cases?status=accepted").text)) == {second.id}
    assert set(re.findall(r'data-case-id="(\w+)"', client.get(
        "/console/cases?mine=1").text)) == {third.id}
    assert not re.findall(r'data-case-id="(\w+)"', client.get("/console/cases?sealed=1").text)
    assert not re.findall(r'data-case-id="(\w+)"', client.get("/console/cases?overdue=1").text)
    assert not re.findall(r'data-case-id="(\w+)"', client.get("/console/cases?grade=major").text)
    old = first.created_at - dt.timedelta(days=30)
    session.execute(text("UPDATE cases SET created_at = :old, accept_due_at = :due WHERE id = :id"),
                    {"old": old.replace(tzinfo=None),
                     "due": (old + dt.timedelta(days=7)).replace(tzinfo=None), "id": first.id})
    session.commit()
    overdue = client.get("/console/cases?overdue=1")
    assert set(re.findall(r'data-case-id="(\w+)"', overdue.text)) == {first.id}
    assert 'class="overdue"' in overdue.text
    # Pages of two: three cases, newest first, on two pages.
    monkeypatch.setattr(cases, "PAGE_SIZE", 2)
    one = client.get("/console/cases?sort=oldest")
    ids = re.findall(r'data-case-id="(\w+)"', one.text)
    assert ids[0] == first.id and len(ids) == 2
    next_url = re.search(r'href="([^"]+)" rel="next"', one.text).group(1).replace("&amp;", "&")
    two = client.get(next_url)
    assert re.findall(r'data-case-id="(\w+)"', two.text) == [
        c.id for c in (first, second, third) if c.id not in ids]
    assert 'rel="next"' not in two.text


def test_cases_of_other_channels_and_roles(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    case, _ = submit(client, session)
    other = channels.add_channel(session, slug="bureau", kind="bureau", name_zh="区应急管理局")
    outsider = make_reviewer(session, "outsider", other)
    admin = make_reviewer(session, "admin", world.channel, roles="admin").user
    auditor = make_reviewer(session, "auditor", world.channel, roles="auditor").user
    session.commit()
    sign_in(client, session, settings, outsider.user)
    assert case.id not in client.get("/console/cases").text
    assert client.get(f"/console/cases/{case.id}").status_code == 404
    unknown = client.get(f"/console/cases/{'0' * 32}")
    assert unknown.status_code == 404
    # An admin-only account sees no case, even as a recipient of the channel.
    client.cookies.clear()
    sign_in(client, session, settings, admin)
    listing = client.get("/console/cases")
    assert listing.status_code == 200 and case.id not in listing.text
    assert client.get(f"/console/cases/{case.id}").status_code == 403
    # An auditor reads the case but has no forms.
    client.cookies.clear()
    csrf = sign_in(client, session, settings, auditor)
    page = client.get(f"/console/cases/{case.id}")
    assert page.status_code == 200 and 'id="form-accept"' not in page.text
    assert act(client, csrf, case, "accept", 1).status_code == 403


def test_refusals_are_audited(settings, committed_database) -> None:  # type: ignore[no-untyped-def]
    session = committed_database.sessionmaker()
    world = make_world(session, settings)
    other = channels.add_channel(session, slug="bureau", kind="bureau", name_zh="区应急管理局")
    outsider = make_reviewer(session, "outsider", other)
    session.commit()
    with TestClient(create_app(settings, database=committed_database),
                    base_url=BASE_URL) as client:
        case, _ = submit(client, session)
        sign_in(client, session, settings, outsider.user)
        assert client.get(f"/console/cases/{case.id}").status_code == 404
        client.cookies.clear()
        csrf = sign_in(client, session, settings, world.reviewers[0].user)
        refused_page(client, act(client, csrf, case, "verify", 1, result="true"), case)
    session.expire_all()
    entries = [(e.action, e.outcome, e.actor) for e in session.scalars(select(AuditEntry))]
    session.close()
    assert ("case.open", "refused", "outsider") in entries
    assert ("case.verify", "refused", "reviewer0") in entries


def test_case_page_carries_what_the_browser_needs(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    import json

    data = b"\x89PNG-not-really" * 5000
    upload = sealing.PlainFile(name="现场.bin", type="application/octet-stream", size=len(data),
                               read=lambda: [data])
    case, _ = submit(client, session, identity={"v": 1, "name": "张三", "contact": "138"},
                     files=[upload])
    me = world.reviewers[0]
    csrf = sign_in(client, session, settings, me.user)
    page = client.get(f"/console/cases/{case.id}")
    assert page.status_code == 200 and 'id="show-identity"' in page.text
    island = re.search(r'<script type="application/json" id="case-data">(.*?)</script>',
                       page.text, re.S).group(1)
    info = json.loads(island)
    key = crypto.open_key(crypto.b64u_decode(info["slot"]), me.private_key,
                          bytes.fromhex(case.id))
    kinds = {i["kind"] for i in info["items"]}
    assert kinds == {"report", "file-meta"}  # the identity only through POST .../identity
    meta_item = next(i for i in info["items"] if i["kind"] == "file-meta")
    meta = crypto.open_item(key, bytes.fromhex(case.id), bytes.fromhex(meta_item["id"]),
                            "file-meta", crypto.b64u_decode(meta_item["blob"]))
    (stored,) = info["files"]
    chunks = [client.get(f"/console/cases/{case.id}/files/{stored['id']}/chunks/{i}").content
              for i in range(stored["chunk_count"])]
    plain = b"".join(crypto.open_file(crypto.b64u_decode(meta["key"]),
                                      crypto.b64u_decode(meta["prefix"]), bytes.fromhex(case.id),
                                      bytes.fromhex(stored["id"]), chunks, meta["size"]))
    assert plain == data
    assert client.get(f"/console/cases/{case.id}/files/{stored['id']}/chunks/99").status_code \
        == 404
    assert {r["key_id"] for r in info["internal_recipients"]} == {
        r.user.key_id for r in world.reviewers} | {get_installation(session).recovery_key_id}
    # Opening the identity is recorded.
    viewed = client.post(f"/console/cases/{case.id}/identity",
                         headers={"X-CSRF-Token": csrf, **JSON})
    assert viewed.status_code == 200
    assert session.scalar(select(AuditEntry).where(
        AuditEntry.action == "case.identity_viewed", AuditEntry.target == case.id))


# ---------------------------------------------------------------------------- triage


def test_every_triage_action_over_http(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    case, receipt = submit(client, session)
    earlier, earlier_receipt = submit(client, session)
    earlier.created_at -= dt.timedelta(days=1)  # same hour otherwise: ties go by random id
    boss = make_reviewer(session, "boss", world.channel, roles="reviewer approver").user
    session.commit()
    csrf = sign_in(client, session, settings, boss)
    criterion = session.scalar(select(HazardCriterion).order_by(HazardCriterion.id).limit(1))
    steps = [
        ("assign", {"assignee": str(world.reviewers[1].user.id)}),
        ("facts", {"category": "hazard", "enterprise": "某化工厂", "location": "罐区"}),
        ("grade", {"grade": "major", "criterion_id": str(criterion.id)}),
        ("link_duplicate", {"duplicate_of": earlier.id}),
        ("accept", {}),
        ("start_verification", {}),
        ("extend", {"reason": "等待检测报告", "days": "10"}),
        ("verify", {"result": "true"}),
    ]
    for version, (action, fields) in enumerate(steps, start=1):
        response = act(client, csrf, case, action, version, **fields)
        assert response.status_code == 303, (action, response.text[:300])
        assert response.headers["location"].startswith(f"/console/cases/{case.id}?done=")
        # The same form again: stale version, a conflict, nothing changed.
        stale = act(client, csrf, case, action, version, **fields)
        assert "此内容已被他人修改" in refused_page(client, stale, case)
    session.expire_all()
    stored = session.get(Case, case.id)
    assert stored.status == "verified" and stored.version == len(steps) + 1
    assert stored.grade == "major" and stored.criterion_id == criterion.id
    # The earlier report was never verified: the verified later one is the first valid.
    assert stored.duplicate_of == earlier.id and stored.first_valid
    assert not session.get(Case, earlier.id).first_valid
    assert stored.verify_extended and stored.verified_at and stored.feedback_due_at
    # The reporter reads a plain-language feed, never a name.
    feed = reporter_feed(client, receipt, session)
    assert [e["kind"] for e in feed["events"]] == [
        "received", "accepted", "verifying", "verification_extended", "verified"]
    extended = next(e for e in feed["events"] if e["kind"] == "verification_extended")
    assert extended["data"]["reason"] == "等待检测报告"
    assert "boss" not in str(feed["events"])
    # The earlier report is refused as a duplicate of... itself: a clear 400, nothing changed.
    version = session.get(Case, earlier.id).version  # bumped when it became the first valid
    refused = act(client, csrf, earlier, "not_accept", version, reason="duplicate",
                  duplicate_of=earlier.id)
    refused_page(client, refused, earlier)
    done = act(client, csrf, earlier, "not_accept", version, reason="out_of_scope", confirm="1",
               note="这家单位不在本区")
    assert done.status_code == 303
    feed = reporter_feed(client, earlier_receipt, session)
    reason = feed["events"][-1]["data"]["reason"]
    assert feed["events"][-1]["kind"] == "not_accepted" and reason
    assert reason == workflow.reporter_text(settings,
                                            workflow.REASONS_FOR_REPORTER["out_of_scope"])


def test_triage_page_errors_and_csrf(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    case, _ = submit(client, session)
    csrf = sign_in(client, session, settings, world.reviewers[0].user)
    missing = act(client, csrf, case, "grade", 1, grade="major")
    refused_page(client, missing, case)
    refused_page(client, act(client, csrf, case, "nonsense", 1), case)
    refused_page(client, act(client, csrf, case, "close", 1), case)  # the approver's step
    no_csrf = client.post(f"/console/cases/{case.id}/actions/accept", data={"version": "1"})
    assert no_csrf.status_code == 403
    for path in ("messages", "notes", "grants", "identity"):
        assert client.post(f"/console/cases/{case.id}/{path}", json={},
                           headers=JSON).status_code == 403
    session.expire_all()
    assert session.get(Case, case.id).version == 1
    # Signed out: pages go to the sign-in form, JSON calls get 401.
    client.cookies.clear()
    assert client.get("/console/cases", follow_redirects=False).status_code == 303


# ---------------------------------------------------------------------------- sealed writes


def test_messages_reach_the_reporter_and_notes_never_do(client, session, world,  # type: ignore[no-untyped-def]
                                                         settings) -> None:
    case, receipt = submit(client, session)
    me, colleague = world.reviewers
    csrf = sign_in(client, session, settings, me.user)
    headers = {"X-CSRF-Token": csrf, **JSON}
    key, _ = open_as(me.private_key, session, case.id)
    message = sealed(key, case, "message", {"v": 1, "text": "罐区具体位置？", "question": True})
    assert client.post(f"/console/cases/{case.id}/messages", json=message,
                       headers=headers).status_code == 201
    again = client.post(f"/console/cases/{case.id}/messages", json=message, headers=headers)
    assert again.status_code == 400
    short = client.post(f"/console/cases/{case.id}/messages", headers=headers,
                        json={"id": crypto.new_id().hex(), "blob": crypto.b64u_encode(b"x")})
    assert short.status_code == 400
    # Notes: the first one must bring the internal key for every reviewer and the recovery key,
    # and never for the reporter.
    internal = crypto.new_key()
    recovery = get_installation(session)
    recipients = {r.user.key_id: r.user.public_key for r in world.reviewers}
    recipients[recovery.recovery_key_id] = recovery.recovery_public_key

    def slot(key_id: str, public: bytes) -> dict[str, str]:
        return {"purpose": "internal", "suite": crypto.SUITE, "key_id": key_id,
                "slot": crypto.b64u_encode(crypto.seal_key(internal, public,
                                                           bytes.fromhex(case.id),
                                                           purpose="internal"))}

    note = sealing.seal_item_for_case(internal, case.id, "note", {"v": 1, "text": "疑似内部人"})
    url = f"/console/cases/{case.id}/notes"
    assert client.post(url, json=note, headers=headers).status_code == 400
    reporter_slot = session.scalar(select(KeySlot).where(KeySlot.case_id == case.id,
                                                         KeySlot.holder == "reporter"))
    feed = reporter_feed(client, receipt, session)
    reporter_public = crypto.public_key(feed["_private"])
    sneaky = [slot(k, v) for k, v in recipients.items()] + [
        slot(reporter_slot.key_id, reporter_public)]
    refused = client.post(url, json={**note, "slots": sneaky}, headers=headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == \
        "internal_slot_refused"
    partial = [slot(me.user.key_id, me.user.public_key)]
    assert client.post(url, json={**note, "slots": partial}, headers=headers).status_code == 409
    full = [slot(k, v) for k, v in recipients.items()]
    assert client.post(url, json={**note, "slots": full}, headers=headers).status_code == 201
    second = sealing.seal_item_for_case(internal, case.id, "note", {"v": 1, "text": "二"})
    assert client.post(url, json={**second, "slots": full}, headers=headers).status_code == 409
    assert client.post(url, json=second, headers=headers).status_code == 201
    # The colleague opens the notes with the internal key from their own slot.
    mine = session.scalar(select(KeySlot).where(KeySlot.case_id == case.id,
                                                KeySlot.purpose == "internal",
                                                KeySlot.key_id == colleague.user.key_id))
    opened = crypto.open_key(mine.slot, colleague.private_key, bytes.fromhex(case.id),
                             purpose="internal")
    texts = [crypto.open_item(opened, bytes.fromhex(case.id), bytes.fromhex(i.id), "note", i.blob)
             ["text"] for i in session.scalars(select(SealedItem).where(
                 SealedItem.case_id == case.id, SealedItem.kind == "note")
                 .order_by(SealedItem.created_at, SealedItem.id))]
    assert sorted(texts) == sorted(["疑似内部人", "二"])
    # The reporter's feed: the message and its event, no note, no internal event.
    feed = reporter_feed(client, receipt, session)
    assert [i["kind"] for i in feed["items"]].count("message") == 1
    assert "note" not in {i["kind"] for i in feed["items"]}
    assert [e["kind"] for e in feed["events"]] == ["received", "message"]
    reporter_key = open_reporter_slot(feed, feed["_keys"], case.id)
    item = next(i for i in feed["items"] if i["kind"] == "message")
    assert crypto.open_item(reporter_key, bytes.fromhex(case.id), bytes.fromhex(item["id"]),
                            "message", crypto.b64u_decode(item["blob"]))["text"] == "罐区具体位置？"
    assert not session.scalar(select(func.count()).select_from(KeySlot).where(
        KeySlot.purpose == "internal", KeySlot.holder == "reporter"))


def test_grants_let_a_colleague_open_the_case(client, session, world, settings) -> None:  # type: ignore[no-untyped-def]
    case, _ = submit(client, session)
    newcomer = make_reviewer(session, "newcomer", world.channel)  # joined after the report
    other = channels.add_channel(session, slug="bureau", kind="bureau", name_zh="区应急管理局")
    outsider = make_reviewer(session, "outsider", other)
    session.commit()
    me = world.reviewers[0]
    key, _ = open_as(me.private_key, session, case.id)

    def grant_for(person) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return {"user_id": person.user.id, "slots": [{
            "purpose": "case", "suite": crypto.SUITE, "key_id": person.user.key_id,
            "slot": crypto.b64u_encode(crypto.seal_key(key, person.user.public_key,
                                                       bytes.fromhex(case.id)))}]}

    # The newcomer sees the case in the list (a recipient now) but holds no key for it.
    csrf = sign_in(client, session, settings, newcomer.user)
    headers = {"X-CSRF-Token": csrf, **JSON}
    assert client.post(f"/console/cases/{case.id}/grants", json=grant_for(newcomer),
                       headers=headers).json()["error"]["code"] == "key_not_held"
    client.cookies.clear()
    csrf = sign_in(client, session, settings, me.user)
    headers = {"X-CSRF-Token": csrf, **JSON}
    url = f"/console/cases/{case.id}/grants"
    assert client.post(url, json=grant_for(outsider), headers=headers).status_code == 403
    wrong_key = grant_for(newcomer)
    wrong_key["slots"][0]["key_id"] = me.user.key_id
    assert client.post(url, json=wrong_key, headers=headers).status_code == 400
    assert client.post(url, json=grant_for(newcomer), headers=headers).status_code == 201
    assert client.post(url, json=grant_for(newcomer), headers=headers).status_code == 409
    _, items = open_as(newcomer.private_key, session, case.id)
    assert items["report"][0] == REPORT
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "case.grant")).details \
        == {"user_id": newcomer.user.id, "purposes": ["case"]}


# ---------------------------------------------------------------------------- scale


@pytest.mark.sqlite_only
def test_list_query_uses_an_index_with_100000_cases(session, world, settings) -> None:  # type: ignore[no-untyped-def]
    other = channels.add_channel(session, slug="bureau", kind="bureau", name_zh="区应急管理局")
    session.flush()
    base = dt.datetime(2024, 1, 1)
    rows = [(f"{i:032x}", world.channel.id if i % 3 else other.id,
             f"{base + dt.timedelta(hours=i // 4):%Y-%m-%d %H:%M:%S.%f}", f"{base:%Y-%m-%d %H:%M:%S.%f}",
             "new" if i % 5 else "accepted", f"{i:064x}")
            for i in range(100_000)]
    # One bulk statement through the driver (the ORM would take far longer to seed), with
    # timestamps in the text form SQLAlchemy writes on SQLite.
    session.connection().exec_driver_sql(
        "INSERT INTO cases (id, channel_id, created_at, updated_at, status, lookup_hash, "
        "version, ready, sealed_on_server, enterprise, location, first_valid, verify_extended) "
        "VALUES (?, ?, ?, ?, ?, ?, 1, 1, 0, '', '', 0, 0)", rows)
    session.connection().exec_driver_sql("ANALYZE")
    me = world.reviewers[0].user
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for filters in (cases.Filters(), cases.Filters(sort="oldest"),
                    cases.Filters(status="accepted"), cases.Filters(channel=world.channel.id),
                    cases.Filters(overdue=True), cases.Filters(mine=True),
                    cases.Filters(after=cases.encode_cursor(
                        Case(id=f"{5000:032x}", created_at=(base + dt.timedelta(hours=1250))
                             .replace(tzinfo=dt.UTC))))):
        query = cases.list_query(session, settings, me, filters, now, 51)
        sql = str(query.compile(session.bind, compile_kwargs={"literal_binds": True}))
        plan = [row[3] for row in session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + sql)]
        on_cases = [step for step in plan if re.search(r"\bcases\b", step)]
        assert on_cases and all("INDEX" in step for step in on_cases), (filters, plan)
        # Never a sort of the whole table: at most the ties within one timestamp.
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (filters, plan)
    # And the pages hold together: 50 rows, the next page starts where this one ended.
    page = cases.list_cases(session, settings, me, cases.Filters(), now)
    assert len(page.cases) == 50 and page.next_cursor
    following = cases.list_cases(session, settings, me, cases.Filters(after=page.next_cursor),
                                 now)
    assert not {c.id for c in page.cases} & {c.id for c in following.cases}
    assert (following.cases[0].created_at, following.cases[0].id) < (
        page.cases[-1].created_at, page.cases[-1].id)
    assert all(c.channel_id == world.channel.id for c in page.cases + following.cases)


def test_cursor_garbage_is_ignored() -> None:
    assert cases.decode_cursor("!!!") is None
    assert cases.decode_cursor("") is None
    assert cases.Filters.parse({"status": "<script>", "channel": "x", "sort": "evil",
                                "after": "a" * 500}).status is None
