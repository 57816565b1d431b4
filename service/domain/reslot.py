"""Re-slotting a classical-only case (docs/PROTOCOL.md 17.8).

A reviewer who holds the case key seals it again, v2, to every holder of a v1 slot who now
has an X-Wing key (colleagues, themselves, the recovery key), and each such v1 slot is
removed in the same transaction: a v1 slot kept beside the v2 one would stay open to a
future quantum computer. Only the key is re-wrapped, never the items or files. The internal
key is re-slotted too where the reviewer holds it.

What cannot be done here: the reporter's v1 slot. The receipt's X-Wing public key exists only
where the receipt is typed (it is derived from it and never stored), so only the reporter's
own browser could seal it. Holders without an X-Wing key keep their v1 slot until they have
one. A case stays classical-only while any case-key slot is v1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, cases
from service.domain.installation import get_installation
from service.domain.models import Case, KeySlot, User, utcnow
from service.platform.errors import Conflict, Malformed
from service.platform.i18n import N_

PURPOSES = ("case", "internal")


class ReslotChanged(Conflict):
    code = "reslot_changed"
    message = N_("The holders of this case's keys changed meanwhile. Nothing was changed; "
                 "reload the page and try again.")


@dataclass(frozen=True)
class Target:
    """One v1 slot that can become v2: its holder's X-Wing key, the slot it replaces."""

    purpose: str
    holder: str  # reviewer | recovery
    user_id: int | None
    xwing_key_id: str
    xwing_public_key: bytes
    replaces: int  # the v1 slot's id

    def as_json(self) -> dict[str, Any]:
        return {"purpose": self.purpose, "holder": self.holder, "user_id": self.user_id,
                "xwing_key_id": self.xwing_key_id,
                "xwing_public_key": crypto.b64u_encode(self.xwing_public_key)}


def targets(session: Session, case: Case, actor: User) -> list[Target]:
    """What ``actor``'s page can re-slot: v1 slots of the keys it holds (the internal key
    only if it holds that), of holders that have an X-Wing key and no v2 slot yet."""
    held = [purpose for purpose in PURPOSES if cases.slot_for(session, case, actor, purpose)]
    if not held:
        return []
    slots = list(session.scalars(select(KeySlot).where(KeySlot.case_id == case.id,
                                                       KeySlot.purpose.in_(held))
                                 .order_by(KeySlot.purpose, KeySlot.id)))
    has_v2 = {(s.purpose, s.holder, s.user_id) for s in slots if s.suite == crypto.SUITE_V2}
    users = {u.id: u for u in session.scalars(select(User).where(
        User.id.in_({s.user_id for s in slots if s.user_id is not None})))}
    installation = get_installation(session)
    found = []
    for slot in slots:
        if slot.suite != crypto.SUITE or (slot.purpose, slot.holder, slot.user_id) in has_v2:
            continue
        user = users.get(slot.user_id) if slot.user_id is not None else None
        if (slot.holder == "reviewer" and user is not None and slot.key_id == user.key_id
                and user.xwing_key_id is not None and user.xwing_public_key is not None):
            found.append(Target(slot.purpose, "reviewer", user.id, user.xwing_key_id,
                                user.xwing_public_key, slot.id))
        elif (slot.holder == "recovery" and installation is not None
              and slot.key_id == installation.recovery_key_id
              and installation.recovery_xwing_key_id is not None
              and installation.recovery_xwing_public_key is not None):
            found.append(Target(slot.purpose, "recovery", None,
                                installation.recovery_xwing_key_id,
                                installation.recovery_xwing_public_key, slot.id))
    return found


def reporter_classical(session: Session, case: Case) -> bool:
    """Whether the reporter's own slot is v1: it stays so (only the receipt replaces it)."""
    return session.scalar(select(KeySlot.id).where(
        KeySlot.case_id == case.id, KeySlot.purpose == "case", KeySlot.holder == "reporter",
        KeySlot.suite == crypto.SUITE).limit(1)) is not None


def reslot(session: Session, case: Case, actor: User, data: Any,
           now: dt.datetime | None = None) -> list[KeySlot]:
    """Replace every v1 slot ``targets`` names by the v2 slot the page sealed: all of them
    or none (ReslotChanged when the page's set is not exactly today's)."""
    cases.require_key(session, case, actor)
    if not isinstance(data, dict):
        raise Malformed("slots")
    parsed = cases.parse_slots(data.get("slots"), PURPOSES)
    if any(spec.suite != crypto.SUITE_V2 for spec in parsed):
        raise Malformed("slot suite")  # re-slotting exists to remove v1 slots
    wanted = {(t.purpose, t.xwing_key_id): t for t in targets(session, case, actor)}
    if not wanted or {(spec.purpose, spec.key_id) for spec in parsed} != set(wanted):
        raise ReslotChanged()
    now = now or utcnow()
    new = []
    for spec in parsed:
        target = wanted[(spec.purpose, spec.key_id)]
        # Conditional: two pages re-slotting at once cannot both replace the same slot.
        gone = session.execute(delete(KeySlot).where(KeySlot.id == target.replaces,
                                                     KeySlot.suite == crypto.SUITE)
                               .execution_options(synchronize_session=False))
        if getattr(gone, "rowcount", 0) != 1:
            raise ReslotChanged()
        new.append(KeySlot(case_id=case.id, purpose=spec.purpose, holder=target.holder,
                           user_id=target.user_id, suite=crypto.SUITE_V2, key_id=spec.key_id,
                           slot=spec.slot, created_at=now))
    session.flush()
    cases.store_slots(session, case, new)
    session.expire(case, ["slots"])
    case.classical_only = session.scalar(select(KeySlot.id).where(
        KeySlot.case_id == case.id, KeySlot.purpose == "case",
        KeySlot.suite == crypto.SUITE).limit(1)) is not None
    audit.append(session, "case.reslot", actor=actor, target=case.id, now=now,
                 details={"slots": len(new), "classical_only": case.classical_only})
    return new
