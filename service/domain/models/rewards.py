"""Database schema: rewards records (see service/domain/models/core.py for the conventions).

A reward record is a plaintext fact about a case's reward: the calculator's JSON (policy id,
version and digest, every input, every rule applied, the explanation), who proposed and who
decided, and later the claim and the payment. The claim's content (payout method, identity) is
ciphertext only finance officers open; of the claim code only its SHA-256 is kept.
The records' life is in service/domain/reward_states.py and the reward_* modules it names;
exports in service/domain/exports.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.domain.models.base import RANDOM_ID, Base, UTCDateTime, random_row_id


class RewardPolicyVersion(Base):
    """One version of a reward policy file, stored with its text so records stay checkable.

    Shipped policies are copied in on first use; administrators upload further ones. Only
    active versions can be chosen for new calculations; old records keep theirs.
    """

    __tablename__ = "reward_policies"
    __table_args__ = (UniqueConstraint("policy_id", "version", name="uq_reward_policies_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    title_zh: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    claim_window_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The claim must carry a name and contact (some local rules pay named reporters only).
    identity_required: Mapped[bool] = mapped_column(Boolean, default=False)
    shipped: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RewardRecord(Base):
    """A calculated reward for one case: proposed, then approved or rejected, claimed, paid."""

    __tablename__ = "reward_records"
    __table_args__ = (
        Index("ix_reward_records_proposed", "proposed_at", "id"),
        Index("ix_reward_records_status", "status", "proposed_at"),
        Index("ix_reward_records_channel", "channel_id", "proposed_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 16 random bytes, hex
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    policy_row_id: Mapped[int] = mapped_column(ForeignKey("reward_policies.id"))
    policy_id: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[int] = mapped_column(Integer)
    policy_digest: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    calculation: Mapped[str] = mapped_column(Text)  # RewardCalculation.to_json()
    # proposed | approved | rejected | claimed | paid (lapsed = approved past claim_due_at)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    # Compare-and-set: every change bumps it, so two deciders cannot both win.
    version: Mapped[int] = mapped_column(Integer, default=1)
    proposed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rejection_reason: Mapped[str] = mapped_column(String(500), default="")
    claim_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claim_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claim_item_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claim_blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    claim_sealed_on_server: Mapped[bool] = mapped_column(Boolean, default=False)
    paid_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    payment_reference: Mapped[str] = mapped_column(String(100), default="")


class RewardClaimSlot(Base):
    """The claim key sealed to one finance officer or to the recovery key."""

    __tablename__ = "reward_claim_slots"
    __table_args__ = (UniqueConstraint("reward_id", "key_id", name="uq_reward_claim_slots_key"),)

    # Random: the reporter's claim writes these rows (see service.domain.models.RANDOM_ID).
    id: Mapped[int] = mapped_column(RANDOM_ID, primary_key=True, autoincrement=False,
                                    default=random_row_id)
    reward_id: Mapped[str] = mapped_column(ForeignKey("reward_records.id"), index=True)
    holder: Mapped[str] = mapped_column(String(16))  # finance | recovery
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    suite: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    slot: Mapped[bytes] = mapped_column(LargeBinary(1168))  # 80 (v1) or 1168 (v2) bytes
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RewardExport(Base):
    """One export of the ledger: started when the download starts, signed when it ends."""

    __tablename__ = "reward_exports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    format: Mapped[str] = mapped_column(String(8))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="started")  # started | done
    # The audit entry that records this export: the chain head the manifest names.
    audit_entry: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str] = mapped_column(String(64), default="")
    record_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    file_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    manifest: Mapped[str | None] = mapped_column(Text, nullable=True)
