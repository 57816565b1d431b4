"""One-time invitations: only a hash of the token is stored; a token works once."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain.models import ROLES, Channel, Invitation, utcnow
from service.platform import tokens
from service.platform.errors import ChuishaoError, InvalidInput
from service.platform.i18n import N_

# The one role whose accounts receive the keys of a channel's new reports.
RECEIVING_ROLE = "reviewer"
RECIPIENT_ROLE_ONLY = N_("Only reviewers receive a channel's new reports. For the other roles, "
                         "choose the channels whose records they may see instead.")


class InvitationInvalid(ChuishaoError):
    # One message for unknown, used and expired: a link that does not work says nothing more.
    status = 404
    code = "invitation_invalid"
    message = N_(
        "This invitation link is not valid or has expired. Ask an administrator for a new one."
    )


def create_invitation(session: Session, *, roles: list[str], hours: int,
                      channel: Channel | None = None, scope: list[Channel] | None = None,
                      now: dt.datetime | None = None) -> tuple[Invitation, str]:
    """``channel``: the channel whose new reports the account will receive (reviewers only);
    ``scope``: channels whose plaintext records it may see, for any role."""
    if not roles or any(role not in ROLES for role in roles):
        raise InvalidInput(N_("Unknown role."))
    if hours < 1:
        raise InvalidInput(N_("An invitation must be valid for at least one hour."))
    if channel is not None and RECEIVING_ROLE not in roles:
        raise InvalidInput(RECIPIENT_ROLE_ONLY, code="recipient_role")
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        token_hash=tokens.digest(token), roles=" ".join(sorted(set(roles))),
        channel_id=channel.id if channel else None,
        scope=" ".join(str(c_id) for c_id in sorted({c.id for c in scope or []})),
        created_at=now, expires_at=now + dt.timedelta(hours=hours),
    )
    session.add(invitation)
    session.flush()
    return invitation, token


def find_invitation(session: Session, token: str, *, now: dt.datetime | None = None) -> Invitation:
    now = now or utcnow()
    if not token or len(token) > 100:
        raise InvitationInvalid()
    invitation = session.scalar(
        select(Invitation).where(Invitation.token_hash == tokens.digest(token)))
    if invitation is None or invitation.used_at is not None or invitation.expires_at <= now:
        raise InvitationInvalid()
    return invitation
