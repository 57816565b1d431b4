"""Rewards over HTTP: proposal, approval by another person, the reporter's claim (JSON and
no-JS), the finance officer's code check and payment, policies, the ledger, the audit trail.

Cases come in through the real intake and are verified through the real state machine;
claims are sealed with the real crypto, and opened again only with a finance officer's key.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from service import cli
from service.domain import (
    audit,
    reward_claims,
    reward_ledger,
    reward_policies,
    reward_records,
    reward_states,
    sealing,
    workflow,
)
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, CaseEvent, HazardCriterion, User, utcnow
from service.domain.models.rewards import RewardClaimSlot, RewardPolicyVersion, RewardRecord
from service.domain.rewards import RewardCalculation, load_policy, recompute
from service.domain.statemachine import NotAllowedNow
from service.platform.db import Database
from service.platform.errors import Conflict, InvalidInput
from service.platform.settings import Settings
from tests.conftest import fast_settings
from tests.console import sign_in
from tests.factories import Reviewer, World, api_client, make_reviewer, make_world
from tests.translations import english

REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨管道泄漏无人处理。", "seen_at": "", "insider": "yes",
          "language": "zh_CN"}


@dataclass
class People:
    world: World
    reviewer: Reviewer
    approver: Reviewer
    finance: Reviewer
    auditor: Reviewer
    admin: Reviewer


def make_people(session: Session, settings: Settings) -> People:
    world = make_world(session, settings, reviewers=1)
    people = People(
        world, world.reviewers[0],
        make_reviewer(session, "approver1", world.channel, roles="approver"),
        # Signed in with a browser that has the hybrid: an X-Wing pair (PROTOCOL 17.5).
        make_reviewer(session, "finance1", None, roles="finance", xwing=True),
        make_reviewer(session, "auditor1", None, roles="auditor"),
        make_reviewer(session, "admin1", None, roles="admin"))
    session.commit()
    return people


@pytest.fixture
def people(session, settings) -> People:  # type: ignore[no-untyped-def]
    return make_people(session, settings)


def verified_case(client: TestClient, session: Session, people: People,
                  grade: str = "major") -> tuple[Case, str]:
    """A case submitted through the intake, accepted, graded and verified as true."""
    receipt = api_client(client).submit("acme", REPORT)
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
    assert case is not None
    actor, settings = people.reviewer.user, people.world.settings
    criterion = session.scalar(select(HazardCriterion.id).limit(1))
    for action, params in (("accept", {}), ("grade", {"grade": grade,
                                                      "criterion_id": criterion}),
                           ("start_verification", {}), ("verify", {"result": "true"})):
        workflow.perform(session, settings, case, actor, action, version=case.version,
                         params=params)
    session.commit()
    return case, receipt


def policy_row(session: Session, policy_id: str = "national-2018") -> RewardPolicyVersion:
    reward_policies.ensure_shipped(session)
    row = session.scalar(select(RewardPolicyVersion).where(
        RewardPolicyVersion.policy_id == policy_id))
    assert row is not None
    return row


def approved_reward(client: TestClient, session: Session, people: People,
                    fine: str = "200000") -> tuple[Case, str, RewardRecord]:
    case, receipt = verified_case(client, session, people)
    record = reward_records.propose(session, case, people.reviewer.user, policy_row(session).id,
                                    {"fine": fine})
    reward_records.approve(session, record, people.approver.user, record.version)
    session.commit()
    session.refresh(record)
    return case, receipt, record


def followup_token(client: TestClient, session: Session, receipt: str) -> tuple[str, Any]:
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    response = client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret),
        "pow": api_client(client).stamp()})
    assert response.status_code == 200, response.text
    return response.json()["token"], keys


def browser_claim(reward: dict[str, Any], lookup_secret: bytes,
                  payload: dict[str, Any] | None = None,
                  recipients: list[dict[str, str]] | None = None,
                  hybrid: bool = True) -> tuple[str, dict[str, Any]]:
    """What claim.js sends: the code's hash, the sealed claim, the claim key's slots (v2 to
    each X-Wing key in a browser with the hybrid; without it v1 slots naming no suite, as
    the page did before v2)."""
    reward_id = bytes.fromhex(reward["id"])
    code = crypto.derive_claim_code(lookup_secret, reward_id)
    claim_key, item_id = crypto.new_key(), crypto.new_id()
    blob = crypto.seal_item(claim_key, reward_id, item_id, "claim", payload or {
        "v": 1, "method": "alipay", "account": "worker@example.cn", "name": "", "contact": "",
        "note": ""})
    slots = []
    for r in recipients if recipients is not None else reward["recipients"]:
        suite, public = sealing.recipient_key(r, hybrid)
        slot = {"key_id": crypto.key_id(public).hex(), "slot": crypto.b64u_encode(
            crypto.seal_claim_slot(suite, claim_key, public, reward_id))}
        slots.append({**slot, "suite": suite} if hybrid else slot)
    return code, {
        "claim_hash": crypto.claim_code_hash(code).hex(),
        "item": {"id": item_id.hex(), "kind": "claim", "blob": crypto.b64u_encode(blob)},
        "slots": slots,
    }


def open_claim(session: Session, record: RewardRecord, private: bytes,
               xwing_seed: bytes | None = None) -> dict[str, Any]:
    """As the console does: the v2 slot with the X-Wing seed where there is one, else v1."""
    reward_id = bytes.fromhex(record.id)
    candidates = [(crypto.SUITE, private, crypto.public_key(private))]
    if xwing_seed is not None:
        candidates.insert(0, (crypto.SUITE_V2, xwing_seed, crypto.xwing_public_key(xwing_seed)))
    for suite, secret, public in candidates:
        slot = session.scalar(select(RewardClaimSlot).where(
            RewardClaimSlot.reward_id == record.id,
            RewardClaimSlot.key_id == crypto.key_id(public).hex()))
        if slot is not None:
            assert slot.suite == suite
            key = crypto.open_claim_slot(suite, slot.slot, secret, reward_id)
            break
    else:
        raise crypto.OpenError()
    assert record.claim_blob is not None and record.claim_item_id is not None
    return crypto.open_item(key, reward_id, bytes.fromhex(record.claim_item_id), "claim",
                            record.claim_blob)


def slot_suites(session: Session, record: RewardRecord) -> dict[str, str]:
    """holder name -> suite of each stored claim slot ("recovery" for the recovery key)."""
    out = {}
    for slot in session.scalars(select(RewardClaimSlot).where(
            RewardClaimSlot.reward_id == record.id)):
        user = session.get(User, slot.user_id) if slot.user_id is not None else None
        out[user.username if user else slot.holder] = slot.suite
    return out


def actions(session: Session, outcome: str = "ok") -> list[str]:
    return list(session.scalars(select(AuditEntry.action).where(AuditEntry.outcome == outcome)
                                .order_by(AuditEntry.id)))


# ---------------------------------------------------------------------------- the whole way


def test_propose_approve_claim_verify_pay(client: TestClient, session: Session,
                                          people: People, settings: Settings) -> None:
    case, receipt = verified_case(client, session, people)
    row = policy_row(session)
    csrf = sign_in(client, session, settings, people.reviewer.user)
    page = client.get(f"/console/cases/{case.id}/reward")
    assert page.status_code == 200 and 'id="form-reward"' in page.text
    preview = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(row.id), "fine": "1234567.89", "insider": "1",
        "action": "preview"})
    assert preview.status_code == 200
    assert "185 185.18" in preview.text and 'id="propose-button"' in preview.text
    proposed = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(row.id), "fine": "1234567.89", "insider": "1",
        "action": "propose"}, follow_redirects=False)
    assert proposed.status_code == 303
    reward_id = proposed.headers["location"].split("/")[-1].split("?")[0]
    record = session.get(RewardRecord, reward_id)
    assert record is not None and record.status == "proposed"
    # The record keeps the policy id, version, digest, every input and every step.
    calc = RewardCalculation.from_json(record.calculation)
    national = load_policy("national-2018")
    assert (calc.policy_id, calc.policy_version, calc.policy_digest) == (
        "national-2018", 1, national.digest)
    assert calc.inputs.fine_fen == 123456789 and calc.inputs.insider is True
    assert calc.inputs.first_valid is True and calc.amount_fen == record.amount_fen == 18518518
    assert recompute(calc, national) == []
    assert [s.kind for s in calc.steps][:2] == ["first_valid_only", "percentage_of_fine"]

    # The approver (another person) approves; the reporter sees the amount.
    csrf = sign_in(client, session, settings, people.approver.user)
    page = client.get(f"/console/rewards/{reward_id}")
    assert 'id="form-approve"' in page.text and "185 185.18" in page.text
    approved = client.post(f"/console/rewards/{reward_id}/approve",
                           data={"csrf_token": csrf, "version": "1"}, follow_redirects=False)
    assert approved.status_code == 303
    session.refresh(record)
    assert record.status == "approved" and record.decided_by == people.approver.user.id
    assert record.claim_due_at is not None
    assert dt.timedelta(days=59) < record.claim_due_at - record.decided_at <= dt.timedelta(days=60)
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    feed = client.get("/api/v1/followup", headers=auth).json()
    offered = [e for e in feed["events"] if e["kind"] == "reward_offered"]
    assert offered and offered[0]["data"]["amount"] == "185 185.18"
    rewards = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"]
    assert [r["id"] for r in rewards] == [reward_id] and rewards[0]["claimable"]
    assert {r["key_id"] for r in rewards[0]["recipients"]} == {
        people.finance.user.key_id, get_installation(session).recovery_key_id}
    assert {r["xwing_key_id"] for r in rewards[0]["recipients"]} == {
        people.finance.user.xwing_key_id, get_installation(session).recovery_xwing_key_id}

    # The reporter claims: only the code's hash and a sealed claim reach the server.
    code, body = browser_claim(rewards[0], keys.lookup_secret)
    claimed = client.post(f"/api/v1/followup/rewards/{reward_id}/claim", json=body, headers=auth)
    assert claimed.status_code == 201, claimed.text
    session.refresh(record)
    assert record.status == "claimed" and record.claim_hash == crypto.claim_code_hash(code).hex()
    assert code not in record.claim_hash
    assert open_claim(session, record, people.finance.private_key,
                      people.finance.xwing_seed)["account"] == \
        "worker@example.cn"
    assert open_claim(session, record, people.world.recovery_private,
                      people.world.recovery_xwing_seed)["method"] == "alipay"
    # v2 to every X-Wing key: the finance officer's and the recovery key's (PROTOCOL 15).
    assert slot_suites(session, record) == {"finance1": crypto.SUITE_V2,
                                            "recovery": crypto.SUITE_V2}
    for outsider in (people.reviewer.private_key, people.approver.private_key):
        with pytest.raises(crypto.OpenError):
            open_claim(session, record, outsider)
    feed = client.get("/api/v1/followup", headers=auth).json()
    assert "reward_claimed" in [e["kind"] for e in feed["events"]]

    # Finance checks the presented code, then pays with a reference.
    csrf = sign_in(client, session, settings, people.finance.user)
    page = client.get(f"/console/rewards/{reward_id}")
    assert 'id="form-pay"' in page.text
    assert crypto.b64u_encode(record.claim_blob) not in page.text  # served only when asked
    served = client.post(f"/console/rewards/{reward_id}/claim", headers={"X-CSRF-Token": csrf})
    assert served.status_code == 200 and served.json()["item_id"] == record.claim_item_id
    checked = client.post(f"/console/rewards/{reward_id}/verify-code", data={
        "csrf_token": csrf, "code": crypto.format_claim_code(code).lower()},
        follow_redirects=False)
    assert checked.status_code == 303
    paid = client.post(f"/console/rewards/{reward_id}/pay", data={
        "csrf_token": csrf, "code": code, "reference": "转账 20261128-001",
        "version": str(record.version)}, follow_redirects=False)
    assert paid.status_code == 303
    session.refresh(record)
    assert record.status == "paid" and record.payment_reference == "转账 20261128-001"
    assert "reward_paid" in [e["kind"] for e in client.get("/api/v1/followup",
                                                           headers=auth).json()["events"]]
    # The claim's entry is held until its hour has ended (test_audit_deferred.py).
    audit.release_deferred(session, now=utcnow() + dt.timedelta(hours=2))
    done = actions(session)
    for action in ("reward.preview", "reward.propose", "reward.approve", "reward.claimed",
                   "reward.claim_viewed", "reward.code_verified", "reward.paid"):
        assert action in done, action
    assert audit.verify_chain(session).ok


# ---------------------------------------------------------------------------- refusals


def test_proposer_cannot_approve_and_rejection_needs_reason(
        client: TestClient, session: Session, people: People, settings: Settings) -> None:
    both = make_reviewer(session, "both", people.world.channel, roles="reviewer approver")
    session.commit()
    case, _ = verified_case(client, session, people)
    record = reward_records.propose(session, case, both.user, policy_row(session).id,
                                    {"fine": "50000"})
    session.commit()
    csrf = sign_in(client, session, settings, both.user)
    page = client.get(f"/console/rewards/{record.id}")
    assert "another approver must decide" in page.text or "另一位审批人" in page.text
    refused = client.post(f"/console/rewards/{record.id}/approve",
                          data={"csrf_token": csrf, "version": "1"})
    assert refused.status_code == 403
    session.refresh(record)
    assert record.status == "proposed" and record.version == 1
    assert "reward.approve" in actions(session, "refused")
    with pytest.raises(reward_records.OwnApproval):
        reward_records.approve(session, record, both.user, 1)
    session.rollback()
    # Rejection needs a reason; with one, the case can get a new proposal.
    csrf = sign_in(client, session, settings, people.approver.user)
    assert client.post(f"/console/rewards/{record.id}/reject",
                       data={"csrf_token": csrf, "version": "1", "reason": "  "}
                       ).status_code == 400
    assert client.post(f"/console/rewards/{record.id}/reject",
                       data={"csrf_token": csrf, "version": "1", "reason": "罚款金额有误"},
                       follow_redirects=False).status_code == 303
    session.refresh(record)
    assert record.status == "rejected" and record.rejection_reason == "罚款金额有误"
    again = reward_records.propose(session, case, people.reviewer.user, policy_row(session).id,
                                   {"fine": "60000"})
    assert again.status == "proposed"
    # ... but not a second active one.
    with pytest.raises(NotAllowedNow):
        reward_records.propose(session, case, people.reviewer.user, policy_row(session).id,
                               {"fine": "60000"})


def test_stale_version_and_double_decision_refused(client: TestClient, session: Session,
                                                   people: People) -> None:
    case, _, record = approved_reward(client, session, people)
    other = make_reviewer(session, "approver2", people.world.channel, roles="approver")
    with pytest.raises(Conflict):
        reward_records.approve(session, record, other.user, 1)  # the version moved on
    with pytest.raises(NotAllowedNow):
        reward_records.approve(session, record, other.user, record.version)


@pytest.mark.parametrize(("fine", "en"), [
    ("-100", "must not be negative"),
    ("99999999999999", "absurdly large"),
    ("12.345", "not an amount in yuan"),
    ("一万", "not an amount in yuan"),
])
def test_negative_or_absurd_fines_refused(client: TestClient, session: Session, people: People,
                                          settings: Settings, fine: str, en: str) -> None:
    case, _ = verified_case(client, session, people)
    csrf = sign_in(client, session, settings, people.reviewer.user)
    for action in ("preview", "propose"):
        response = client.post(f"/console/cases/{case.id}/reward", headers={
            "Accept-Language": "en"}, data={"csrf_token": csrf, "policy": str(
                policy_row(session).id), "fine": fine, "action": action})
        assert response.status_code == 400
        assert 'id="error"' in response.text
    assert session.scalar(select(RewardRecord.id)) is None
    client.cookies.set("__Host-lang", "zh_CN")
    zh = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(policy_row(session).id), "fine": fine})
    assert "计算被拒绝" in zh.text
    assert "reward.preview" in actions(session, "refused")
    with pytest.raises(reward_policies.CalculationRefused) as refused:
        reward_records.preview(session, case, people.reviewer.user, policy_row(session).id,
                               {"fine": fine})
    assert en in english(refused.value.params["reason"])


def test_unverified_case_and_inactive_policy_refused(client: TestClient, session: Session,
                                                     people: People) -> None:
    receipt = api_client(client).submit("acme", REPORT)
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    fresh = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
    with pytest.raises(NotAllowedNow):
        reward_records.propose(session, fresh, people.reviewer.user, policy_row(session).id,
                               {"fine": "1"})
    case, _ = verified_case(client, session, people)
    row = policy_row(session)
    reward_policies.set_policy_active(session, people.admin.user, row, False)
    with pytest.raises(InvalidInput):
        reward_records.propose(session, case, people.reviewer.user, row.id, {"fine": "1"})


def test_wrong_roles_and_missing_csrf(client: TestClient, session: Session, people: People,
                                      settings: Settings) -> None:
    case, _, record = approved_reward(client, session, people)
    # An auditor cannot approve, propose or pay; a reviewer cannot pay or manage policies.
    csrf = sign_in(client, session, settings, people.auditor.user)
    assert client.post(f"/console/rewards/{record.id}/approve",
                       data={"csrf_token": csrf, "version": "3"}).status_code == 403
    assert client.post(f"/console/cases/{case.id}/reward",
                       data={"csrf_token": csrf, "fine": "1"}).status_code == 403
    csrf = sign_in(client, session, settings, people.reviewer.user)
    assert client.post(f"/console/rewards/{record.id}/pay", data={
        "csrf_token": csrf, "code": "A" * 16, "reference": "x"}).status_code == 403
    assert client.get("/console/reward-policies").status_code == 403
    assert client.get("/console/audit").status_code == 403
    csrf = sign_in(client, session, settings, people.finance.user)
    assert client.get(f"/console/cases/{case.id}/reward").status_code == 403
    assert client.post("/console/rewards/export", data={
        "csrf_token": csrf, "format": "csv"}).status_code == 403
    # No CSRF token: refused before the view, nothing changes.
    csrf = sign_in(client, session, settings, people.approver.user)
    assert client.post(f"/console/rewards/{record.id}/reject",
                       data={"version": str(record.version), "reason": "x"}).status_code == 403
    session.refresh(record)
    assert record.status == "approved"
    refused = actions(session, "refused")
    assert refused.count("forbidden") >= 6 and "csrf" in refused


def test_claim_refusals_reuse_expiry_and_keys(client: TestClient, session: Session,
                                              people: People, settings: Settings) -> None:
    case, receipt, record = approved_reward(client, session, people)
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    reward = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"][0]
    # Sealed to fewer than every finance officer (or to a reviewer): refused.
    _, partial = browser_claim(reward, keys.lookup_secret, recipients=reward["recipients"][:1])
    response = client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=partial,
                           headers=auth)
    assert response.status_code == 409 and response.json()["error"]["code"] == "claim_keys_changed"
    wrong = [*reward["recipients"][:1], {"key_id": people.reviewer.user.key_id,
                                         "public_key": crypto.b64u_encode(
                                             people.reviewer.user.public_key)}]
    _, sneaky = browser_claim(reward, keys.lookup_secret, recipients=wrong)
    assert client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=sneaky,
                       headers=auth).status_code == 409
    # Someone else's session cannot claim this reward: the same 404 as an unknown id.
    _, other_receipt = verified_case(client, session, people)
    other_token, _ = followup_token(client, session, other_receipt)
    code, body = browser_claim(reward, keys.lookup_secret)
    assert client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body, headers={
        "Authorization": f"Bearer {other_token}"}).status_code == 404
    assert client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body,
                       headers=auth).status_code == 201
    again = client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body, headers=auth)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_claimed"
    # Finance: a wrong code is refused, the right one pays once, then it is spent.
    session.refresh(record)
    csrf = sign_in(client, session, settings, people.finance.user)
    other_code = crypto.derive_claim_code(keys.lookup_secret, bytes(16))
    bad = client.post(f"/console/rewards/{record.id}/pay", data={
        "csrf_token": csrf, "code": other_code, "reference": "r1",
        "version": str(record.version)})
    assert bad.status_code == 403 and 'id="error"' in bad.text
    assert client.post(f"/console/rewards/{record.id}/verify-code", data={
        "csrf_token": csrf, "code": "not a code"}).status_code == 400
    assert client.post(f"/console/rewards/{record.id}/pay", data={
        "csrf_token": csrf, "code": code, "reference": "",
        "version": str(record.version)}).status_code == 400
    assert client.post(f"/console/rewards/{record.id}/pay", data={
        "csrf_token": csrf, "code": code, "reference": "r1",
        "version": str(record.version)}, follow_redirects=False).status_code == 303
    session.refresh(record)
    reused = client.post(f"/console/rewards/{record.id}/verify-code", data={
        "csrf_token": csrf, "code": code}, headers={"Accept-Language": "en"})
    assert reused.status_code == 409 and "used already" in reused.text
    with pytest.raises(reward_claims.CodeUsed):
        reward_claims.record_payment(session, record, people.finance.user, code, "r2",
                                     record.version)
    session.rollback()
    assert {"reward.pay", "reward.code_verified"} <= set(actions(session, "refused"))

    # Expired: a claim after the policy's window (counted from approval) is refused.
    _, receipt2, late = approved_reward(client, session, people)
    late.claim_due_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    session.commit()
    token2, keys2 = followup_token(client, session, receipt2)
    auth2 = {"Authorization": f"Bearer {token2}"}
    listed = client.get("/api/v1/followup/rewards", headers=auth2).json()["rewards"][0]
    assert listed["status"] == "lapsed" and not listed["claimable"]
    _, body2 = browser_claim({**listed, "recipients": reward["recipients"]}, keys2.lookup_secret)
    expired = client.post(f"/api/v1/followup/rewards/{late.id}/claim", json=body2,
                          headers={**auth2, "Accept-Language": "en"})
    assert expired.status_code == 410 and "ended on" in expired.json()["error"]["message"]
    assert reward_states.display_status(session.get(RewardRecord, late.id)) == "lapsed"


def test_claim_without_javascript(client: TestClient, session: Session, people: People) -> None:
    case, receipt, record = approved_reward(client, session, people)
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"})
    assert page.status_code == 200 and 'action="/followup/claim"' in page.text
    assert "30 000.00" in page.text
    refused = client.post("/followup/claim", data={"receipt": receipt, "reward": record.id, "sealing": "noscript",
                                                   "method": "bank", "account": ""})
    assert refused.status_code == 400
    done = client.post("/followup/claim", data={
        "sealing": "noscript", "receipt": receipt, "reward": record.id, "method": "bank",
        "account": "6222 0200 1234 5678", "name": "", "contact": "", "note": "工资卡"})
    assert done.status_code == 200
    shown = re.search(r'id="claim-code">([A-Z2-7-]{19})<', done.text)
    assert shown is not None
    keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
    code = crypto.derive_claim_code(keys.lookup_secret, bytes.fromhex(record.id))
    assert shown.group(1) == crypto.format_claim_code(code)
    session.refresh(record)
    assert record.status == "claimed" and record.claim_sealed_on_server
    assert record.claim_hash == crypto.claim_code_hash(code).hex()
    # The server has the hybrid: v2 to every X-Wing key.
    assert slot_suites(session, record) == {"finance1": crypto.SUITE_V2,
                                            "recovery": crypto.SUITE_V2}
    assert open_claim(session, record, people.finance.private_key,
                      people.finance.xwing_seed)["account"] == \
        "6222 0200 1234 5678"
    with pytest.raises(crypto.OpenError):
        open_claim(session, record, people.reviewer.private_key)
    # Asking again shows the same code; a wrong receipt learns nothing.
    again = client.post("/followup/claim", data={"receipt": receipt, "reward": record.id,
                                            "sealing": "noscript"})
    assert crypto.format_claim_code(code) in again.text
    assert client.post("/followup/claim", data={"receipt": "1" * 20, "sealing": "noscript",
                                                "reward": record.id}).status_code == 404


def test_identity_required_by_policy(client: TestClient, session: Session, people: People) -> None:
    text_ = Path(load_policy("enterprise-internal").path).read_text(encoding="utf-8")
    row = reward_policies.upload_policy(session, people.admin.user,
                                        text_.replace("version = 1", "version = 2"),
                                        identity_required=True)
    reward_policies.set_policy_active(session, people.admin.user, row, True)
    case, receipt = verified_case(client, session, people, grade="general")
    record = reward_records.propose(session, case, people.reviewer.user, row.id,
                                    {"approved_in_period": "0"})
    assert record.amount_fen == 5000
    reward_records.approve(session, record, people.approver.user, record.version)
    session.commit()
    anonymous = client.post("/followup/claim", data={
        "sealing": "noscript", "receipt": receipt, "reward": record.id, "method": "cash"})
    assert anonymous.status_code == 400
    named = client.post("/followup/claim", data={
        "sealing": "noscript", "receipt": receipt, "reward": record.id, "method": "cash", "name": "张三",
        "contact": "138 0000 0000"})
    assert named.status_code == 200
    session.refresh(record)
    assert open_claim(session, record, people.finance.private_key,
                      people.finance.xwing_seed)["name"] == "张三"


def test_duplicate_is_not_first_valid(client: TestClient, session: Session, people: People) -> None:
    first, _ = verified_case(client, session, people)
    second, _ = verified_case(client, session, people)
    first.created_at -= dt.timedelta(days=1)  # intake coarsens times: make the order plain
    session.commit()
    workflow.perform(session, people.world.settings, second, people.reviewer.user,
                     "link_duplicate", version=second.version,
                     params={"duplicate_of": first.id})
    session.commit()
    assert not second.first_valid
    _, calc = reward_records.preview(session, second, people.reviewer.user,
                                     policy_row(session).id, {"fine": "100000"})
    assert calc.inputs.first_valid is False and calc.amount_fen == 0


# ---------------------------------------------------------------------------- policies


def test_policy_upload_check_preview_activate(client: TestClient, session: Session,
                                              people: People, settings: Settings) -> None:
    csrf = sign_in(client, session, settings, people.admin.user)
    page = client.get("/console/reward-policies")
    assert page.status_code == 200 and "national-2018" in page.text
    bad = client.post("/console/reward-policies", headers={"Accept-Language": "en"}, data={
        "csrf_token": csrf}, files={"file": ("p.toml", b'id = "x"\nversion = 1\n'
                                             b'[[rules]]\nkind = "lottery"\n', "text/plain")})
    assert bad.status_code == 400 and "line" in bad.text
    policy = (
        'id = "shandong-2024"\nversion = 1\ntitle_zh = "山东省举报奖励"\n'
        'title_en = "Shandong rewards"\nsource = "test"\neffective = 2024-01-01\n'
        'currency = "CNY"\nclaim_window_days = 30\n\n[[rules]]\nkind = "first_valid_only"\n\n'
        '[[rules]]\nkind = "percentage_of_fine"\ncase_types = ["hazard"]\nrate = 15\n'
        'floor = 3000\nat_least_floor = true\ncap = 300000\n\n'
        '[[rules]]\nkind = "insider_uplift"\nrate = 20\ncap = 500000\n')
    stored = client.post("/console/reward-policies", data={"csrf_token": csrf},
                         files={"file": ("sd.toml", policy.encode(), "text/plain")},
                         follow_redirects=False)
    assert stored.status_code == 303
    row = session.scalar(select(RewardPolicyVersion).where(
        RewardPolicyVersion.policy_id == "shandong-2024"))
    assert row is not None and not row.active and row.text == policy
    duplicate = client.post("/console/reward-policies", data={"csrf_token": csrf},
                            files={"file": ("sd.toml", policy.encode(), "text/plain")})
    assert duplicate.status_code == 400
    preview = client.post(f"/console/reward-policies/{row.id}/preview", data={
        "csrf_token": csrf, "case_type": "hazard", "fine": "1000000", "insider": "1"})
    assert preview.status_code == 200 and "180 000.00" in preview.text
    assert client.post(f"/console/reward-policies/{row.id}/activate",
                       data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    session.refresh(row)
    assert row.active
    case, _ = verified_case(client, session, people)
    record = reward_records.propose(session, case, people.reviewer.user, row.id,
                                    {"fine": "1000000", "insider": "1"})
    assert record.amount_fen == 18_000_000 and record.policy_id == "shandong-2024"
    assert {"reward.policy_upload", "reward.policy_preview", "reward.policy_activate"} <= set(
        actions(session))
    assert "reward.policy_upload" in actions(session, "refused")


# ---------------------------------------------------------------------------- ledger, audit


def test_ledger_scope_filters_and_audit_view(client: TestClient, session: Session,
                                             people: People, settings: Settings) -> None:
    case, _, record = approved_reward(client, session, people)
    stranger = make_reviewer(session, "stranger", None, roles="reviewer approver")
    session.commit()
    csrf = sign_in(client, session, settings, stranger.user)
    assert record.id not in client.get("/console/rewards").text
    assert client.get(f"/console/rewards/{record.id}").status_code == 404
    assert "reward.open" in actions(session, "refused")
    sign_in(client, session, settings, people.auditor.user)
    ledger = client.get("/console/rewards")
    assert f'data-reward-id="{record.id}"' in ledger.text and 'id="export-csv"' in ledger.text
    for query, shown in (("status=approved", True), ("status=paid", False),
                         ("policy=national-2018", True), ("policy=enterprise-internal", False),
                         ("from=2000-01-01&to=2000-12-31", False),
                         (f"channel={people.world.channel.id}", True)):
        page = client.get(f"/console/rewards?{query}")
        assert (record.id in page.text) is shown, query
    assert client.get("/console/rewards?from=yesterday").status_code == 400
    trail = client.get("/console/audit?verify=1&action=reward.")
    assert 'id="chain-ok"' in trail.text and "reward.approve" in trail.text
    assert {"reward.ledger_viewed", "audit.viewed"} <= set(actions(session))
    del csrf


def test_ledger_pages_follow_the_cursor(client: TestClient, session: Session,
                                       people: People) -> None:
    made = [approved_reward(client, session, people)[2].id for _ in range(3)]
    seen: list[str] = []
    filters = reward_ledger.LedgerFilters()
    while True:
        rows, cursor = reward_ledger.ledger_page(session, people.auditor.user, filters, limit=2)
        seen += [row.id for row in rows]
        if cursor is None:
            break
        filters = reward_ledger.LedgerFilters.parse({"after": cursor})
    assert sorted(seen) == sorted(made) and len(seen) == 3


@pytest.mark.sqlite_only
def test_audit_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    database = Database.from_url(settings.database)
    try:
        with database.session() as session:
            make_world(session, settings, reviewers=1)
            user = session.scalar(select(User))
            for i in range(5):
                audit.append(session, "test.action", actor=user, target=str(i))
        assert cli.main(["audit", "verify"], settings) == 0
        out = capsys.readouterr().out
        assert "5 entries" in out and "head" in out
        with database.session() as session:
            session.execute(text("UPDATE audit_log SET target = 'changed' WHERE id = 3"))
        assert cli.main(["audit", "verify"], settings) == 1
        err = capsys.readouterr().err
        assert "entry 3" in err and "changed after it was written" in err
    finally:
        database.dispose()


def test_claim_event_kinds_are_translated() -> None:
    from service.domain import feed
    from service.platform.i18n import Catalogs

    zh = Catalogs.load().gettext("zh_CN")
    for kind in ("reward_offered", "reward_claimed", "reward_paid"):
        assert feed.event_text(kind, {"amount": "1.00"}, zh) != feed.EVENTS[kind]


def test_event_rows_are_reporter_safe(client: TestClient, session: Session,
                                      people: People) -> None:
    case, _, record = approved_reward(client, session, people)
    events = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                          CaseEvent.kind.like("reward%"))))
    visible = {e.kind: e.data for e in events if e.visible_to_reporter}
    assert set(visible) == {"reward_offered"}
    assert set(visible["reward_offered"]) == {"amount", "amount_fen", "reward_id"}
    assert record.id == visible["reward_offered"]["reward_id"]


def test_a_finance_officer_appointed_later_gets_the_claims_through_recovery(
        client: TestClient, session: Session, people: People) -> None:
    from service.domain import recover
    from service.platform.errors import InvalidInput

    case, receipt, record = approved_reward(client, session, people)
    done = client.post("/followup/claim", data={
        "sealing": "noscript", "receipt": receipt, "reward": record.id, "method": "bank",
        "account": "6222 0200 1234 5678", "name": "", "contact": "", "note": ""})
    assert done.status_code == 200
    latecomer = make_reviewer(session, "finance2", None, roles="finance")
    hybrid = make_reviewer(session, "finance3", None, roles="finance", xwing=True)
    session.commit()
    session.refresh(record)
    with pytest.raises(crypto.OpenError):
        open_claim(session, record, latecomer.private_key)
    with pytest.raises(InvalidInput):  # a reviewer is not a finance officer
        recover.recover_claims(session, people.reviewer.user.username,
                               people.world.recovery_private, people.world.recovery_xwing_seed)
    # The recovery slot is v2: the X25519 part alone cannot open it, and nothing changes.
    with pytest.raises(recover.SecretMissing):
        recover.recover_claims(session, "finance2", people.world.recovery_private)
    assert slot_suites(session, record) == {"finance1": crypto.SUITE_V2,
                                            "recovery": crypto.SUITE_V2}
    granted = recover.recover_claims(session, "finance2", None, people.world.recovery_xwing_seed)
    assert (granted.cases, granted.granted, granted.skipped) == (1, 1, 0)
    assert open_claim(session, record, latecomer.private_key)["account"] == "6222 0200 1234 5678"
    again = recover.recover_claims(session, "finance2", people.world.recovery_private,
                                   people.world.recovery_xwing_seed)
    assert (again.granted, again.skipped) == (0, 1)
    # An officer with an X-Wing key gets a v2 slot, one without a v1 slot (PROTOCOL 17.7).
    recover.recover_claims(session, "finance3", None, people.world.recovery_xwing_seed)
    assert open_claim(session, record, hybrid.private_key, hybrid.xwing_seed)["method"] == "bank"
    assert slot_suites(session, record) == {"finance1": crypto.SUITE_V2,
                                            "finance2": crypto.SUITE,
                                            "finance3": crypto.SUITE_V2,
                                            "recovery": crypto.SUITE_V2}
    assert "reward.claims_recover" in actions(session)


def test_recovery_opens_v1_claims_of_before_with_the_first_part(
        client: TestClient, session: Session, people: People) -> None:
    """A claim from a page without the hybrid (v1 everywhere, no suite named) keeps opening
    with the X25519 part of the recovery secret; the X-Wing part alone is not enough."""
    from service.domain import recover

    case, receipt, record = approved_reward(client, session, people)
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    reward = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"][0]
    _, body = browser_claim(reward, keys.lookup_secret, hybrid=False)
    assert client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body,
                       headers=auth).status_code == 201
    session.refresh(record)
    assert slot_suites(session, record) == {"finance1": crypto.SUITE, "recovery": crypto.SUITE}
    assert open_claim(session, record, people.finance.private_key,
                      people.finance.xwing_seed)["account"] == "worker@example.cn"
    # Marked on the reward page as a case is: a future quantum computer could open it.
    sign_in(client, session, people.world.settings, people.finance.user)
    assert 'id="claim-classical"' in client.get(f"/console/rewards/{record.id}").text
    make_reviewer(session, "finance2", None, roles="finance", xwing=True)
    session.commit()
    with pytest.raises(recover.SecretMissing):
        recover.recover_claims(session, "finance2", None, people.world.recovery_xwing_seed)
    granted = recover.recover_claims(session, "finance2", people.world.recovery_private)
    assert granted.granted == 1
    assert slot_suites(session, record)["finance2"] == crypto.SUITE_V2


def test_claim_slots_must_match_the_suite_of_their_key(
        client: TestClient, session: Session, people: People) -> None:
    """As at intake: v2 under an X-Wing key id, v1 under an X25519 one; each slot of its
    suite's length; an unknown suite refused. Nothing is stored by a refused claim."""
    case, receipt, record = approved_reward(client, session, people)
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    reward = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"][0]

    def post(body: dict[str, Any]) -> Any:
        return client.post(f"/api/v1/followup/rewards/{record.id}/claim", json=body,
                           headers=auth)

    _, body = browser_claim(reward, keys.lookup_secret)
    finance_xwing = people.finance.user.xwing_key_id
    first = next(i for i, s in enumerate(body["slots"]) if s["key_id"] == finance_xwing)
    variants = []
    # A v2 slot under the officer's X25519 key id: it opens for no one.
    variants.append({**body["slots"][first], "key_id": people.finance.user.key_id})
    # A v1 label on a v2 slot, and a v2 label on a v1 slot (lengths do not match the suite).
    variants.append({**body["slots"][first], "suite": crypto.SUITE})
    v1 = crypto.seal_claim_key(crypto.new_key(), people.finance.user.public_key,
                               bytes.fromhex(record.id))
    variants.append({"suite": crypto.SUITE_V2, "key_id": finance_xwing,
                     "slot": crypto.b64u_encode(v1)})
    variants.append({**body["slots"][first], "suite": "mlkem768x25519-hkdf-sha256-aes128gcm"})
    variants.append({**body["slots"][first], "suite": 2})
    for bad in variants:
        slots = list(body["slots"])
        slots[first] = bad
        response = post({**body, "slots": slots})
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid"
    # Two slots for one officer (one under each key id): the officers changed, says the server.
    twice = [*body["slots"], {"suite": crypto.SUITE, "key_id": people.finance.user.key_id,
                              "slot": crypto.b64u_encode(v1)}]
    assert post({**body, "slots": twice}).status_code == 409
    # A slot more, to a key no finance officer holds: refused too, not dropped in silence.
    stranger = [*body["slots"], {"suite": crypto.SUITE, "key_id": crypto.new_id().hex(),
                                 "slot": crypto.b64u_encode(v1)}]
    assert post({**body, "slots": stranger}).status_code == 409
    session.refresh(record)
    assert record.status == "approved" and slot_suites(session, record) == {}
    # A v1 slot for an officer who has an X-Wing key is accepted (a page from before v2).
    mixed = list(body["slots"])
    mixed[first] = {"suite": crypto.SUITE, "key_id": people.finance.user.key_id,
                    "slot": crypto.b64u_encode(v1)}
    assert post({**body, "slots": mixed}).status_code == 201
    session.refresh(record)
    assert slot_suites(session, record) == {"finance1": crypto.SUITE,
                                            "recovery": crypto.SUITE_V2}


def test_console_hands_out_the_slot_of_each_suite(
        client: TestClient, session: Session, people: People, settings: Settings) -> None:
    case, receipt, record = approved_reward(client, session, people)
    done = client.post("/followup/claim", data={
        "sealing": "noscript", "receipt": receipt, "reward": record.id, "method": "cash",
        "account": "", "name": "", "contact": "", "note": ""})
    assert done.status_code == 200
    csrf = sign_in(client, session, settings, people.finance.user)
    got = client.post(f"/console/rewards/{record.id}/claim", json={},
                      headers={"X-CSRF-Token": csrf})
    assert got.status_code == 200, got.text
    sealed = got.json()
    assert sealed["slot"] == "" and len(crypto.b64u_decode(sealed["slot_v2"])) == 1168
    assert 'id="claim-classical"' not in client.get(f"/console/rewards/{record.id}").text
    key = crypto.open_claim_key_v2(crypto.b64u_decode(sealed["slot_v2"]),
                                   people.finance.xwing_seed or b"", bytes.fromhex(record.id))
    claim = crypto.open_item(key, bytes.fromhex(record.id), bytes.fromhex(sealed["item_id"]),
                             "claim", crypto.b64u_decode(sealed["blob"]))
    assert claim["method"] == "cash"


# ---------------------------------------------------------------------------- policy shapes


FLAG_POLICY = (
    'id = "fix-bonus"\nversion = 1\ntitle_zh = "提出整改方案加奖"\ntitle_en = "Fix bonus"\n'
    'source = "test"\neffective = 2024-01-01\ncurrency = "CNY"\n\n'
    '[flags.proposed_fix]\ntitle_zh = "举报人同时提出了整改方案"\n'
    'title_en = "The reporter also proposed the fix"\n\n'
    '[[rules]]\nkind = "first_valid_only"\n\n'
    '[[rules]]\nkind = "percentage_of_fine"\nrate = 15\ncap = 300000\ninsider_cap = 500000\n\n'
    '[[rules]]\nkind = "flag_bonus"\nflag = "proposed_fix"\namount = 1000\n')


def test_reward_form_has_a_checkbox_per_declared_flag(client: TestClient, session: Session,
                                                      people: People,
                                                      settings: Settings) -> None:
    csrf = sign_in(client, session, settings, people.admin.user)
    # Saved by a Windows editor: a UTF-8 byte-order mark first. It loads.
    stored = client.post("/console/reward-policies", data={"csrf_token": csrf}, files={
        "file": ("fix.toml", b"\xef\xbb\xbf" + FLAG_POLICY.encode(), "text/plain")},
        follow_redirects=False)
    assert stored.status_code == 303, stored.text
    row = policy_row(session, "fix-bonus")
    assert client.post(f"/console/reward-policies/{row.id}/activate",
                       data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    case, _ = verified_case(client, session, people)
    csrf = sign_in(client, session, settings, people.reviewer.user)
    page = client.get(f"/console/cases/{case.id}/reward")
    assert 'name="flag_proposed_fix"' in page.text and "举报人同时提出了整改方案" in page.text
    assert "由 fix-bonus v1 声明" in page.text
    english = client.get(f"/console/cases/{case.id}/reward", headers={"Accept-Language": "en"})
    assert "The reporter also proposed the fix" in english.text
    # 15 % of 100 000 yuan = 15 000, plus 1 000 for the fix: 16 000 yuan.
    preview = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(row.id), "fine": "100000", "flag_proposed_fix": "1",
        "action": "preview"})
    assert preview.status_code == 200 and "16 000.00" in preview.text
    assert 'name="flag_proposed_fix" value="1" checked' in preview.text
    # A ticked flag the chosen policy does not declare is refused, not ignored.
    national = policy_row(session)
    wrong = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(national.id), "fine": "100000",
        "flag_proposed_fix": "1", "action": "preview"})
    assert wrong.status_code == 400 and "没有声明附加条件" in wrong.text
    proposed = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(row.id), "fine": "100000", "flag_proposed_fix": "1",
        "action": "propose"}, follow_redirects=False)
    assert proposed.status_code == 303
    record = session.scalar(select(RewardRecord).where(RewardRecord.case_id == case.id))
    assert record is not None and record.amount_fen == 1_600_000
    calc = RewardCalculation.from_json(record.calculation)
    assert calc.schema == "chuishao.reward-calculation/2"
    assert calc.inputs.flags == ("proposed_fix",)
    assert recompute(calc, reward_policies.parsed(row)) == []
    # The approver sees no over-cap warning: the policy has no period cap.
    sign_in(client, session, settings, people.approver.user)
    assert 'id="cap-excess-1"' not in client.get(f"/console/rewards/{record.id}").text


def test_approver_sees_a_proposal_over_the_period_cap(client: TestClient, session: Session,
                                                      people: People,
                                                      settings: Settings) -> None:
    """The flag is drawn from the record and the policy: a proposal whose recorded
    approvals already exceed the monthly cap shows the excess on the approver's page."""
    case, _ = verified_case(client, session, people, grade="general")
    row = policy_row(session, "enterprise-internal")
    record = reward_records.propose(session, case, people.reviewer.user, row.id, {})
    session.commit()
    # 50 yuan (general hazard, tier 1) against a cap of 1 000 a month, nothing approved yet.
    assert record.amount_fen == 5_000
    assert reward_records.period_cap_excess(session, record) == []
    sign_in(client, session, settings, people.approver.user)
    page = client.get(f"/console/rewards/{record.id}")
    assert page.status_code == 200 and 'id="cap-excess-1"' not in page.text
    # The same case type under the policy, with 990 yuan already approved when it was
    # calculated: 990 + 50 = 1 040, 40 yuan over.
    calc = reward_records.calculation_of(record)
    over = reward_policies.excess_of(
        calc, reward_policies.parsed(row), 99_000)
    assert [(e.period, e.cap_fen, e.approved_fen, e.over_fen) for e in over] == [
        ("month", 100_000, 99_000, 4_000)]


def test_policy_preview_reads_the_period_field_in_yuan_and_offers_flags(
        client: TestClient, session: Session, people: People, settings: Settings) -> None:
    csrf = sign_in(client, session, settings, people.admin.user)
    internal = policy_row(session, "enterprise-internal")
    # A general hazard pays 50 yuan; 980 of the 1 000 yuan a month are approved already, so
    # 20 yuan are left. Read as fen (9.80 yuan), the preview showed 50.
    preview = client.post(f"/console/reward-policies/{internal.id}/preview", data={
        "csrf_token": csrf, "case_type": "hazard", "grade": "general",
        "approved_in_period": "980"})
    assert preview.status_code == 200
    assert "试算结果：20.00 元" in preview.text
    bad = client.post(f"/console/reward-policies/{internal.id}/preview", data={
        "csrf_token": csrf, "case_type": "hazard", "grade": "general",
        "approved_in_period": "9,80"})
    assert bad.status_code == 400 and "9,80" in bad.text
    stored = client.post("/console/reward-policies", data={"csrf_token": csrf}, files={
        "file": ("fix.toml", FLAG_POLICY.encode(), "text/plain")}, follow_redirects=False)
    assert stored.status_code == 303
    row = policy_row(session, "fix-bonus")
    page = client.get("/console/reward-policies")
    assert f'id="form-preview-{row.id}"' in page.text and 'name="flag_proposed_fix"' in page.text
    bonus = client.post(f"/console/reward-policies/{row.id}/preview", data={
        "csrf_token": csrf, "case_type": "hazard", "fine": "100000",
        "flag_proposed_fix": "1"})
    assert bonus.status_code == 200 and "16 000.00" in bonus.text


def test_the_explanation_is_in_the_page_language_only(client: TestClient, session: Session,
                                                      people: People,
                                                      settings: Settings) -> None:
    _, _, record = approved_reward(client, session, people)
    sign_in(client, session, settings, people.auditor.user)
    zh = client.get(f"/console/rewards/{record.id}").text
    en = client.get(f"/console/rewards/{record.id}", headers={"Accept-Language": "en"}).text

    def explanation(page: str) -> str:
        start = page.index('id="explanation">')
        return page[start:page.index("</pre>", start)]

    assert "奖励金额" in explanation(zh) and "Reward:" not in explanation(zh)
    assert "Reward:" in explanation(en) and "奖励金额" not in explanation(en)
    assert not re.search(r"[\u4e00-\u9fff]", explanation(en).replace(
        people.world.channel.name_zh, ""))
