"""Who receives a channel's new reports, and whose scope holds which channels.

A recipient row means: new reports of the channel are sealed to this account's key as well
(an active, enrolled reviewer only, as intake decides). A scope row means: the account sees
and acts on the channel's plaintext records, whatever its role, with no keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain import audit, intake
from service.domain.models import Channel, ChannelRecipient, ChannelScope, User, utcnow
from service.platform.errors import InvalidInput, NotFound
from service.platform.i18n import N_

RECIPIENT_ONLY = N_("Only an active reviewer can receive a channel's reports.")


def receives_reports(user: User) -> bool:
    """Whether new reports may be sealed to ``user``: an active, enrolled reviewer only."""
    return bool(user.totp_confirmed) and intake.sealed_to(user)


def classical_key_only(user: User) -> bool:
    """An account without an X-Wing pair (made before v2, or only ever signed in to in a
    browser without the hybrid): its slots are v1 until it signs in in one that has it."""
    return user.xwing_key_id is None


def left_out(user: User, v2_only: bool) -> bool:
    """Whether intake leaves ``user`` out of new cases for lack of an X-Wing key while the
    installation requires v2 (intake.channel_keys)."""
    return v2_only and classical_key_only(user)


@dataclass(frozen=True)
class UserRow:
    user: User
    receives: list[Channel]  # channels whose new reports are sealed to this user's key
    scope: list[Channel]  # channels whose plaintext records this user may see
    # Recipient of these channels, but left out of new cases: v2 is required, no X-Wing key.
    held_back: list[Channel]

    @property
    def may_receive(self) -> bool:
        return receives_reports(self.user)

    @property
    def classical(self) -> bool:
        return classical_key_only(self.user)


def classical_count(rows: list[UserRow]) -> int:
    """Active accounts without an X-Wing pair: the ones an administrator asks to sign in."""
    return sum(1 for row in rows if row.user.active and row.classical)


def user_rows(session: Session, *, v2_only: bool) -> list[UserRow]:
    users = list(session.scalars(select(User).order_by(User.username)))
    receives: dict[int, list[Channel]] = {}
    for user_id, channel in session.execute(
            select(ChannelRecipient.user_id, Channel)
            .join(Channel, Channel.id == ChannelRecipient.channel_id).order_by(Channel.id)):
        receives.setdefault(user_id, []).append(channel)
    scope: dict[int, list[Channel]] = {}
    for user_id, channel in session.execute(
            select(ChannelScope.user_id, Channel)
            .join(Channel, Channel.id == ChannelScope.channel_id).order_by(Channel.id)):
        scope.setdefault(user_id, []).append(channel)
    # What intake really does: a leftover row of someone it does not seal to is not shown as
    # receiving.
    rows = []
    for user in users:
        channels = receives.get(user.id, []) if intake.sealed_to(user) else []
        held = left_out(user, v2_only)
        rows.append(UserRow(user, [] if held else channels, scope.get(user.id, []),
                            channels if held else []))
    return rows


@dataclass(frozen=True)
class ChannelRow:
    channel: Channel
    recipients: list[User]  # new reports are sealed to these keys
    scope_only: list[User]  # see the channel's records, receive no reports
    # Recipients left out of new cases while v2 is required, for lack of an X-Wing key.
    held_back: list[User]

    @property
    def classical(self) -> list[User]:
        """Recipients whose slots are v1: every new case of the line is classical-only."""
        return [user for user in self.recipients if classical_key_only(user)]


def channel_rows(session: Session, *, v2_only: bool) -> list[ChannelRow]:
    channels = list(session.scalars(select(Channel).order_by(Channel.kind, Channel.id)))
    recipients: dict[int, list[User]] = {}
    scope: dict[int, list[User]] = {}
    for channel_id, user in session.execute(
            select(ChannelRecipient.channel_id, User)
            .join(User, User.id == ChannelRecipient.user_id).order_by(User.username)):
        # As intake sees it: a leftover row of someone it does not seal to receives nothing.
        (recipients if intake.sealed_to(user) else scope).setdefault(channel_id, []).append(user)
    for channel_id, user in session.execute(
            select(ChannelScope.channel_id, User)
            .join(User, User.id == ChannelScope.user_id).order_by(User.username)):
        if user not in recipients.get(channel_id, []) + scope.get(channel_id, []):
            scope.setdefault(channel_id, []).append(user)
    rows = []
    for channel in channels:
        listed = recipients.get(channel.id, [])
        rows.append(ChannelRow(channel, [u for u in listed if not left_out(u, v2_only)],
                               scope.get(channel.id, []),
                               [u for u in listed if left_out(u, v2_only)]))
    return rows


def add_recipient_row(session: Session, channel_id: int, user_id: int,
                      now: dt.datetime | None = None) -> bool:
    if session.get(ChannelRecipient, (channel_id, user_id)) is not None:
        return False
    session.add(ChannelRecipient(channel_id=channel_id, user_id=user_id,
                                 created_at=now or utcnow()))
    session.flush()
    return True


def add_scope_row(session: Session, channel_id: int, user_id: int,
                  now: dt.datetime | None = None) -> bool:
    if session.get(ChannelScope, (channel_id, user_id)) is not None:
        return False
    session.add(ChannelScope(channel_id=channel_id, user_id=user_id,
                             created_at=now or utcnow()))
    session.flush()
    return True


def add_scope(session: Session, actor: User, user: User, channel: Channel) -> None:
    """Let ``user`` see and act on ``channel``'s plaintext records (any role; no keys)."""
    added = add_scope_row(session, channel.id, user.id)
    audit.append(session, "admin.scope.add", actor=actor, target=f"user:{user.id}",
                 details={"username": user.username, "channel_id": channel.id,
                          "slug": channel.slug, "added": added})


def remove_scope_row(session: Session, channel_id: int, user_id: int) -> bool:
    row = session.get(ChannelScope, (channel_id, user_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def remove_scope(session: Session, actor: User, user: User, channel: Channel) -> None:
    if not remove_scope_row(session, channel.id, user.id):
        raise NotFound()
    audit.append(session, "admin.scope.remove", actor=actor, target=f"user:{user.id}",
                 details={"username": user.username, "channel_id": channel.id,
                          "slug": channel.slug})


def add_recipient(session: Session, actor: User, channel: Channel, user: User) -> None:
    # Only a usable reviewer account can receive key slots: its key pair is confirmed.
    if not receives_reports(user):
        raise InvalidInput(RECIPIENT_ONLY)
    added = add_recipient_row(session, channel.id, user.id)
    audit.append(session, "admin.recipient.add", actor=actor, target=f"channel:{channel.id}",
                 details={"username": user.username, "key_id": user.key_id, "added": added})


def remove_recipient(session: Session, actor: User, channel: Channel, user: User) -> None:
    row = session.get(ChannelRecipient, (channel.id, user.id))
    if row is None:
        raise NotFound()
    session.delete(row)
    session.flush()
    audit.append(session, "admin.recipient.remove", actor=actor, target=f"channel:{channel.id}",
                 details={"username": user.username, "key_id": user.key_id})


def drop_recipient_rows(session: Session, actor: User | None, user: User, reason: str,
                        now: dt.datetime | None = None) -> list[int]:
    """``user`` may no longer receive new reports: every recipient row goes, in the caller's
    transaction, one audit entry each. The channels stay in the user's scope (plaintext
    records, no keys), so an auditor who was a reviewer keeps their work; the admin sees it
    and may take it away. Cases already received stay readable with the slots held."""
    now = now or utcnow()
    rows = list(session.scalars(select(ChannelRecipient)
                                .where(ChannelRecipient.user_id == user.id)
                                .order_by(ChannelRecipient.channel_id)))
    for row in rows:
        channel_id = row.channel_id
        session.delete(row)
        session.flush()
        add_scope_row(session, channel_id, user.id, now)
        audit.append(session, "admin.recipient.remove", actor=actor,
                     target=f"channel:{channel_id}", now=now,
                     details={"username": user.username, "key_id": user.key_id,
                              "reason": reason, "kept_in_scope": True})
    return [row.channel_id for row in rows]
