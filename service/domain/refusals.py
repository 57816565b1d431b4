"""Anonymous refusals counted, not logged one by one.

A forged or expired form from nobody signed in, an unknown invitation link, a sign-in for a
name that has no account: each used to append an audit entry, so anyone could grow the audit
trail at line rate (89 entries a second, ~7.7 million a day). They say nothing about a staff
member, so they are counted per hour and kind instead: one row per bucket, however many
requests. Refusals by a signed-in user stay in the audit trail, one entry each.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.domain.models import RefusalCount, utcnow
from service.platform.db import Database, run_after_request

BUCKET_SECONDS = 3600
RETRIES = 4


def bucket_of(now: dt.datetime) -> dt.datetime:
    seconds = int(now.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def count(session: Session, kind: str, now: dt.datetime | None = None) -> None:
    """Add one to this hour's counter for ``kind``, inside the caller's transaction."""
    bucket = bucket_of(now or utcnow())
    kind = kind[:64]
    for _attempt in range(RETRIES):
        changed = session.execute(
            update(RefusalCount)
            .where(RefusalCount.bucket == bucket, RefusalCount.kind == kind)
            .values(count=RefusalCount.count + 1)
            .execution_options(synchronize_session=False))
        if int(getattr(changed, "rowcount", 0) or 0):
            return
        try:
            with session.begin_nested():
                session.execute(insert(RefusalCount).values(bucket=bucket, kind=kind, count=1))
            return
        except IntegrityError:
            continue  # another request opened the bucket first: add to it
    raise RuntimeError("refusal counter is too busy")


def record(database: Database, kind: str) -> None:
    """Count a refusal in a transaction of its own (the request's is rolled back)."""
    now = utcnow()
    run_after_request(database, lambda session: count(session, kind, now))


def recent(session: Session, since: dt.datetime, limit: int = 200) -> list[RefusalCount]:
    return list(session.scalars(
        select(RefusalCount).where(RefusalCount.bucket >= bucket_of(since))
        .order_by(RefusalCount.bucket.desc(), RefusalCount.kind).limit(limit)))
