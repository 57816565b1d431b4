"""The reward record's life, in one table (on the mechanism of service/domain/statemachine.py):

    propose → proposed ─approve→ approved ─claim→ claimed ─pay→ paid
                 └─reject→ rejected      └─ past claim_due_at: lapsed (shown, not stored)

    approve, reject   an approver who is not the proposer (reject with a reason)
    claim             the reporter, through the follow-up page (known by the receipt)
    pay               a finance officer with the claim code, who neither proposed nor approved

Each rule names the state it starts from, who takes it and why it is refused elsewhere.
``check`` refuses in the mechanism's order (unknown action, stale version, role, state) before
anything changes; ``advance`` then bumps ``version`` compare-and-set, so two approvers racing
for one record cannot both win, and a claim or a payment happens once. The moves themselves
(their guards and effects) are the functions named in the table: their inputs differ too much
(a decision, a reporter's sealed claim, a finance officer's claim code) for one shape.

Proposing creates a record (reward_records.propose); it is not a move of one. The modules:
reward_policies (policies, the form's inputs), reward_records (proposal and decision),
reward_claims (claims and payment), reward_ledger (what each role sees).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from service.domain import statemachine
from service.domain.models import User, utcnow
from service.domain.models.rewards import RewardRecord
from service.domain.statemachine import Rule
from service.platform.errors import Forbidden
from service.platform.i18n import N_

STATUSES = ("proposed", "approved", "rejected", "claimed", "paid", "lapsed")
STATUS_LABELS = {
    "proposed": N_("Proposed, waiting for approval"),
    "approved": N_("Approved, waiting for the claim"),
    "rejected": N_("Rejected"),
    "claimed": N_("Claimed, waiting for payment"),
    "paid": N_("Paid"),
    "lapsed": N_("Lapsed (not claimed in time)"),
}
# A case has at most one record in these states: one reward per case.
ACTIVE = ("proposed", "approved", "claimed", "paid")
# Approved and after: what the reporter sees and what counts against per-period caps.
DECIDED = ("approved", "claimed", "paid")

NOT_PROPOSED = N_("Only a proposed reward can be approved or rejected.")
CLAIMED_ALREADY = N_("This reward was claimed already.")
NOT_CLAIMED = N_("This reward has not been claimed.")


def _rule(source: str, roles: tuple[str, ...], refusal: str, code: str) -> Rule[Any]:
    # Guards and effects are the functions of the moves (see the docstring).
    return Rule(sources=statemachine.states(source), refusal=refusal,
                guard=statemachine.nothing, effect=statemachine.nothing, roles=roles,
                refusal_code=code)


RULES: dict[str, Rule[Any]] = {
    # reward_records.approve / reject
    "approve": _rule("proposed", ("approver",), NOT_PROPOSED, "reward_not_allowed_now"),
    "reject": _rule("proposed", ("approver",), NOT_PROPOSED, "reward_not_allowed_now"),
    # reward_claims.register_claim: the reporter, known by the receipt, not by a role
    "claim": _rule("approved", (), CLAIMED_ALREADY, "already_claimed"),
    # reward_claims.record_payment
    "pay": _rule("claimed", ("finance",), NOT_CLAIMED, "not_claimed"),
}


def require(actor: User, *roles: str) -> None:
    """A deactivated account keeps its roles on the row; it may not act on rewards."""
    if not actor.active or not actor.has_role(*roles):
        raise Forbidden()


def check(record: RewardRecord, action: str, actor: User | None, version: Any) -> int:
    """Refuse ``action`` now, or return the version that ``advance`` compares against."""
    statemachine.check(RULES, action, record.status, actor, version, record.version)
    return record.version


def advance(session: Session, record: RewardRecord, expected: int, **values: Any) -> None:
    """The move's change: only if nobody changed the record since ``expected`` was read."""
    statemachine.bump_version(session, RewardRecord, record, expected)
    for name, value in values.items():
        setattr(record, name, value)
    session.flush()


def allowed(record: RewardRecord, user: User) -> list[str]:
    return statemachine.allowed(RULES, record.status, user)


def display_status(record: RewardRecord, now: dt.datetime | None = None) -> str:
    if record.status == "approved" and record.claim_due_at is not None \
            and record.claim_due_at < (now or utcnow()):
        return "lapsed"
    return record.status
