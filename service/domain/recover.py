"""Re-granting access with the installation's recovery key (``chuishao recover``).

When every reviewer of a channel has lost their password, the operator types the offline
recovery secret into the command line; for every case of the channel it opens the recovery
key's slot and seals the case key (and the internal key, if the case has one) to a named
reviewer's public key. The secret is used in memory only and never stored. Running it again
adds nothing: slots the reviewer already holds are skipped.
"""

from __future__ import annotations

import hmac
import sys
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service.domain import audit
from service.domain.installation import get_installation
from service.domain.models import Case, Channel, KeySlot, User, utcnow
from service.domain.models.rewards import RewardClaimSlot
from service.platform.db import Database
from service.platform.errors import ChuishaoError, InvalidInput, NotFound, NotSetUp
from service.platform.i18n import N_

PURPOSES = ("case", "internal")


@dataclass(frozen=True)
class Recovered:
    cases: int  # cases of the channel
    granted: int  # new slots (case and internal keys)
    skipped: int  # slots the reviewer held already


def recover(session: Session, channel_slug: str, username: str,
            recovery_private: bytes) -> Recovered:
    installation = _check_secret(session, recovery_private)
    channel = session.scalar(select(Channel).where(Channel.slug == channel_slug))
    if channel is None:
        raise NotFound(N_("No reporting line has this id."), code="unknown_channel")
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not user.has_role("reviewer"):
        raise InvalidInput(N_("Access can be given only to an active reviewer account."),
                           code="not_a_reviewer")
    held = {(slot.case_id, slot.purpose) for slot in session.scalars(
        select(KeySlot).join(Case, Case.id == KeySlot.case_id)
        .where(Case.channel_id == channel.id, KeySlot.key_id == user.key_id))}
    recovery_slots = session.execute(
        select(KeySlot.case_id, KeySlot.purpose, KeySlot.slot)
        .join(Case, Case.id == KeySlot.case_id)
        .where(Case.channel_id == channel.id, KeySlot.key_id == installation.recovery_key_id,
               KeySlot.purpose.in_(PURPOSES))
        .order_by(KeySlot.case_id, KeySlot.purpose)).all()
    now = utcnow()
    granted = skipped = 0
    for case_id, purpose, slot in recovery_slots:
        if (case_id, purpose) in held:
            skipped += 1
            continue
        raw_id = bytes.fromhex(case_id)
        # A slot that does not open is a broken case, not a reason to stop: OpenError raises.
        key = crypto.open_key(slot, recovery_private, raw_id, purpose)
        session.add(KeySlot(case_id=case_id, purpose=purpose, holder="reviewer",
                            user_id=user.id, suite=crypto.SUITE, key_id=user.key_id,
                            slot=crypto.seal_key(key, user.public_key, raw_id, purpose=purpose),
                            created_at=now))
        granted += 1
    cases = len({case_id for case_id, _, _ in recovery_slots})
    audit.append(session, "case.recover", target=channel.slug, now=now,
                 details={"to": user.username, "cases": cases, "granted": granted,
                          "skipped": skipped})
    session.flush()
    return Recovered(cases, granted, skipped)


def recover_claims(session: Session, username: str, recovery_private: bytes) -> Recovered:
    """Seal every reward claim's key to a finance officer who holds none yet (someone
    appointed after the claims were made). ``cases`` counts claims here."""

    installation = _check_secret(session, recovery_private)
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not user.has_role("finance"):
        raise InvalidInput(N_("Claims can be given only to an active finance account."),
                           code="not_finance")
    held = set(session.scalars(select(RewardClaimSlot.reward_id)
                               .where(RewardClaimSlot.key_id == user.key_id)))
    recovery_slots = session.execute(
        select(RewardClaimSlot.reward_id, RewardClaimSlot.slot)
        .where(RewardClaimSlot.key_id == installation.recovery_key_id)
        .order_by(RewardClaimSlot.reward_id)).all()
    now = utcnow()
    granted = skipped = 0
    for reward_id, slot in recovery_slots:
        if reward_id in held:
            skipped += 1
            continue
        raw_id = bytes.fromhex(reward_id)
        key = crypto.open_claim_key(slot, recovery_private, raw_id)
        session.add(RewardClaimSlot(
            reward_id=reward_id, holder="finance", user_id=user.id, suite=crypto.SUITE,
            key_id=user.key_id, slot=crypto.seal_claim_key(key, user.public_key, raw_id),
            created_at=now))
        granted += 1
    audit.append(session, "reward.claims_recover", target=user.username, now=now,
                 details={"claims": len(recovery_slots), "granted": granted,
                          "skipped": skipped})
    session.flush()
    return Recovered(len(recovery_slots), granted, skipped)


def _check_secret(session: Session, recovery_private: bytes) -> Any:
    installation = get_installation(session)
    if installation is None:
        raise NotSetUp()
    if not hmac.compare_digest(crypto.public_key(recovery_private),
                               installation.recovery_public_key):
        raise InvalidInput(N_("This recovery secret does not belong to this installation."),
                           code="recovery_mismatch")
    return installation


def run_command(database_url: str, channel: str | None, username: str,
                secret_text: str) -> int:
    """The command line's side: parse the secret, recover, print a count; exit status."""


    try:
        private = crypto.decode_recovery_secret(secret_text.strip())
    except ValueError:
        print("refused: that is not a valid recovery secret", file=sys.stderr)
        return 2
    database = Database.from_url(database_url)
    try:
        with database.session() as session:
            if channel is None:
                done = recover_claims(session, username, private)
            else:
                done = recover(session, channel, username, private)
    except ChuishaoError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 2
    except crypto.OpenError:
        print("refused: a recovery slot of this channel does not open; nothing was changed",
              file=sys.stderr)
        return 2
    finally:
        database.dispose()
    where = f"{done.cases} cases of {channel}" if channel else f"{done.cases} reward claims"
    print(f"{done.granted} keys sealed to {username} across {where}"
          f" ({done.skipped} already held)")
    return 0
