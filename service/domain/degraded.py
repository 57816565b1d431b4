"""Reading needs no write: opening a follow-up session while storage cannot be written.

Opening a session spends a proof-of-work stamp, and a spent stamp is a database write. On a
full disk or a read-only database that write fails; without this module no reporter could
read the replies they are waiting for, although the database can still be read.

The stamp is committed on its own, before the receipt is tried, so that whether the write
works is known before the answer is given. When it fails because of storage, the stamp is
*held* instead: kept in this process's memory until it expires or the database can record
it again. A held stamp is refused a second time like a recorded one, and each session opened
this way also takes a token from the global follow-up bucket that already guards the
no-JavaScript follow-up form (which spends no stamp at all). So a read-only moment costs
no more guesses at receipts than the no-JavaScript path always allows, and no replay within
this process. What it cannot cover, and docs/THREAT-MODEL.md says so: a stamp held by one
instance can be spent once more on another instance, or after a restart, until it expires
(ten minutes), each such use still taking that instance's bucket.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain import pow
from service.domain.models import SpentStamp, utcnow
from service.domain.ratelimit import TokenBucket
from service.domain.storage import Watch
from service.platform.db import Database, run_after_request
from service.platform.errors import storage_cause

# Follow-up sessions a process opens on held stamps per hour, all visitors together.
HELD_SESSIONS_PER_HOUR = 600


class HeldStamps:
    """Stamps spent while the database could not record them (this process only)."""

    def __init__(self, granularity_seconds: int) -> None:
        # Recorded expiries are rounded like every other stamp's (pow.spend).
        self.granularity_seconds = granularity_seconds
        self._held: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def _forget_expired(self) -> None:
        now = utcnow()
        for digest in [d for d, expires in self._held.items() if expires < now]:
            del self._held[digest]

    def holds(self, digest: str) -> bool:
        with self._lock:
            self._forget_expired()
            return digest in self._held

    def hold(self, digest: str, expires_at: dt.datetime) -> bool:
        """Hold a stamp; False when it is held already (a replay)."""
        with self._lock:
            self._forget_expired()
            if digest in self._held:
                return False
            self._held[digest] = expires_at
            return True

    def record(self, session: Session) -> list[str]:
        """Write the held stamps in ``session``'s transaction; ``forget`` them once committed."""
        with self._lock:
            self._forget_expired()
            pending = dict(self._held)
        for digest, expires_at in pending.items():
            with contextlib.suppress(pow.PowInvalid):  # recorded already, by another instance
                pow.spend(session, digest, expires_at,
                          granularity_seconds=self.granularity_seconds)
        return list(pending)

    def forget(self, digests: list[str]) -> None:
        with self._lock:
            for digest in digests:
                self._held.pop(digest, None)

    def flush(self, database: Database) -> None:
        """Record what is held, now that the database takes writes again."""
        if not self._held:
            return
        with database.session() as session:
            recorded = self.record(session)
        self.forget(recorded)


def refuse_held(held: HeldStamps, digest: str) -> None:
    """A stamp held while storage failed is as spent as a recorded one."""
    if held.holds(digest):
        raise pow.PowInvalid()


def spend_for_reading(session: Session, held: HeldStamps, bucket: TokenBucket, watch: Watch,
                      digest: str, expires_at: dt.datetime) -> None:
    """Spend a stamp for a request that only reads, committed before it reads.

    If storage refuses the write, the stamp is held (see the module's docstring) and the
    request goes on reading; any other failure, and a replayed stamp, refuse the request.
    """
    refuse_held(held, digest)
    try:
        pow.spend(session, digest, expires_at, granularity_seconds=held.granularity_seconds)
        recorded = held.record(session)
        session.commit()
        held.forget(recorded)
        return
    except pow.PowInvalid:
        raise
    except Exception as exc:
        cause = storage_cause(exc)
        if cause is None:
            raise
        session.rollback()
        watch.failed(cause)
    if session.scalar(select(SpentStamp.digest).where(SpentStamp.digest == digest)):
        raise pow.PowInvalid()
    bucket.take()
    if not held.hold(digest, expires_at):
        raise pow.PowInvalid()


def spend_stamp(database: Database, session: Session, proof: pow.ProofOfWork, held: HeldStamps,
                stamp: object, *, granularity_seconds: int) -> None:
    """Use up a proof-of-work stamp, in a transaction of its own.

    The request's transaction is rolled back when the request is refused; a stamp spent in
    it would come back to life and could be replayed against, say, receipt guesses.
    """
    if not isinstance(stamp, str):
        raise pow.PowInvalid()
    digest, expires_at = proof.verify(stamp)
    refuse_held(held, digest)
    pow.spend(session, digest, expires_at, granularity_seconds=granularity_seconds)

    def spend_again(later: Session) -> None:
        # The request was refused and its transaction rolled back: spend the stamp anyway.
        with contextlib.suppress(pow.PowInvalid):
            pow.spend(later, digest, expires_at, granularity_seconds=granularity_seconds)

    run_after_request(database, spend_again, only_if_refused=True)
