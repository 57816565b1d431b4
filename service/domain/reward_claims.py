"""Reward claims and payment: the reporter claims an approved reward, finance pays it once.

The reporter claims through the follow-up page: the browser derives a claim code from the
receipt, seals the payout details to every active finance officer (and the recovery key; v2 to
an X-Wing key, by the sealing policy of a report's slots) and
sends only the code's hash (or, without JavaScript, the server does the same and forgets both).
A finance officer opens the sealed claim, checks the code the reporter presents and records the
payment; whoever proposed or approved the reward cannot pay it. The moves are ``claim`` and
``pay`` of reward_states.RULES.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, intake, notify, sealing, serverseal
from service.domain.installation import get_installation
from service.domain.models import Case, CaseEvent, User, utcnow
from service.domain.models.rewards import RewardClaimSlot, RewardPolicyVersion, RewardRecord
from service.domain.reward_states import (
    CLAIMED_ALREADY,
    DECIDED,
    NOT_CLAIMED,
    RULES,
    advance,
    check,
    display_status,
    require,
)
from service.domain.rewards import format_yuan
from service.domain.statemachine import NotAllowedNow
from service.platform import localtime
from service.platform.errors import (
    ChuishaoError,
    Conflict,
    InvalidInput,
    Malformed,
    NotFound,
    NotSetUp,
)
from service.platform.i18n import N_
from service.platform.settings import Settings

METHODS = {
    "bank": N_("Bank transfer"),
    "alipay": N_("Alipay"),
    "wechat": N_("WeChat Pay"),
    "cash": N_("Cash at the finance office"),
}
CLAIM_FIELDS = {"account": 100, "name": 100, "contact": 100, "note": 500}


class OwnPayment(ChuishaoError):
    status = 403
    code = "own_payment"
    message = N_("The person who proposed or approved a reward cannot also pay it.")


class AlreadyClaimed(ChuishaoError):
    status = 409
    code = "already_claimed"
    message = CLAIMED_ALREADY


class ClaimWindowClosed(ChuishaoError):
    status = 410
    code = "claim_window_closed"
    message = N_("The time to claim this reward ended on {date}. It can no longer be claimed.")


class CodeMismatch(ChuishaoError):
    status = 403
    code = "claim_code_mismatch"
    message = N_("This claim code does not belong to this reward. Nothing was paid.")


class CodeUsed(ChuishaoError):
    status = 409
    code = "claim_code_used"
    message = N_("This claim code was used already: the reward was paid on {date} "
                 "(reference {reference}). It cannot be used again.")


class ClaimRecipientsChanged(Conflict):
    code = "claim_keys_changed"
    message = N_("The finance officers changed in the meantime. Reload the page and claim again.")


def finance_recipients(session: Session) -> list[intake.Recipient]:
    """Who the claim key is sealed to: every active finance officer, and the recovery key,
    each with its X-Wing key where it has one (then a v2 slot, PROTOCOL 15)."""
    installation = get_installation(session)
    if installation is None:
        raise NotSetUp()
    users = session.scalars(select(User).where(User.active.is_(True)).order_by(User.id))
    found = [intake.recipient_of(u, "finance") for u in users if u.has_role("finance")]
    found.append(intake.recovery_recipient(installation))
    return found


def reporter_rewards(session: Session, case: Case, now: dt.datetime | None = None,
                     ) -> list[dict[str, Any]]:
    """What the reporter's page shows and needs to claim: amounts, deadlines, the keys."""
    now = now or utcnow()
    records = list(session.scalars(select(RewardRecord).where(
        RewardRecord.case_id == case.id,
        RewardRecord.status.in_(DECIDED))
        .order_by(RewardRecord.decided_at, RewardRecord.id)))
    if not records:
        return []
    keys = [intake.recipient_info(r) for r in finance_recipients(session)]
    out = []
    for record in records:
        row = session.get(RewardPolicyVersion, record.policy_row_id)
        status = display_status(record, now)
        out.append({
            "id": record.id, "amount_fen": record.amount_fen,
            "amount": format_yuan(record.amount_fen), "status": status,
            "claim_due": localtime.local(record.claim_due_at).date().isoformat()
            if record.claim_due_at else None,
            "identity_required": bool(row.identity_required) if row else False,
            "claimable": claimable(status),
            "recipients": keys if claimable(status) else [],
        })
    return out


def claimable(status: str) -> bool:
    """``status`` as display_status gives it: a lapsed record is approved but not claimable."""
    return status in RULES["claim"].sources


def _reporter_record(session: Session, case: Case, reward_id: Any) -> RewardRecord:
    record = session.get(RewardRecord, reward_id) if isinstance(reward_id, str) \
        and intake.ID.match(reward_id) else None
    if record is None or record.case_id != case.id or record.status not in DECIDED:
        raise NotFound()
    return record


def _check_claimable(record: RewardRecord, now: dt.datetime) -> int:
    """The version to claim against, or why not: claimed already, or too late."""
    # The reporter sends no version: the claim is of the record as it is now.
    expected = check(record, "claim", None, record.version)
    if record.claim_due_at is not None and record.claim_due_at < now:
        raise ClaimWindowClosed(date=localtime.local(record.claim_due_at).date().isoformat())
    return expected


def _parse_claim_slots(raw: Any, wanted: list[intake.Recipient],
                       ) -> list[tuple[intake.SlotSpec, intake.Recipient]]:
    """One slot per recipient, under either of its key ids with that key's suite, as at
    intake (PROTOCOL 17.7): v2 to an X-Wing key, v1 to an X25519 one."""
    if not isinstance(raw, list) or not 0 < len(raw) <= 200:
        raise Malformed("slots")
    specs = []
    for entry in raw:
        # A claim from before v2 names no suite: v1.
        suite = entry.get("suite", crypto.SUITE) if isinstance(entry, dict) else None
        if not isinstance(suite, str) or suite not in intake.SLOT_SIZES:
            raise Malformed("slot")
        slot = intake.parse_b64(entry.get("slot"), "slot")
        if len(slot) != intake.SLOT_SIZES[suite]:
            raise Malformed("slot")
        specs.append(intake.SlotSpec("claim", intake.parse_id(entry.get("key_id"), "key_id"),
                                     suite, slot))
    given = [spec.key_id for spec in specs]
    if len(set(given)) != len(given):
        raise Malformed("slots")
    holders = intake.holders_of(wanted, specs)
    if None in holders or not intake.serves_each_once(wanted, holders):
        # Sealed to someone who is not (or no longer) a finance officer, or missing one.
        raise ClaimRecipientsChanged()
    return [(spec, holder) for spec, holder in zip(specs, holders, strict=True)
            if holder is not None]


def register_claim(session: Session, settings: Settings, case: Case, reward_id: Any,
                   data: Any, *, sealed_on_server: bool = False,
                   now: dt.datetime | None = None) -> RewardRecord:
    """The reporter's claim: the code's hash, the sealed claim and its key slots."""
    record = _reporter_record(session, case, reward_id)
    now = now or utcnow()
    expected = _check_claimable(record, now)
    if not isinstance(data, dict) or not set(data) <= {"claim_hash", "item", "slots"}:
        raise Malformed("claim")
    claim_hash = data.get("claim_hash")
    if not isinstance(claim_hash, str) or not intake.HASH.match(claim_hash):
        raise Malformed("claim_hash")
    item = data.get("item")
    if not isinstance(item, dict) or set(item) - {"id", "blob", "kind"} \
            or item.get("kind", "claim") != "claim":
        raise Malformed("item")
    item_id = intake.parse_id(item.get("id"), "item id")
    blob = intake.parse_b64(item.get("blob"), "item")
    intake.check_item_blob(blob)
    recipients = finance_recipients(session)
    slots = _parse_claim_slots(data.get("slots"), recipients)
    # Reporter-caused times are coarsened, like replies: they must not date a visit.
    stamp = intake.coarse_time(settings, now)
    try:
        advance(session, record, expected, status="claimed", claim_hash=claim_hash,
                claimed_at=stamp, claim_item_id=item_id, claim_blob=blob,
                claim_sealed_on_server=sealed_on_server)
    except Conflict:
        # Another claim of this record won the race: to the reporter, it is claimed.
        raise AlreadyClaimed() from None
    session.add_all([RewardClaimSlot(
        reward_id=record.id, holder=holder.holder, user_id=holder.user_id, suite=spec.suite,
        key_id=spec.key_id, slot=spec.slot, created_at=stamp) for spec, holder in slots])
    session.add(CaseEvent(case_id=case.id, kind="reward_claimed", visible_to_reporter=True,
                          created_at=stamp, data={"reward_id": record.id}))
    notify.enqueue(session, "claim_to_pay",
                   [r.user_id for r in recipients if r.user_id is not None],
                   not_before=stamp + dt.timedelta(seconds=settings.time_granularity_seconds),
                   created_at=stamp)
    # Its place in the chain would date the claim to the second: entered after its hour.
    audit.defer(session, "reward.claimed", target=record.id, bucket_start=stamp,
                granularity=settings.time_granularity_seconds,
                details={"case": case.id, "sealed_on_server": sealed_on_server,
                         "slots": len(slots)})
    session.flush()
    return record


def _claim_payload(record: RewardRecord, form: Mapping[str, Any]) -> dict[str, Any]:
    row_method = str(form.get("method") or "")
    if row_method not in METHODS:
        raise InvalidInput(N_("Choose how the reward should be paid."), code="claim_method")
    payload: dict[str, Any] = {"v": 1, "method": row_method}
    for name, limit in CLAIM_FIELDS.items():
        value = " ".join(str(form.get(name) or "").split())
        if len(value) > limit:
            raise InvalidInput(N_("A field is too long (at most {limit} characters)."),
                               limit=limit)
        payload[name] = value
    if row_method != "cash" and not payload["account"]:
        raise InvalidInput(N_("Give the account the reward should be paid to."),
                           code="claim_account")
    return payload


def claim_on_server(session: Session, settings: Settings, receipt_text: str, reward_id: Any,
                    form: Mapping[str, Any], now: dt.datetime | None = None,
                    ) -> tuple[RewardRecord, str]:
    """The no-JavaScript claim: the server derives the code from the receipt typed into the
    form, seals the claim to finance at once and forgets both. Returns (record, code).

    Asked again after claiming, it shows the same code (the reporter may have lost the page).
    """
    case, keys = serverseal.case_of_receipt(session, settings, receipt_text)
    record = _reporter_record(session, case, reward_id)
    code = crypto.derive_claim_code(keys.lookup_secret, bytes.fromhex(record.id))
    code_hash = crypto.claim_code_hash(code).hex()
    if record.claim_hash is not None:
        if hmac.compare_digest(record.claim_hash, code_hash):
            return record, code
        raise AlreadyClaimed()
    _check_claimable(record, now or utcnow())
    payload = _claim_payload(record, form)
    row = session.get(RewardPolicyVersion, record.policy_row_id)
    if row is not None and row.identity_required and not (payload["name"]
                                                          and payload["contact"]):
        raise InvalidInput(N_("This reward is paid to named reporters only: give your name "
                              "and a contact."), code="claim_identity")
    claim_key, item_id = crypto.new_key(), crypto.new_id()
    reward_bytes = bytes.fromhex(record.id)
    blob = crypto.seal_item(claim_key, reward_bytes, item_id, "claim", payload)
    slots = []
    for recipient in finance_recipients(session):
        # The server has the hybrid: v2 wherever there is an X-Wing key (PROTOCOL 15).
        suite, public = sealing.recipient_key(intake.recipient_info(recipient))
        slots.append({"suite": suite, "key_id": crypto.key_id(public).hex(),
                      "slot": crypto.b64u_encode(crypto.seal_claim_slot(
                          suite, claim_key, public, reward_bytes))})
    register_claim(session, settings, case, record.id, {
        "claim_hash": code_hash, "item": {"id": item_id.hex(), "kind": "claim",
                                          "blob": crypto.b64u_encode(blob)},
        "slots": slots}, sealed_on_server=True, now=now)
    return record, code


# ---------------------------------------------------------------------------- finance


def classical_claim(session: Session, record: RewardRecord) -> bool:
    """Some key of the claim is sealed with v1 only (an officer without an X-Wing pair, or a
    browser without the hybrid): marked as cases are (PROTOCOL 17.7)."""
    return session.scalar(select(RewardClaimSlot.id).where(
        RewardClaimSlot.reward_id == record.id, RewardClaimSlot.suite == crypto.SUITE)
        .limit(1)) is not None


def claim_slots_for(session: Session, record: RewardRecord, user: User,
                    ) -> list[RewardClaimSlot]:
    """The officer's slots for this claim, under either of its key ids (one, normally)."""
    return list(session.scalars(select(RewardClaimSlot).where(
        RewardClaimSlot.reward_id == record.id, RewardClaimSlot.user_id == user.id,
        RewardClaimSlot.key_id.in_(user.key_ids()))))


class ClaimNotSealedToYou(ChuishaoError):
    status = 403
    code = "no_claim_slot"
    message = N_("The claim was not sealed to your key (you became a finance officer after it "
                 "was made).")


def claim_for(session: Session, record: RewardRecord, actor: User) -> list[RewardClaimSlot]:
    """The claim (payout details, maybe identity) is handed out only here, never on the
    reward page, so every look is on the record in the transaction that serves it. Only an
    officer whose key it was sealed to gets it."""
    require(actor, "finance")
    if record.claim_blob is None or record.claim_item_id is None:
        raise NotFound()
    slots = claim_slots_for(session, record, actor)
    if not slots:
        raise ClaimNotSealedToYou()
    audit.append(session, "reward.claim_viewed", actor=actor, target=record.id)
    return slots


def _code_hash(code: Any) -> str:
    try:
        return crypto.claim_code_hash(str(code or "")[:100]).hex()
    except ValueError:
        raise InvalidInput(N_("A claim code is 16 letters and digits, such as "
                              "ABCD-EFGH-JKLM-NP23."), code="claim_code_format") from None


def check_code(record: RewardRecord, code: Any) -> None:
    """Constant-time comparison of the presented code's hash with the registered one."""
    presented = _code_hash(code)
    if record.claim_hash is None:
        raise NotAllowedNow(NOT_CLAIMED, code="not_claimed")
    if not hmac.compare_digest(presented.encode(), record.claim_hash.encode()):
        raise CodeMismatch()
    if record.status == "paid":
        raise CodeUsed(date=localtime.local(record.paid_at).date().isoformat()
                       if record.paid_at else "", reference=record.payment_reference)


def verify_code(session: Session, record: RewardRecord, actor: User, code: Any) -> None:
    require(actor, "finance")
    check_code(record, code)
    audit.append(session, "reward.code_verified", actor=actor, target=record.id)


def record_payment(session: Session, record: RewardRecord, actor: User, code: Any,
                   reference: Any, version: Any, now: dt.datetime | None = None) -> None:
    require(actor, "finance")
    try:
        expected = check(record, "pay", actor, version)
    except NotAllowedNow:
        # A used or foreign code says more than the state: paid on which day, or not this one.
        check_code(record, code)
        raise
    if actor.id in (record.proposed_by, record.decided_by):
        raise OwnPayment()
    check_code(record, code)
    text = " ".join(str(reference or "").split())
    if not text:
        raise InvalidInput(N_("Give the payment reference (voucher or transfer number)."),
                           code="reference_required")
    if len(text) > 100:
        raise InvalidInput(N_("A field is too long (at most {limit} characters)."), limit=100)
    now = now or utcnow()
    advance(session, record, expected, status="paid", paid_by=actor.id, paid_at=now,
            payment_reference=text)
    session.add(CaseEvent(case_id=record.case_id, kind="reward_paid", user_id=actor.id,
                          visible_to_reporter=True, created_at=now,
                          data={"reward_id": record.id}))
    audit.append(session, "reward.paid", actor=actor, target=record.id, now=now,
                 details={"case": record.case_id, "amount_fen": record.amount_fen,
                          "reference": text})
    session.flush()


