"""A reward claimed through the reporter's follow-up page in real Chromium, and the claim
opened by a finance officer's browser.

The real app runs under uvicorn on a temporary SQLite database. A report comes in through the
public API; Python verifies the case and approves a reward (proposed and approved by two
different people). The reporter opens the follow-up page with the receipt, sees the amount,
claims with a payout method: the claim is sealed in the page to the finance officers and the
recovery key, v2 (X-Wing) to each (the officer, an account from before v2, gained its X-Wing
pair by signing in), and only the code's hash is sent. Python then checks the stored slots'
suites, that only a finance key opens the claim and that the shown code is the one the
receipt derives; the officer's browser opens it in the console, and a browser without the
hybrid says why it cannot. The claim-code vectors are checked in the browser module as well.
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
from service.client import Client, urllib_transport
from service.domain import reward_claims, reward_policies, reward_records, workflow
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, HazardCriterion, User
from service.domain.models.rewards import RewardClaimSlot, RewardPolicyVersion, RewardRecord
from service.platform.db import Database
from service.platform.settings import Settings
from tests.browser.live import running_server
from tests.browser.test_console_hybrid import (
    NO_XWING_AT_ALL,
    PASSWORD,
    classical_reviewer,
    sign_in,
)
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
    finance_totp: bytes  # the officer signs in with PASSWORD and this TOTP secret
    recovery_private: bytes
    recovery_xwing_seed: bytes | None


def finance_keys(live: Live) -> tuple[User, bytes, bytes | None]:
    """The officer's account and its keys as only its password opens them: the X25519 key
    and the X-Wing seed its browser made at sign-in (None before)."""
    with live.database.session() as session:
        user = session.scalar(select(User).where(User.username == "finance"))
        assert user is not None
        session.expunge(user)
    kek = crypto.derive_password(PASSWORD, user.user_salt, live.settings.password_iterations).kek
    private = crypto.unwrap_private_key(kek, user.wrapped_private_key, bytes.fromhex(user.key_id))
    seed = None
    if user.wrapped_xwing_seed is not None and user.xwing_key_id is not None:
        seed = crypto.unwrap_xwing_seed(kek, user.wrapped_xwing_seed,
                                        bytes.fromhex(user.xwing_key_id))
    return user, private, seed


@contextlib.contextmanager
def live_server(directory: Path) -> Iterator[Live]:
    with running_server(directory, reviewers=1, pow_difficulty=4,
                        secret_key=Secret("reward-claim-browser-test")) as server:
        base, settings, database, world = (server.base_url, server.settings, server.database,
                                           server.world)
        # An account from before v2 (X25519 only): its X-Wing pair comes at sign-in.
        finance_totp = classical_reviewer(server, "finance", roles="finance")
        with database.write_session() as session:
            approver = make_reviewer(session, "approver", world.channel, roles="approver")
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
        yield Live(base, settings, database, receipt, reward_id, world.reviewers[0], finance_totp,
                   world.recovery_private, world.recovery_xwing_seed)


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


def test_reporter_claims_in_the_page_and_only_finance_opens_it(chromium: Any,
                                                                live: Live) -> None:
    # The finance officer signs in in a browser with the hybrid: the account gains its X-Wing
    # pair there, as a reviewer's does (PROTOCOL 17.5), so the claim reaches it v2.
    officer = Watched(chromium, live)
    reporter = Watched(chromium, live)
    try:
        console = officer.page()
        sign_in(console, "finance", live.finance_totp)
        user, finance_private, finance_seed = finance_keys(live)
        assert user.xwing_key_id is not None and finance_seed is not None
        with live.database.session() as session:
            assert session.scalar(select(AuditEntry.actor).where(
                AuditEntry.action == "account.add_pq")) == "finance"

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
        installation = get_installation(session)
        keys = crypto.derive_receipt(live.receipt, installation.salt, 1000)
        assert code == crypto.derive_claim_code(keys.lookup_secret, bytes.fromhex(record.id))
        assert record.status == "claimed" and not record.claim_sealed_on_server
        assert record.claim_hash == crypto.claim_code_hash(code).hex()
        slots = {s.key_id: s for s in session.scalars(select(RewardClaimSlot).where(
            RewardClaimSlot.reward_id == record.id))}
        # v2 to both X-Wing keys, under their X-Wing key ids; no v1 slot beside them.
        assert {(s.holder, s.suite, s.key_id, len(s.slot)) for s in slots.values()} == {
            ("finance", crypto.SUITE_V2, user.xwing_key_id, crypto.SLOT_SIZE_V2),
            ("recovery", crypto.SUITE_V2, installation.recovery_xwing_key_id,
             crypto.SLOT_SIZE_V2)}
        reward_id = bytes.fromhex(record.id)
        key = crypto.open_claim_slot(crypto.SUITE_V2, slots[user.xwing_key_id].slot,
                                     finance_seed, reward_id)
        assert live.recovery_xwing_seed is not None
        assert crypto.open_claim_slot(
            crypto.SUITE_V2, slots[installation.recovery_xwing_key_id].slot,
            live.recovery_xwing_seed, reward_id) == key
        claim = crypto.open_item(key, reward_id, bytes.fromhex(record.claim_item_id), "claim",
                                 record.claim_blob)
        assert claim == {"v": 1, "method": "bank", "account": "6222 0200 1234 5678",
                         "name": "", "contact": "", "note": "请转到工资卡"}
        for slot in slots.values():  # no other key opens them, the officer's X25519 one too
            for private in (live.reviewer.private_key, finance_private):
                with pytest.raises(crypto.OpenError):
                    crypto.open_claim_slot(crypto.SUITE, slot.slot, private, reward_id)
        reward_claims.check_code(record, shown)  # the finance office's check accepts it
        served = [crypto.b64u_encode(record.claim_blob)] + [
            crypto.b64u_encode(s.slot) for s in slots.values()]

    # The officer's browser opens the claim with the X-Wing key from its key store.
    try:
        console.goto(f"/console/rewards/{live.reward_id}")
        console.click("#claim-open")
        console.locator('#claim-fields dd[data-field="account"]').filter(
            has_text="6222 0200 1234 5678").wait_for()
        html = console.request.get(f"/console/rewards/{live.reward_id}").text()
        assert "6222 0200" not in html
        # Not even sealed: the claim and the officer's slot come only from POST .../claim.
        assert not any(text in html for text in served)
    finally:
        officer.close()
    # The same officer in another browser, without the hybrid: told why, nothing shown.
    other = Watched(chromium, live)
    try:
        elsewhere = other.page()
        elsewhere.add_init_script(NO_XWING_AT_ALL)
        sign_in(elsewhere, "finance", live.finance_totp, step=1)
        elsewhere.goto(f"/console/rewards/{live.reward_id}")
        elsewhere.click("#claim-open")
        elsewhere.wait_for_selector("#claim-error:not([hidden])")
        assert "抗量子" in elsewhere.inner_text("#claim-error")
        assert elsewhere.locator("#claim-fields").is_hidden()
    finally:
        other.close()
    with live.database.session() as session:
        looks = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "reward.claim_viewed")).all()
        assert [e.actor_id for e in looks] == [user.id, user.id]


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
