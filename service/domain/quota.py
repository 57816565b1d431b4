"""Quotas: how much a reporter may make the server keep, per case and per follow-up session.

Proof-of-work makes each request cost something; quotas bound what one paid-for request (or
one case) can add. They count only what the reporter sent: reviewers' notes and evidence do
not use up the reporter's room. Every refusal names the limit it hit.

Checks run after the new rows are flushed, inside the request's transaction: a refusal rolls
everything back, and the count includes the very item that crossed the limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.domain.models import FollowupQuota, SealedItem, StoredFile, utcnow
from service.platform.errors import TooLarge
from service.platform.i18n import N_
from service.platform.settings import Settings

MIB = 1024 * 1024


class QuotaExceeded(TooLarge):
    code = "quota_exceeded"


def _mb(limit: int) -> int:
    return max(1, limit // MIB)


def check_intake(settings: Settings, *, items: int, message_bytes: int,
                 file_bytes: int) -> None:
    """A new submission: the same limits as a case that already holds this much."""
    _check(settings, items=items, message_bytes=message_bytes, file_bytes=file_bytes)


def _check(settings: Settings, *, items: int, message_bytes: int, file_bytes: int) -> None:
    if items > settings.case_quota_items:
        raise QuotaExceeded(N_("This report has reached its limit of {count} messages and "
                               "files. Nothing was added."), count=settings.case_quota_items)
    if message_bytes > settings.case_quota_message_bytes:
        raise QuotaExceeded(N_("This report has reached its limit of {mb} MB of messages. "
                               "Nothing was added."),
                            mb=_mb(settings.case_quota_message_bytes))
    if file_bytes > settings.case_quota_bytes:
        raise QuotaExceeded(N_("This report has reached its limit of {mb} MB of files. "
                               "Nothing was added."), mb=_mb(settings.case_quota_bytes))


def check_case(session: Session, settings: Settings, case_id: str, *, items: int = 0,
               message_bytes: int = 0, file_bytes: int = 0) -> None:
    """The reporter's items, message bytes and file bytes in one case, after a change; or,
    given what a request is about to add, before it (so a full case costs no parsing)."""
    held_items, held_message_bytes = session.execute(
        select(func.count(), func.coalesce(func.sum(func.length(SealedItem.blob)), 0))
        .where(SealedItem.case_id == case_id, SealedItem.author == "reporter")).one()
    held_file_bytes = session.scalar(
        select(func.coalesce(func.sum(StoredFile.stored_size), 0))
        .where(StoredFile.case_id == case_id, StoredFile.author == "reporter"))
    _check(settings, items=int(held_items) + items,
           message_bytes=int(held_message_bytes) + message_bytes,
           file_bytes=int(held_file_bytes or 0) + file_bytes)


def session_key(token: str) -> str:
    return hashlib.sha256(b"chuishao.followup-quota\x00" + token.encode("utf-8")).hexdigest()


def _expiry(settings: Settings, now: dt.datetime) -> dt.datetime:
    # Rounded up to the granularity: the row outlives the session and dates nothing finer.
    step = settings.time_granularity_seconds
    end = int((now + dt.timedelta(minutes=settings.followup_minutes)).timestamp())
    return dt.datetime.fromtimestamp(-(-end // step) * step, dt.UTC)


def charge_session(session: Session, settings: Settings, token: str, *, items: int,
                   nbytes: int, now: dt.datetime | None = None) -> None:
    """Count what one follow-up session adds; refuse once it passes the session's quota."""
    now = now or utcnow()
    key = session_key(token)
    for _attempt in range(4):
        changed = session.execute(
            update(FollowupQuota).where(FollowupQuota.session_hash == key)
            .values(items=FollowupQuota.items + items, bytes=FollowupQuota.bytes + nbytes)
            .execution_options(synchronize_session=False))
        if _rowcount(changed):
            break
        try:
            with session.begin_nested():
                session.execute(insert(FollowupQuota).values(
                    session_hash=key, items=items, bytes=nbytes,
                    expires_at=_expiry(settings, now)))
            break
        except IntegrityError:
            continue  # the session's other request made the row first: add to it
    used_items, used_bytes = session.execute(
        select(FollowupQuota.items, FollowupQuota.bytes)
        .where(FollowupQuota.session_hash == key)).one()
    if used_items > settings.followup_quota_items:
        raise QuotaExceeded(N_("This follow-up session has reached its limit of {count} "
                               "messages and files. Nothing was added; enter your receipt "
                               "again to continue."), count=settings.followup_quota_items)
    if used_bytes > settings.followup_quota_bytes:
        raise QuotaExceeded(N_("This follow-up session has reached its limit of {mb} MB. "
                               "Nothing was added; enter your receipt again to continue."),
                            mb=_mb(settings.followup_quota_bytes))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def purge_sessions(session: Session, now: dt.datetime) -> int:
    result = session.execute(delete(FollowupQuota).where(FollowupQuota.expires_at < now))
    return _rowcount(result)

