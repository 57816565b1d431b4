"""Database schema: rectification records (see service/domain/models/core.py for the conventions).

A rectification record (整改记录) is one hazard's way to write-off: the five guarantees, its
progress, acceptance and closure. Plaintext facts about the hazard and the enterprise's staff,
never about the reporter. The record's life is in service/domain/rectification.py.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from service.domain.models.base import Base, UTCDateTime


class Rectification(Base):
    """One hazard to remove. Cases reporting the same hazard link to it (RectificationCase)."""

    __tablename__ = "rectifications"
    __table_args__ = (
        Index("ix_rectifications_channel_found", "channel_id", "found_on"),
        Index("ix_rectifications_channel_state", "channel_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    # The case it was opened from; further cases of the same hazard are linked.
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    state: Mapped[str] = mapped_column(String(32), default="opened")
    # Optimistic concurrency, as on cases: every change bumps it; a stale form is refused.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # What the reviewer found, in their own words: never the sealed report's text.
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(300), default="")
    found_on: Mapped[dt.date] = mapped_column(Date)
    risk_assessment: Mapped[str] = mapped_column(Text, default="")
    # The five guarantees (五落实).
    responsible_unit: Mapped[str] = mapped_column(String(200), default="")
    responsible_person: Mapped[str] = mapped_column(String(200), default="")
    measures: Mapped[str] = mapped_column(Text, default="")
    funds_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    deadline: Mapped[dt.date | None] = mapped_column(Date, nullable=True, index=True)
    contingency_plan: Mapped[str] = mapped_column(Text, default="")
    interim_measures: Mapped[str] = mapped_column(Text, default="")
    work_stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    listed_supervision: Mapped[bool] = mapped_column(Boolean, default=False)
    supervision_by: Mapped[str] = mapped_column(String(200), default="")
    # Removed on the spot (当场整改): who fixed it and how are the responsible person and the
    # measures, the day it was fixed is fixed_on; the acceptance check is still a second
    # person's.
    on_the_spot: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    fixed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    # Console users: who opened it and who handles it; neither may accept it.
    opened_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The deadline first decided (statistics of extensions) and the one an overdue
    # explanation was given for (a later extension that runs out needs a new one).
    first_deadline: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    explained_deadline: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    accepted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    accepted_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The public board shows only what reviewers approved, in the words they approved.
    public_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RectificationCase(Base):
    """A case whose hazard the record removes (the opening case, and duplicates linked later)."""

    __tablename__ = "rectification_cases"

    rectification_id: Mapped[int] = mapped_column(ForeignKey("rectifications.id"),
                                                  primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True, index=True)
    linked_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RectificationEntry(Base):
    """The record's own history: progress, extensions, explanations, acceptance checks."""

    __tablename__ = "rectification_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rectification_id: Mapped[int] = mapped_column(ForeignKey("rectifications.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    deadline_before: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    deadline_after: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    result: Mapped[str | None] = mapped_column(String(8), nullable=True)  # pass | fail
    on_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RectificationFile(Base):
    """An evidence file (sealed with a linked case's key) attached to a progress entry."""

    __tablename__ = "rectification_files"

    file_id: Mapped[str] = mapped_column(ForeignKey("files.id"), primary_key=True)
    rectification_id: Mapped[int] = mapped_column(ForeignKey("rectifications.id"), index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("rectification_entries.id"), index=True)
    phase: Mapped[str] = mapped_column(String(8))  # before | after
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
