"""Database schema: staff notifications (see service/domain/models/core.py for the conventions).

The outbox holds one row per (person, event) and nothing about the event but its kind: no
case id, no channel, nothing a report said. Rows are written in the transaction of the event
that causes them and delivered later by service/domain/notify.py.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.domain.models.base import RANDOM_ID, Base, UTCDateTime, random_row_id


class NotifyOutbox(Base):
    __tablename__ = "notify_outbox"
    __table_args__ = (Index("ix_notify_outbox_state_due", "state", "due_at"),)

    # Random: a reporter's new case, reply or claim writes rows here, and so do staff actions.
    id: Mapped[int] = mapped_column(RANDOM_ID, primary_key=True, autoincrement=False,
                                    default=random_row_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    # Reporter-caused rows carry the start of their time bucket, never a finer time.
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # new: not yet scheduled (digest, random delay); pending: waits for due_at; sending:
    # taken by a worker until lease_until; sent; failed: gave up; dropped: person gone.
    state: Mapped[str] = mapped_column(String(16), default="new")
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    via: Mapped[str] = mapped_column(String(16), default="")
    last_error: Mapped[str] = mapped_column(String(300), default="")


class NotifyPreference(Base):
    """How one person is told. ``kinds`` None: the installation's defaults."""

    __tablename__ = "notify_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    via: Mapped[str] = mapped_column(String(16), default="none")  # none | email | webhook
    email: Mapped[str] = mapped_column(String(254), default="")
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("notify_webhooks.id"),
                                                   nullable=True)
    kinds: Mapped[str | None] = mapped_column(String(200), nullable=True)
    digest: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="")


class NotifyDefaults(Base):
    """The installation's defaults (one row, id 1), set by administrators."""

    __tablename__ = "notify_defaults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kinds: Mapped[str] = mapped_column(String(200))
    digest: Mapped[bool] = mapped_column(Boolean, default=False)


class NotifyWebhook(Base):
    """A group robot's address (WeCom, DingTalk, Feishu), configured by administrators."""

    __tablename__ = "notify_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # wecom | dingtalk | feishu
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class NotifyDeadline(Base):
    """A deadline already announced, so each is announced once (a new due date is a new
    deadline)."""

    __tablename__ = "notify_deadlines"

    case_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    which: Mapped[str] = mapped_column(String(16), primary_key=True)  # soon | passed
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), primary_key=True)
