"""A reward claimed through the reporter's follow-up page in real Chromium, and the claim
opened by a finance officer's browser.

The real app runs under uvicorn on a temporary SQLite database. A report comes in through the
public API; Python verifies the case and approves a reward (proposed and approved by two
different people). The reporter opens the follow-up page with the receipt, sees the amount,
claims with a payout method: the claim is sealed in the page to the finance officers and the
recovery key, and only the code's hash is sent. Python then checks that only a finance key
opens the claim and that the shown code is the one the receipt derives. The claim-code
vectors are checked in the browser module as well.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.datastructures import Secret

import crypto
from reviewer import auth
from service.client import Client, urllib_transport
from service.domain import reward_claims, reward_policies, reward_records, workflow
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, HazardCriterion, User
from service.domain.models.rewards import RewardClaimSlot, RewardPolicyVersion, RewardRecord
from service.platform.db import Database
from service.platform.settings import Settings
from tests.browser.live import running_server
from tests.factories import Reviewer, make_reviewer

pytestmark = pytest.mark.browser

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "protocol-v1.json")
                     .read_text(encoding="utf-8"))
REPORT = {"v": 1, "unit": "某机械厂", "location": "三号车间", "category": "hazard",
          "description": "液氨储罐阀门泄漏，已经两周没有修理。", "seen_at": "", "insider": "yes",
          "language": "zh_CN"}


@dataclass
class Live:
    base_url: str
    settings: Settings
    database: Database
    receipt: str
    reward_id: str
    reviewer: Reviewer
    finance: Reviewer
    recovery_private: bytes


@contextlib.contextmanager
def live_server(directory: Path) -> Iterator[Live]:
    with running_server(directory, reviewers=1, pow_difficulty=4,
                        secret_key=Secret("reward-claim-browser-test")) as server:
        base, settings, database, world = (server.base_url, server.settings, server.database,
                                           server.world)
        with database.write_session() as session:
            approver = make_reviewer(session, "approver", world.channel, roles="approver")
            finance = make_reviewer(session, "finance", None, roles="finance")
        receipt = Client(urllib_transport(base), language="zh-CN").submit("acme", REPORT)
        with database.write_session() as session:
            keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
            case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
            reviewer = session.get(User, world.reviewers[0].user.id)
            criterion = session.scalar(select(HazardCriterion.id).limit(1))
            for action, params in (("accept", {}), ("grade", {"grade": "major",
                                                              "criterion_id": criterion}),
                                   ("start_verification", {}), ("verify", {"result": "true"})):
                workflow.perform(session, settings, case, reviewer, action,
                                 version=case.version, params=params)
            reward_policies.ensure_shipped(session)
            row = session.scalar(select(RewardPolicyVersion).where(
                RewardPolicyVersion.policy_id == "national-2018"))
            record = reward_records.propose(session, case, reviewer, row.id, {"fine": "200000"})
            reward_records.approve(session, record, session.get(User, approver.user.id),
                                   record.version)
            reward_id = record.id
        yield Live(base, settings, database, receipt, reward_id, world.reviewers[0], finance,
                   world.recovery_private)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with live_server(tmp_path) as server:
        yield server


class Watched:
    """A browser context that records every request and every page error."""

    def __init__(self, chromium: Any, live: Live) -> None:
        self.live = live
        self.context = chromium.new_context(base_url=live.base_url, locale="zh-CN")
        self.requests: list[str] = []
        self.bodies: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", self._request)

    def _request(self, request: Any) -> None:
        self.requests.append(request.url)
        if request.post_data:
            self.bodies.append(request.post_data)

    def page(self) -> Any:
        page = self.context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text)
                if m.type == "error" and "favicon" not in m.location.get("url", "") else None)
        return page

    def close(self) -> None:
        self.context.close()
        elsewhere = [url for url in self.requests if not url.startswith(self.live.base_url + "/")]
        assert not elsewhere, f"requests to other origins: {elsewhere}"
        assert not self.errors, f"errors in the page: {self.errors}"


STORE_KEY = """
async ([d, x, keyIdHex]) => {
  const keys = await import('/static/js/console/keys.js');
  const key = await crypto.subtle.importKey(
    'jwk', { kty: 'OKP', crv: 'X25519', d, x, ext: false }, { name: 'X25519' }, false,
    ['deriveBits']);
  await keys.storePrivateKey(key, keyIdHex);
  return (await keys.getPrivateKey()).keyId === keyIdHex;
}
"""


def test_reporter_claims_in_the_page_and_only_finance_opens_it(chromium: Any,
                                                                live: Live) -> None:
    reporter = Watched(chromium, live)
    try:
        page = reporter.page()
        page.goto("/followup")
        page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
        page.fill("#f-receipt", live.receipt)
        page.click("#followup-form button[type=submit]")
        box = page.locator(f'#rewards .reward[data-reward-id="{live.reward_id}"]')
        box.locator(".reward-amount").filter(has_text="30 000.00").wait_for()
        assert "30 000.00" in page.locator("#events").inner_text()
        short = live.reward_id[:8]
        page.select_option(f"#claim-method-{short}", "bank")
        page.fill(f"#claim-account-{short}", "6222 0200 1234 5678")
        page.fill(f"#claim-note-{short}", "请转到工资卡")
        page.click(f"#claim-form-{short} button[type=submit]")
        page.wait_for_selector("#claim-code")
        shown = page.locator("#claim-code").inner_text().strip()
        # Opened again later, the page shows the same code, derived from the receipt.
        page.reload()
        page.wait_for_selector("#followup-form[data-enhanced='true']", state="attached")
        page.fill("#f-receipt", live.receipt)
        page.click("#followup-form button[type=submit]")
        page.wait_for_selector("#claim-code")
        assert page.locator("#claim-code").inner_text().strip() == shown
    finally:
        reporter.close()
    # The code never went to the server: only its hash did.
    code = crypto.normalize_claim_code(shown)
    assert not any(code in body or shown in body for body in reporter.bodies)
    with live.database.session() as session:
        record = session.get(RewardRecord, live.reward_id)
        keys = crypto.derive_receipt(live.receipt, get_installation(session).salt, 1000)
        assert code == crypto.derive_claim_code(keys.lookup_secret, bytes.fromhex(record.id))
        assert record.status == "claimed" and not record.claim_sealed_on_server
        assert record.claim_hash == crypto.claim_code_hash(code).hex()
        slots = {s.key_id: s for s in session.scalars(select(RewardClaimSlot).where(
            RewardClaimSlot.reward_id == record.id))}
        assert set(slots) == {live.finance.user.key_id,
                              get_installation(session).recovery_key_id}
        reward_id = bytes.fromhex(record.id)
        key = crypto.open_claim_key(slots[live.finance.user.key_id].slot,
                                    live.finance.private_key, reward_id)
        claim = crypto.open_item(key, reward_id, bytes.fromhex(record.claim_item_id), "claim",
                                 record.claim_blob)
        assert claim == {"v": 1, "method": "bank", "account": "6222 0200 1234 5678",
                         "name": "", "contact": "", "note": "请转到工资卡"}
        for slot in slots.values():  # a reviewer's key opens none of them
            with pytest.raises(crypto.OpenError):
                crypto.open_claim_key(slot.slot, live.reviewer.private_key, reward_id)
        reward_claims.check_code(record, shown)  # the finance office's check accepts it

    # The finance officer's browser opens the claim with the key from the key store.
    officer = Watched(chromium, live)
    try:
        with live.database.session() as session:
            token = auth.start_session(session, live.settings,
                                       session.get(User, live.finance.user.id))
        officer.context.add_cookies([{"name": auth.session_cookie(live.settings),
                                      "value": token, "url": live.base_url}])
        page = officer.page()
        page.goto(f"/console/rewards/{live.reward_id}")
        public = crypto.public_key(live.finance.private_key)
        assert page.evaluate(STORE_KEY, [crypto.b64u_encode(live.finance.private_key),
                                         crypto.b64u_encode(public),
                                         crypto.key_id(public).hex()]) is True
        page.click("#claim-open")
        page.locator('#claim-fields dd[data-field="account"]').filter(
            has_text="6222 0200 1234 5678").wait_for()
        html = page.request.get(f"/console/rewards/{live.reward_id}").text()
        assert "6222 0200" not in html
        # Not even sealed: the claim and the officer's slot come only from POST .../claim.
        with live.database.session() as session:
            record = session.get(RewardRecord, live.reward_id)
            assert crypto.b64u_encode(record.claim_blob) not in html
            assert all(crypto.b64u_encode(s.slot) not in html for s in session.scalars(
                select(RewardClaimSlot).where(RewardClaimSlot.reward_id == record.id)))
    finally:
        officer.close()
    with live.database.session() as session:
        looks = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "reward.claim_viewed")).all()
        assert len(looks) == 1 and looks[0].actor_id == live.finance.user.id


def test_claim_code_vectors_in_the_browser(js: Any) -> None:
    claim = VECTORS["claim"]
    result = js("""
      const v = arg;
      const code = await C.deriveClaimCode(b(v.lookup_secret), b(v.reward_id));
      const hash = u(await C.claimCodeHash(code));
      const normalized = v.inputs_that_normalize_to_it.map((t) => C.normalizeClaimCode(t));
      const invalid = v.invalid_codes.map((t) => {
        try { C.normalizeClaimCode(t); return 'accepted'; } catch (e) { return e.name; }
      });
      const slots = [];
      for (const s of v.slots) {
        const sealed = await C.sealClaimKey(b(v.claim_key), b(s.recipient_public),
          b(v.reward_id), { ephemeral: b(s.ephemeral_private) });
        const opened = await C.openClaimKey(sealed, b(s.recipient_private), b(v.reward_id));
        slots.push([u(sealed) === s.slot, u(opened) === v.claim_key]);
      }
      const negative = [];
      for (const n of v.negative) {
        negative.push(await rejects(() => C.openClaimKey(b(n.slot), b(n.private), b(n.reward_id))));
      }
      const item = await C.openItem(b(v.claim_key), v.reward_id_hex, b(v.item.item_id), 'claim',
        b(v.item.wire));
      return { code, display: C.formatClaimCode(code), hash, normalized, invalid, slots,
               negative, item };
    """, claim)
    assert result["code"] == claim["code"] and result["display"] == claim["display"]
    assert result["hash"] == claim["code_hash"]
    assert set(result["normalized"]) == {claim["code"]}
    assert set(result["invalid"]) == {"ClaimCodeError"}
    assert result["slots"] == [[True, True]] * len(claim["slots"])
    assert result["negative"] == ["open"] * len(claim["negative"])
    assert result["item"] == claim["item"]["object"]
