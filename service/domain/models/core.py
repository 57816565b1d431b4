"""The core tables: installation, channels, staff, cases, sealed items, files, stamps,
counters, sessions and the audit trail.

The server stores ciphertext and plaintext facts about hazards, never a client address,
a receipt, a password or report text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.domain.models.base import RANDOM_ID, Base, UTCDateTime, random_row_id


class Installation(Base):
    """The one row describing this installation's public cryptographic identity."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), default="v1")
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    signing_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    recovery_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    recovery_key_id: Mapped[str] = mapped_column(String(32))
    # The recovery key's X-Wing part (protocol v2): set by `chuishao init`, or later by
    # `chuishao recovery add-pq` on installations made before it; until then, v1 slots only.
    recovery_xwing_public_key: Mapped[bytes | None] = mapped_column(LargeBinary(1216),
                                                                    nullable=True)
    recovery_xwing_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # HMAC of a fixed label under the service's secret key, set by the first instance to start:
    # an instance with another key is refused (installation.pin_secret_key).
    secret_key_check: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Channel(Base):
    """A reporting line: an enterprise's internal line or a district bureau."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # enterprise | bureau
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    description_zh: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    public_board: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    recipients: Mapped[list[ChannelRecipient]] = relationship(back_populates="channel")


# The staff roles; an account holds one or more of them.
ROLES = ("reviewer", "approver", "auditor", "finance", "admin")


def has_role(held: str, *roles: str) -> bool:
    """Whether ``held`` (a User's space-separated ``roles``) includes any of ``roles``."""
    mine = set(held.split())
    return any(role in mine for role in roles)


class User(Base):
    """A console account. Only public and wrapped key material is stored."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    roles: Mapped[str] = mapped_column(String(100), default="")  # space-separated
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    user_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    auth_hash: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    # The X-Wing pair (protocol v2, PROTOCOL 17.5): its seed wrapped with the same kek. Empty
    # for an account made before v2 or in a browser without the hybrid, until a browser that
    # has it signs in and adds the pair (service/domain/accounts.add_xwing_key).
    xwing_public_key: Mapped[bytes | None] = mapped_column(LargeBinary(1216), nullable=True)
    xwing_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True,
                                                     index=True)
    wrapped_xwing_seed: Mapped[bytes | None] = mapped_column(LargeBinary(64), nullable=True)
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary(64), nullable=True)
    # TOTP counts as set up only after the first code was confirmed.
    totp_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The last accepted time step: a code is never accepted twice.
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    # No longer used (sign-in no longer pauses an account; see SignInFailure); kept so an
    # older version reading this database still works.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    throttled_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    def has_role(self, *roles: str) -> bool:
        return has_role(self.roles, *roles)

    def key_ids(self) -> list[str]:
        """The ids this account's key slots are stored under: the X25519 key's (v1) and,
        where it has one, the X-Wing key's (v2)."""
        return [key_id for key_id in (self.key_id, self.xwing_key_id) if key_id is not None]


class ChannelRecipient(Base):
    """A reviewer who receives a key slot for every new case of a channel.

    Only an active, enrolled account holding the reviewer role may have one: losing the role
    or being deactivated removes the rows in the same transaction
    (service/domain/recipients.py), and intake seals to nobody else even if a row were left
    behind (service/domain/intake.py).
    """

    __tablename__ = "channel_recipients"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    channel: Mapped[Channel] = relationship(back_populates="recipients")
    user: Mapped[User] = relationship()


class ChannelScope(Base):
    """A channel whose plaintext records (cases' triage facts, rectification, rewards, hazard
    ledger) a user may see and act on, whatever their role. Never a key: being in scope does
    not make anyone a recipient of sealed reports."""

    __tablename__ = "channel_scopes"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Invitation(Base):
    """A one-time link; only the hash of its token is stored."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[str] = mapped_column(String(100))
    # The channel whose new reports the account will receive (reviewers only).
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"), nullable=True)
    # Channels the account will have in scope: space-separated ids (any role).
    scope: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class Case(Base):
    """One report. Only facts reviewers set, and ciphertext, are stored."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_channel_status_created", "channel_id", "status", "created_at"),
        Index("ix_cases_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 16 random bytes, hex
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # coarsened
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32), default="new")
    sealed_on_server: Mapped[bool] = mapped_column(Boolean, default=False)
    # Some case-key slot is suite v1 (X25519 only): a recorded copy of it can be opened by a
    # future quantum computer. Set at intake; every case from before v2 is.
    classical_only: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Optimistic concurrency: every change bumps it; a stale form is refused.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Triage facts reviewers set (plaintext by design: they are about the hazard).
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    grade: Mapped[str | None] = mapped_column(String(16), nullable=True)  # general | major
    criterion_id: Mapped[int | None] = mapped_column(ForeignKey("hazard_criteria.id"),
                                                     nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enterprise: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(300), default="")
    not_accepted_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    verification_result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    duplicate_of: Mapped[str | None] = mapped_column(ForeignKey("cases.id"), nullable=True)
    first_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    # The group's first valid report cannot be told by time alone (several verified reports
    # in one time bucket, or a group carried over from before the rule): a reviewer decides.
    first_valid_open: Mapped[bool] = mapped_column(Boolean, default=False)
    # On the case a reviewer chose as first valid among reports of the same bucket: the
    # user's id (no constraint: see migration first_valid_decision).
    first_valid_decided_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_valid_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Deadlines (docs/RULES.md, time limits), kept as dates so overdue lists are one query.
    accept_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    verify_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True,
                                                              index=True)
    verify_extended: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    feedback_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # While rectifying: the end of the earliest deadline day among its unfinished
    # rectification records (kept by service/domain/rectification.py), so lists sort and flag it.
    rectification_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(),
                                                                     nullable=True)
    # A submission is invisible until all its files have arrived: never a half case.
    ready: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    upload_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    draft_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    slots: Mapped[list[KeySlot]] = relationship(back_populates="case")
    items: Mapped[list[SealedItem]] = relationship(back_populates="case")
    files: Mapped[list[StoredFile]] = relationship(back_populates="case")
    events: Mapped[list[CaseEvent]] = relationship(back_populates="case")


class KeySlot(Base):
    """The case key (or internal key) sealed to one recipient's public key."""

    __tablename__ = "key_slots"
    __table_args__ = (
        UniqueConstraint("case_id", "purpose", "key_id", name="uq_key_slots_owner"),
        # "Does this user hold a slot of this case?" is asked per listed case: one probe.
        # Deliberately no index led by user_id or key_id: planners then walk every slot a
        # reviewer holds (100 000s) instead of the handful a case has.
        Index("ix_key_slots_case_user", "case_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(RANDOM_ID, primary_key=True, autoincrement=False,
                                    default=random_row_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    purpose: Mapped[str] = mapped_column(String(16))  # case | internal
    holder: Mapped[str] = mapped_column(String(16))  # reviewer | recovery | reporter
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    suite: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    slot: Mapped[bytes] = mapped_column(LargeBinary(1168))  # 80 (v1) or 1168 (v2) bytes
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    case: Mapped[Case] = relationship(back_populates="slots")


class SealedItem(Base):
    """Report body, message, reply, file description, identity or internal note: ciphertext."""

    __tablename__ = "sealed_items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    author: Mapped[str] = mapped_column(String(16))  # reporter | reviewer
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Order among the same author's items of a case (set on insert, see below). Per author,
    # not per case: a case-wide counter would place a reporter's reply between two reviewer
    # messages and so date it to the second. service.domain.followup.conversation_order merges them.
    position: Mapped[int] = mapped_column(Integer, default=0)

    case: Mapped[Case] = relationship(back_populates="items")


class StoredFile(Base):
    """An encrypted attachment; its key and name live in a sealed file-meta item."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    meta_item_id: Mapped[str] = mapped_column(ForeignKey("sealed_items.id"))
    stored_size: Mapped[int] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(16), default="reporter")
    # An unfinished upload is dropped whole after this time.
    upload_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    case: Mapped[Case] = relationship(back_populates="files")


class FileChunk(Base):
    __tablename__ = "file_chunks"

    file_id: Mapped[str] = mapped_column(ForeignKey("files.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CaseEvent(Base):
    """The case timeline: plaintext facts about the hazard's handling."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(RANDOM_ID, primary_key=True, autoincrement=False,
                                    default=random_row_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    visible_to_reporter: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    case: Mapped[Case] = relationship(back_populates="events")


class SpentStamp(Base):
    """Proof-of-work stamps already used, kept until they would have expired anyway."""

    __tablename__ = "spent_stamps"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class SignInFailure(Base):
    """Recent failed sign-ins for one claimed username, kept under a keyed hash of the name
    so made-up names and real accounts look alike. More failures make the next sign-in's
    proof-of-work stamp dearer; nobody is ever locked out."""

    __tablename__ = "sign_in_failures"

    name_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class RateWindow(Base):
    """How much of a global no-JavaScript ceiling one window has used, shared by every
    instance on the database. A window is the installation's time granularity, so the
    table says no more than the coarsened times of the cases already do."""

    __tablename__ = "rate_windows"

    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime(), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class FollowupQuota(Base):
    """What one follow-up session has added (items, bytes), under a hash of its session
    id; no case, and an expiry coarsened to the installation's granularity."""

    __tablename__ = "followup_quotas"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    items: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class RefusalCount(Base):
    """Anonymous refusals (a forged or expired form, an unknown invitation) counted per
    hour and kind: one row per bucket instead of one audit entry per request."""

    __tablename__ = "refusal_counts"

    bucket: Mapped[dt.datetime] = mapped_column(UTCDateTime(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ConsoleSession(Base):
    """A signed-in console session; only the hash of its cookie token is stored."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEntry(Base):
    """Append-only, hash-chained record of every console action and attempt."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(100), default="")
    outcome: Mapped[str] = mapped_column(String(16))  # ok | refused
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Unique: two writers racing for the same chain head cannot both succeed (no fork).
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class DeferredAuditEntry(Base):
    """An audit entry a reporter's action caused, held until its time bucket has ended.

    Appended to the chain at once, its place between staff entries (stamped to the
    microsecond) would date the action to the second. Housekeeping enters every entry of a
    bucket after the bucket's end, in random order, stamped with the bucket's start. The id is
    random, not a counter, so these rows do not order one another either.
    """

    __tablename__ = "audit_deferred"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())  # the bucket's start
    release_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)  # its end
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(100), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class HazardCriterion(Base):
    """An item of the 2023 major-hazard criteria (应急管理部令第10号); admins may correct it."""

    __tablename__ = "hazard_criteria"
    __table_args__ = (UniqueConstraint("article", "item_no", name="uq_hazard_criteria_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article: Mapped[int] = mapped_column(Integer)
    item_no: Mapped[int] = mapped_column(Integer)
    group: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(Text)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class StorageProbe(Base):
    """One counter row the readiness check rewrites: proof that a commit can succeed."""

    __tablename__ = "storage_probe"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    writes: Mapped[int] = mapped_column(Integer, default=0)


@event.listens_for(SealedItem, "before_insert")
def _next_position(_mapper: Any, connection: Any, item: SealedItem) -> None:
    if not item.position:
        last = connection.execute(
            select(func.coalesce(func.max(SealedItem.position), 0))
            .where(SealedItem.case_id == item.case_id,
                   SealedItem.author == item.author)).scalar_one()
        item.position = int(last) + 1

