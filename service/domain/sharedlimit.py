"""Global no-JavaScript ceilings that hold in total across every instance of one installation.

``service.domain.ratelimit.TokenBucket`` lives in one process's memory: three instances behind a
proxy would allow three times the ceiling. On PostgreSQL every instance also counts in the
shared table ``rate_windows``: one row per purpose and window, incremented in one statement
that refuses once the window's allowance is used, so the total holds whichever instance is
asked and however many ask at once (the row lock orders them).

A window is the installation's time granularity (an hour by default) and the allowance is
the hourly ceiling times the window's length in hours. Nothing finer is stored: a bucket's
"last taken at" time would be the moment of the latest no-JavaScript report, to the second.
The process's own token bucket is still asked first; it spreads a window's allowance out
so that one instance cannot spend it all in a burst.

SQLite serves one process (``chuishao serve`` refuses more): there the token bucket alone
is the ceiling, as before.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from service.domain.models import RateWindow, utcnow
from service.domain.ratelimit import TokenBucket
from service.platform.db import Database
from service.platform.errors import RateLimited, storage_cause
from service.platform.settings import Settings


def window_start(granularity_seconds: int, now: dt.datetime) -> dt.datetime:
    seconds = int(now.timestamp()) // granularity_seconds * granularity_seconds
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def allowance(per_hour: int, granularity_seconds: int) -> int:
    return max(1, math.ceil(per_hour * granularity_seconds / 3600))


class SharedLimit(TokenBucket):
    """A token bucket of this process, and a window counted for all instances together."""

    def __init__(self, purpose: str, per_hour: int, granularity_seconds: int,
                 database: Callable[[], Database],
                 now: Callable[[], dt.datetime] = utcnow) -> None:
        super().__init__(per_hour)
        self.purpose = purpose
        self.granularity = granularity_seconds
        self.allowance = allowance(per_hour, granularity_seconds)
        self.database = database
        self.now = now

    def take(self) -> None:
        super().take()
        try:
            with self.database().session() as session:
                taken = take_shared(session, self.purpose, self.allowance,
                                    window_start(self.granularity, self.now()))
        except Exception as exc:
            # Storage refuses writes (disk full): the process's bucket is all that is left;
            # service.domain.degraded decides what may still be served.
            if storage_cause(exc) is None:
                raise
            return
        if not taken:
            raise RateLimited()


def take_shared(session: Session, purpose: str, limit: int, window: dt.datetime) -> bool:
    """Count one use in ``window``; False (and nothing counted) once ``limit`` is reached."""
    statement = insert(RateWindow).values(purpose=purpose, window_start=window, used=1)
    counted = statement.on_conflict_do_update(
        index_elements=[RateWindow.purpose, RateWindow.window_start],
        set_={"used": RateWindow.used + 1},
        where=RateWindow.used < limit,
    ).returning(RateWindow.used)
    return session.execute(counted).scalar() is not None


def purge_windows(session: Session, granularity_seconds: int, now: dt.datetime) -> int:
    """Forget windows that have ended (kept one window longer, for clocks a little apart)."""
    cutoff = window_start(granularity_seconds, now) - dt.timedelta(seconds=granularity_seconds)
    result = session.execute(delete(RateWindow).where(RateWindow.window_start < cutoff))
    return int(cast(CursorResult[Any], result).rowcount)


def nojs_limit(settings: Settings, dialect: str,
               database: Callable[[], Database]) -> TokenBucket:
    """The no-JS submissions ceiling an app holds: shared by every instance on PostgreSQL.
    (No-JS follow-up look-ups have no count limit: they wait in the receipt lane.)"""
    if dialect != "postgresql":
        return TokenBucket(settings.nojs_submissions_per_hour)
    return SharedLimit("nojs-submissions", settings.nojs_submissions_per_hour,
                       settings.time_granularity_seconds, database)
