"""Channels: the reporting lines a case can be sent to."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain import audit
from service.domain.models import Channel, User, utcnow
from service.platform.errors import InvalidInput, NotFound
from service.platform.i18n import N_

KINDS = ("enterprise", "bureau")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def add_channel(session: Session, *, slug: str, kind: str, name_zh: str, name_en: str = "",
                description_zh: str = "", description_en: str = "") -> Channel:
    if not SLUG.match(slug):
        raise InvalidInput(N_("A channel id uses lower-case letters, digits and dashes."))
    if kind not in KINDS:
        raise InvalidInput(N_("A channel is either an enterprise line or a bureau line."))
    if not name_zh.strip():
        raise InvalidInput(N_("A channel needs a Chinese name."))
    if session.scalar(select(Channel).where(Channel.slug == slug)) is not None:
        raise InvalidInput(N_("A channel with this id exists already."))
    channel = Channel(slug=slug, kind=kind, name_zh=name_zh.strip(), name_en=name_en.strip(),
                      description_zh=description_zh, description_en=description_en,
                      active=True, public_board=False, created_at=utcnow())
    session.add(channel)
    session.flush()
    return channel


def list_channels(session: Session, *, active_only: bool = False) -> list[Channel]:
    query = select(Channel).order_by(Channel.kind, Channel.id)
    if active_only:
        query = query.where(Channel.active.is_(True))
    return list(session.scalars(query))


def get_channel(session: Session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise NotFound()
    return channel


def set_channel_active(session: Session, actor: User, channel: Channel, active: bool) -> None:
    channel.active = active
    audit.append(session, "admin.channel.reactivate" if active else "admin.channel.deactivate",
                 actor=actor, target=f"channel:{channel.id}", details={"slug": channel.slug})
