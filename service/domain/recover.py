"""Re-granting access with the installation's recovery key (``chuishao recover``).

When every reviewer of a channel has lost their password, the operator types the offline
recovery secret into the command line; for every case of the channel it opens the recovery
key's slot and seals the case key (and the internal key, if the case has one) to a named
reviewer's public key. The secret is used in memory only and never stored. Running it again
adds nothing: slots the reviewer already holds are skipped.

The secret has two parts since protocol v2: the X25519 part opens v1 slots, the X-Wing part
v2 ones; either may be typed first (their checksums tell them apart), and only the parts the
channel's slots need are required. A re-granted slot is v2 to an account with an X-Wing key;
one to an account without is v1, and its case becomes classical-only.
"""

from __future__ import annotations

import hmac
import sys
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, intake, sealing
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


class SecretMissing(InvalidInput):
    code = "recovery_part_missing"


def recover(session: Session, channel_slug: str, username: str,
            recovery_private: bytes | None, xwing_seed: bytes | None = None) -> Recovered:
    installation = _check_secret(session, recovery_private, xwing_seed)
    channel = session.scalar(select(Channel).where(Channel.slug == channel_slug))
    if channel is None:
        raise NotFound(N_("No reporting line has this id."), code="unknown_channel")
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not user.has_role("reviewer"):
        raise InvalidInput(N_("Access can be given only to an active reviewer account."),
                           code="not_a_reviewer")
    held = {(slot.case_id, slot.purpose) for slot in session.scalars(
        select(KeySlot).join(Case, Case.id == KeySlot.case_id)
        .where(Case.channel_id == channel.id, KeySlot.key_id.in_(user.key_ids())))}
    recovery_ids = [installation.recovery_key_id]
    if installation.recovery_xwing_key_id is not None:
        recovery_ids.append(installation.recovery_xwing_key_id)
    # The v2 slot first where a case holds both suites for one purpose: no part is asked
    # for that is not needed.
    recovery_slots = sorted(session.execute(
        select(KeySlot.case_id, KeySlot.purpose, KeySlot.suite, KeySlot.slot)
        .join(Case, Case.id == KeySlot.case_id)
        .where(Case.channel_id == channel.id, KeySlot.key_id.in_(recovery_ids),
               KeySlot.purpose.in_(PURPOSES))).all(),
        key=lambda row: (row.case_id, row.purpose, row.suite != crypto.SUITE_V2))
    secrets = {crypto.SUITE: recovery_private, crypto.SUITE_V2: xwing_seed}
    # Checked before any change: a missing part found halfway would leave half a grant.
    wanted = _first_per_purpose(recovery_slots)
    needed = {row.suite for row in wanted if (row.case_id, row.purpose) not in held}
    if any(suite in secrets and secrets[suite] is None for suite in needed):
        raise SecretMissing(N_("Some cases of this reporting line need the other part of "
                               "the recovery secret; type both parts."))
    mine, mine_id, mine_public = _sealing_key(user)
    now = utcnow()
    granted = skipped = 0
    for case_id, purpose, suite, slot in wanted:
        if (case_id, purpose) in held:
            skipped += 1
            continue
        raw_id = bytes.fromhex(case_id)
        private = secrets.get(suite)
        if private is None:
            raise crypto.OpenError()  # an unknown suite string: a broken case
        # A slot that does not open is a broken case, not a reason to stop: OpenError raises.
        key = crypto.open_slot(suite, slot, private, raw_id, purpose)
        session.add(KeySlot(case_id=case_id, purpose=purpose, holder="reviewer",
                            user_id=user.id, suite=mine, key_id=mine_id,
                            slot=crypto.seal_slot(mine, key, mine_public, raw_id, purpose),
                            created_at=now))
        if purpose == "case" and mine == crypto.SUITE:
            case = session.get(Case, case_id)
            if case is not None:
                case.classical_only = True  # the reviewer's new slot is v1
        granted += 1
    cases = len({row.case_id for row in recovery_slots})
    audit.append(session, "case.recover", target=channel.slug, now=now,
                 details={"to": user.username, "cases": cases, "granted": granted,
                          "skipped": skipped})
    session.flush()
    return Recovered(cases, granted, skipped)


def _first_per_purpose(rows: list[Any]) -> list[Any]:
    """One recovery slot per (case, purpose): the first, which the sort made the preferred."""
    chosen: dict[tuple[str, str], Any] = {}
    for row in rows:
        chosen.setdefault((row.case_id, row.purpose), row)
    return list(chosen.values())


def _sealing_key(user: User) -> tuple[str, str, bytes]:
    """(suite, key id, public key) of the slots sealed to ``user``: the sealing policy of
    intake (PROTOCOL 17.7), v2 to an account with an X-Wing key, v1 to one without."""
    suite, public = sealing.recipient_key(intake.recipient_info(intake.recipient_of(user)))
    return suite, crypto.key_id(public).hex(), public


def recover_claims(session: Session, username: str, recovery_private: bytes | None,
                   xwing_seed: bytes | None = None) -> Recovered:
    """Seal every reward claim's key to a finance officer who holds none yet (someone
    appointed after the claims were made). ``cases`` counts claims here. The recovery slot
    of a claim is v1 or v2 (X-Wing, since PROTOCOL 15 v2); only the parts of the secret the
    claims need are required. The officer's new slot is v2 where the account has an X-Wing
    key."""
    installation = _check_secret(session, recovery_private, xwing_seed)
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not user.has_role("finance"):
        raise InvalidInput(N_("Claims can be given only to an active finance account."),
                           code="not_finance")
    held = set(session.scalars(select(RewardClaimSlot.reward_id)
                               .where(RewardClaimSlot.key_id.in_(user.key_ids()))))
    recovery_ids = [installation.recovery_key_id]
    if installation.recovery_xwing_key_id is not None:
        recovery_ids.append(installation.recovery_xwing_key_id)
    # The v2 slot first where a claim has both: no part is asked for that is not needed.
    rows = sorted(session.execute(
        select(RewardClaimSlot.reward_id, RewardClaimSlot.suite, RewardClaimSlot.slot)
        .where(RewardClaimSlot.key_id.in_(recovery_ids))).all(),
        key=lambda row: (row.reward_id, row.suite != crypto.SUITE_V2))
    wanted: dict[str, Any] = {}
    for row in rows:
        wanted.setdefault(row.reward_id, row)
    secrets = {crypto.SUITE: recovery_private, crypto.SUITE_V2: xwing_seed}
    # Checked before any change: a missing part found halfway would leave half a grant.
    needed = {row.suite for reward_id, row in wanted.items() if reward_id not in held}
    if any(suite in secrets and secrets[suite] is None for suite in needed):
        raise SecretMissing(N_("Some reward claims need the other part of the recovery "
                               "secret; type both parts."))
    mine, mine_id, mine_public = _sealing_key(user)
    now = utcnow()
    granted = skipped = 0
    for reward_id, suite, slot in wanted.values():
        if reward_id in held:
            skipped += 1
            continue
        raw_id = bytes.fromhex(reward_id)
        private = secrets.get(suite)
        if private is None:
            raise crypto.OpenError()  # an unknown suite string: a broken claim
        key = crypto.open_claim_slot(suite, slot, private, raw_id)
        session.add(RewardClaimSlot(
            reward_id=reward_id, holder="finance", user_id=user.id, suite=mine,
            key_id=mine_id, slot=crypto.seal_claim_slot(mine, key, mine_public, raw_id),
            created_at=now))
        granted += 1
    audit.append(session, "reward.claims_recover", target=user.username, now=now,
                 details={"claims": len(wanted), "granted": granted, "skipped": skipped})
    session.flush()
    return Recovered(len(wanted), granted, skipped)


def _check_secret(session: Session, recovery_private: bytes | None,
                  xwing_seed: bytes | None) -> Any:
    installation = get_installation(session)
    if installation is None:
        raise NotSetUp()
    mismatch = InvalidInput(N_("This recovery secret does not belong to this installation."),
                            code="recovery_mismatch")
    if recovery_private is None and xwing_seed is None:
        raise mismatch
    if recovery_private is not None and not hmac.compare_digest(
            crypto.public_key(recovery_private), installation.recovery_public_key):
        raise mismatch
    if xwing_seed is not None and (
            installation.recovery_xwing_public_key is None
            or not hmac.compare_digest(crypto.xwing_public_key(xwing_seed),
                                       installation.recovery_xwing_public_key)):
        raise mismatch
    return installation


def parse_secrets(text: str) -> tuple[bytes | None, bytes | None]:
    """The X25519 and X-Wing parts among the lines of ``text``, in either order; ValueError
    for a line that is neither, or for one part given twice."""
    parts: dict[str, bytes] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        for kind in ("x25519", "xwing"):
            try:
                raw = crypto.decode_recovery_secret(line, kind)
            except ValueError:
                continue
            if kind in parts:
                raise ValueError("the same part twice")
            parts[kind] = raw
            break
        else:
            raise ValueError("not a recovery secret")
    if not parts:
        raise ValueError("no recovery secret")
    return parts.get("x25519"), parts.get("xwing")


def run_command(database_url: str, channel: str | None, username: str,
                secret_text: str) -> int:
    """The command line's side: parse the secret (one part a line), recover, print a count;
    exit status."""
    try:
        private, xwing_seed = parse_secrets(secret_text)
    except ValueError:
        print("refused: that is not a valid recovery secret", file=sys.stderr)
        return 2
    database = Database.from_url(database_url)
    try:
        with database.session() as session:
            if channel is None:
                done = recover_claims(session, username, private, xwing_seed)
            else:
                done = recover(session, channel, username, private, xwing_seed)
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
