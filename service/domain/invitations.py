"""One-time invitations, and the account made from one.

Only a hash of the token is stored; a token works once. The new user's browser creates the
account (service/domain/accounts.py NewAccount); it is unusable until its first TOTP code is
confirmed, which spends the invitation and grants its channels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, recipients, totp
from service.domain.accounts import NewAccount
from service.domain.models import ROLES, Channel, Invitation, User, utcnow
from service.domain.xwing_keys import XWingKey
from service.platform import tokens
from service.platform.errors import ChuishaoError, InvalidInput
from service.platform.i18n import N_
from service.platform.settings import Settings

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


def open_invitations(session: Session, now: dt.datetime | None = None) -> list[Invitation]:
    now = now or utcnow()
    return list(session.scalars(select(Invitation)
                                .where(Invitation.used_at.is_(None), Invitation.expires_at > now)
                                .order_by(Invitation.created_at.desc())))


# ---------------------------------------------------------------------------- the account


def pending_user(session: Session, invitation: Invitation) -> User | None:
    """The account created from ``invitation`` that has not confirmed its first code yet."""
    if invitation.used_by is None:
        return None
    user = session.get(User, invitation.used_by)
    return user if user is not None and not user.totp_confirmed else None


def create_account(session: Session, settings: Settings, invitation: Invitation,
                   account: NewAccount, xwing: XWingKey | None = None,
                   now: dt.datetime | None = None) -> User:
    """Store the new account (unusable until its first TOTP code is confirmed).

    Sending the form again for the same invitation (e.g. after losing the enrolment page)
    replaces the pending account rather than adding a second one.
    """
    now = now or utcnow()
    user = pending_user(session, invitation)
    taken = session.scalar(select(User).where(User.username == account.username))
    if taken is not None and taken is not user:
        raise InvalidInput(N_("This username is taken. Choose another one."))
    key_id = crypto.key_id(account.public_key).hex()
    clash = session.scalar(select(User).where(User.key_id == key_id))
    if clash is not None and clash is not user:
        raise InvalidInput()
    if xwing is not None:
        clash = session.scalar(select(User).where(User.xwing_key_id == xwing.key_id))
        if clash is not None and clash is not user:
            raise InvalidInput()
    if user is None:
        user = User(created_at=now, active=True)
        session.add(user)
    user.username = account.username
    user.display_name = account.display_name
    user.roles = invitation.roles
    user.user_salt = account.user_salt
    user.auth_hash = crypto.hash_auth_secret(account.auth_secret, n=settings.scrypt_n)
    user.public_key = account.public_key
    user.key_id = key_id
    user.wrapped_private_key = account.wrapped_private_key
    # Without the hybrid in the browser the account is classical until a sign-in adds a pair.
    user.xwing_public_key = xwing.public_key if xwing else None
    user.xwing_key_id = xwing.key_id if xwing else None
    user.wrapped_xwing_seed = xwing.wrapped_seed if xwing else None
    user.totp_secret = totp.new_secret()
    user.totp_confirmed = False
    user.totp_last_step = 0
    user.failed_logins = 0
    user.throttled_until = None
    user.password_changed_at = now
    session.flush()
    invitation.used_by = user.id
    session.flush()
    return user


def enrolment_proof(secret_key: str, invitation: Invitation, user: User) -> str:
    """Binds the TOTP enrolment page to the browser that created the account.

    It changes whenever the account is created again, so an old proof stops working.
    """
    message = f"chuishao.enrol\x00{invitation.id}\x00{user.id}\x00{user.auth_hash}".encode()
    return crypto.b64u_encode(hmac.new(secret_key.encode(), message, hashlib.sha256).digest())


def check_enrolment_proof(secret_key: str, invitation: Invitation, user: User,
                          given: str | None) -> bool:
    expected = enrolment_proof(secret_key, invitation, user)
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def confirm_totp(session: Session, invitation: Invitation, user: User, code: object,
                 now: dt.datetime | None = None) -> None:
    """First code right: the account becomes usable and the invitation is spent."""
    now = now or utcnow()
    assert user.totp_secret is not None
    matched = totp.matching_steps(user.totp_secret, code, now)
    if not matched:
        raise totp.WrongCode()
    user.totp_confirmed = True
    user.totp_last_step = max(matched)
    invitation.used_at = now
    invitation.used_by = user.id
    receives = invitation.channel_id is not None and recipients.receives_reports(user)
    if receives and invitation.channel_id is not None:
        recipients.add_recipient_row(session, invitation.channel_id, user.id, now)
    elif invitation.channel_id is not None:
        # Made before recipients followed roles: such an account gets scope, never keys.
        recipients.add_scope_row(session, invitation.channel_id, user.id, now)
    scope = [int(part) for part in invitation.scope.split() if part.isdigit()]
    for channel_id in scope:
        if session.get(Channel, channel_id) is not None:
            recipients.add_scope_row(session, channel_id, user.id, now)
    audit.append(session, "account.create", actor=user, target=f"invitation:{invitation.id}",
                 details={"roles": user.roles, "channel_id": invitation.channel_id,
                          "receives": receives, "scope": scope, "key_id": user.key_id},
                 now=now)
