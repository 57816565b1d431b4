"""The reporter's identity and a reward claim leave the server only through the endpoints
that record the look, in the same transaction; nothing else carries them.

Before, every case page embedded the identity ciphertext and every reward page the claim and
the officer's slot, and the audit entry was a courtesy call from the page script: a reviewer
with their key could read an identity and leave no entry.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, SealedItem
from service.domain.models.rewards import RewardClaimSlot, RewardRecord
from service.platform.settings import Settings
from tests.console import sign_in
from tests.domain.test_reward_lifecycle import (
    REPORT,
    approved_reward,
    browser_claim,
    followup_token,
    make_people,
)
from tests.factories import api_client, make_reviewer

JSON = {"Accept": "application/json"}
IDENTITY = {"v": 1, "name": "王建国", "contact": "13800138000"}


def looks(session: Session, action: str, target: str) -> list[AuditEntry]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.target == target).order_by(AuditEntry.id)))


def submitted(client: TestClient, session: Session,
              identity: dict[str, Any] | None) -> tuple[Case, str]:
    receipt = api_client(client).submit("acme", REPORT, identity=identity)
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
    assert case is not None
    return case, receipt


def _island(text: str, name: str) -> Any:
    found = re.search(rf'<script type="application/json" id="{name}">(.*?)</script>', text, re.S)
    assert found
    return json.loads(found.group(1))


def test_identity_only_through_the_audited_endpoint(client: TestClient, session: Session,
                                                    settings: Settings) -> None:
    people = make_people(session, settings)
    reviewer = people.reviewer
    case, receipt = submitted(client, session, IDENTITY)
    (item,) = session.scalars(select(SealedItem).where(SealedItem.case_id == case.id,
                                                       SealedItem.kind == "identity"))
    sealed = crypto.b64u_encode(item.blob)

    csrf = sign_in(client, session, settings, reviewer.user)
    page = client.get(f"/console/cases/{case.id}")
    assert page.status_code == 200 and 'id="show-identity"' in page.text
    assert sealed not in page.text and item.id not in page.text
    assert "identity" not in {i["kind"] for i in _island(page.text, "case-data")["items"]}
    assert looks(session, "case.identity_viewed", case.id) == []
    # Nor in the reporter's feed (a receipt found by someone else must not hand it out).
    token, _ = followup_token(client, session, receipt)
    feed = client.get("/api/v1/followup", headers={"Authorization": f"Bearer {token}"})
    assert sealed not in feed.text and "identity" not in {i["kind"] for i in feed.json()["items"]}

    # Every successful fetch: exactly one entry, and the item opens with the reviewer's key.
    for count in (1, 2):
        served = client.post(f"/console/cases/{case.id}/identity", headers={
            "X-CSRF-Token": csrf, **JSON})
        assert served.status_code == 200 and served.headers["cache-control"] == "no-store"
        (given,) = served.json()["items"]
        entries = looks(session, "case.identity_viewed", case.id)
        assert [(e.outcome, e.actor_id) for e in entries] == [("ok", reviewer.user.id)] * count
    slot = crypto.b64u_decode(_island(page.text, "case-data")["slot"])
    key = crypto.open_key(slot, reviewer.private_key, bytes.fromhex(case.id))
    assert crypto.open_item(key, bytes.fromhex(case.id), bytes.fromhex(given["id"]), "identity",
                            crypto.b64u_decode(given["blob"])) == IDENTITY

    # Any other way fails, and changes no count of successful looks.
    assert client.get(f"/console/cases/{case.id}/identity").status_code == 405
    assert client.post(f"/console/cases/{case.id}/identity", headers=JSON).status_code == 403
    assert client.post(f"/console/cases/{case.id}/identity-viewed",
                       headers={"X-CSRF-Token": csrf, **JSON}).status_code in (404, 405)
    for outsider in (people.approver, people.auditor, people.finance, people.admin,
                     make_reviewer(session, "late", people.world.channel)):
        session.commit()
        other = sign_in(client, session, settings, outsider.user)
        refused = client.post(f"/console/cases/{case.id}/identity",
                              headers={"X-CSRF-Token": other, **JSON})
        assert refused.status_code in (403, 404), outsider.user.username
        assert sealed not in refused.text
    assert [e.outcome for e in looks(session, "case.identity_viewed", case.id)].count("ok") == 2
    client.cookies.clear()
    assert client.post(f"/console/cases/{case.id}/identity", headers=JSON).status_code in (
        401, 403)


def test_claim_only_through_the_audited_endpoint(client: TestClient, session: Session,
                                                 settings: Settings) -> None:
    people = make_people(session, settings)
    case, receipt, record = approved_reward(client, session, people)
    csrf = sign_in(client, session, settings, people.finance.user)
    # Not claimed yet: nothing to serve.
    assert client.post(f"/console/rewards/{record.id}/claim",
                       headers={"X-CSRF-Token": csrf, **JSON}).status_code == 404
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    rewards = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"]
    _, body = browser_claim(rewards[0], keys.lookup_secret)
    assert client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body,
                       headers=auth).status_code == 201
    session.refresh(record)
    assert record.claim_blob is not None
    sealed = crypto.b64u_encode(record.claim_blob)
    slots = [crypto.b64u_encode(s.slot) for s in session.scalars(
        select(RewardClaimSlot).where(RewardClaimSlot.reward_id == record.id))]

    page = client.get(f"/console/rewards/{record.id}")
    assert page.status_code == 200 and 'id="claim-open"' in page.text
    assert sealed not in page.text and not any(slot in page.text for slot in slots)
    assert _island(page.text, "reward-data") == {"reward_id": record.id}
    for count in (1, 2):
        served = client.post(f"/console/rewards/{record.id}/claim",
                             headers={"X-CSRF-Token": csrf, **JSON})
        assert served.status_code == 200
        entries = looks(session, "reward.claim_viewed", record.id)
        assert [(e.outcome, e.actor_id) for e in entries if e.outcome == "ok"] == [
            ("ok", people.finance.user.id)] * count
    given = served.json()
    reward_id = bytes.fromhex(record.id)
    # finance1 has an X-Wing key: its slot is v2, and there is no v1 one (PROTOCOL 15).
    assert given["slot"] == "" and people.finance.xwing_seed is not None
    key = crypto.open_claim_key_v2(crypto.b64u_decode(given["slot_v2"]),
                                   people.finance.xwing_seed, reward_id)
    assert crypto.open_item(key, reward_id, bytes.fromhex(given["item_id"]), "claim",
                            crypto.b64u_decode(given["blob"]))["account"] == "worker@example.cn"

    assert client.get(f"/console/rewards/{record.id}/claim").status_code == 405
    assert client.post(f"/console/rewards/{record.id}/claim-viewed",
                       headers={"X-CSRF-Token": csrf, **JSON}).status_code in (404, 405)
    # An officer appointed after the claim holds no slot: refused, with the reason, audited.
    late = make_reviewer(session, "finance2", None, roles="finance")
    late.user.totp_confirmed = True
    session.commit()
    other = sign_in(client, session, settings, late.user)
    refused = client.post(f"/console/rewards/{record.id}/claim",
                          headers={"X-CSRF-Token": other, "Accept-Language": "en", **JSON})
    assert refused.status_code == 403 and sealed not in refused.text
    assert "not sealed to your key" in refused.json()["error"]["message"]
    for outsider in (people.reviewer, people.approver, people.auditor, people.admin):
        other = sign_in(client, session, settings, outsider.user)
        answer = client.post(f"/console/rewards/{record.id}/claim",
                             headers={"X-CSRF-Token": other, **JSON})
        assert answer.status_code in (403, 404) and sealed not in answer.text
    entries = looks(session, "reward.claim_viewed", record.id)
    assert [e.outcome for e in entries].count("ok") == 2
    assert ("refused", late.user.id) in [(e.outcome, e.actor_id) for e in entries]
    assert session.scalar(select(func.count(RewardRecord.id))) == 1
