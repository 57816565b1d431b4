"""Proof-of-work stamps: anonymous abuse control that needs no identity and no address.

The server hands out a signed challenge (a random nonce, the difficulty, the issue time). The
work is split into many small puzzles (static/js/pow.js, docs/API.md §3.2): for a difficulty
of d bits, 2^m puzzles of d - m bits each (m = min(SPLIT_BITS, d)), puzzle i solved by a
counter such that SHA-256(challenge ":" i ":" counter) starts with d - m zero bits. The
expected work is the same 2^d hashes as one puzzle of d bits, but a sum of 64 geometric
draws varies little (a standard deviation of 1/8 of the mean instead of the mean itself),
so no reporter draws a wait three times the average. The first format, one counter with
SHA-256(challenge ":" counter) of d zero bits, is still accepted from older clients.

Nothing is stored at issue time, so handing out challenges costs no database write; a stamp is
stored only when spent, and only until its challenge would have expired anyway, which is all
replay protection needs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any, cast

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import CursorResult, delete
from sqlalchemy.orm import Session

from service.domain.models import SpentStamp, ceil_time, table_of
from service.platform.db import insert_new
from service.platform.errors import ChuishaoError
from service.platform.i18n import N_

SALT = "chuishao.pow"
# A challenge is ~90 characters and a split stamp adds 64 counters of at most 20 digits;
# anything longer is refused before it is parsed.
MAX_STAMP_LENGTH = 1536
# The work is split into 2**SPLIT_BITS puzzles (fewer for a tiny difficulty).
SPLIT_BITS = 6
MAX_COUNTER_DIGITS = 20
# Several app instances may disagree slightly about the time.
CLOCK_SKEW = dt.timedelta(seconds=60)
MAX_DIFFICULTY = 64


class PowInvalid(ChuishaoError):
    status = 400
    code = "pow_invalid"
    message = N_("The anti-abuse check failed or expired. Please reload the page and try again.")


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime refused; use timezone-aware UTC")
    return now.astimezone(dt.UTC)


def leading_zero_bits(digest: bytes) -> int:
    return len(digest) * 8 - int.from_bytes(digest, "big").bit_length()


def puzzle_shape(difficulty: int) -> tuple[int, int]:
    """(number of puzzles, zero bits each) for a difficulty: same expected work, 2**difficulty."""
    split = min(SPLIT_BITS, difficulty)
    return 2**split, difficulty - split


def _counter(text: str) -> bool:
    return 0 < len(text) <= MAX_COUNTER_DIGITS and text.isascii() and text.isdigit()


class ProofOfWork:
    def __init__(self, secret_key: str, difficulty: int, max_age_seconds: int = 600) -> None:
        if not 0 <= difficulty <= MAX_DIFFICULTY:
            raise ValueError(f"difficulty must be between 0 and {MAX_DIFFICULTY} bits")
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self.difficulty = difficulty
        self.max_age = dt.timedelta(seconds=max_age_seconds)
        # itsdangerous compares signatures in constant time; SHA-256 instead of its SHA-1 default.
        self._serializer = URLSafeSerializer(
            secret_key, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    def issue(self, now: dt.datetime | None = None) -> dict[str, Any]:
        issued = int(_utc(now).timestamp())
        token = self._serializer.dumps([secrets.token_urlsafe(16), self.difficulty, issued])
        puzzles, bits = puzzle_shape(self.difficulty)
        return {"challenge": token, "difficulty": self.difficulty, "puzzles": puzzles,
                "bits": bits}

    def verify(self, stamp: str, now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
        """Check a stamp; return (SHA-256 hex of the stamp, when it may be forgotten)."""
        moment = _utc(now)
        if (not isinstance(stamp, str) or len(stamp) > MAX_STAMP_LENGTH
                or not stamp.isascii()):
            raise PowInvalid()
        challenge, colon, answer = stamp.rpartition(":")
        counters = answer.split(".")
        if not colon or not challenge or not all(_counter(c) for c in counters):
            raise PowInvalid()
        try:
            payload = self._serializer.loads(challenge)
        except BadData as exc:
            raise PowInvalid() from exc
        if (not isinstance(payload, list) or len(payload) != 3
                or not isinstance(payload[0], str)
                or type(payload[1]) is not int or type(payload[2]) is not int):
            raise PowInvalid()
        _nonce, difficulty, issued_ts = payload
        try:
            issued = dt.datetime.fromtimestamp(issued_ts, dt.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise PowInvalid() from exc
        if moment - issued > self.max_age or issued - moment > CLOCK_SKEW:
            raise PowInvalid()
        # A challenge issued before the difficulty was raised no longer counts.
        if difficulty < self.difficulty or difficulty > MAX_DIFFICULTY:
            raise PowInvalid()
        if len(counters) == 1:
            # The first format: one puzzle of the whole difficulty. Another counter for the
            # same challenge costs the whole work again, so the stamp itself is what is spent.
            digest = hashlib.sha256(stamp.encode("utf-8")).digest()
            if leading_zero_bits(digest) < difficulty:
                raise PowInvalid()
            return digest.hex(), issued + self.max_age
        puzzles, bits = puzzle_shape(difficulty)
        if len(counters) != puzzles:
            raise PowInvalid()
        for index, counter in enumerate(counters):
            digest = hashlib.sha256(f"{challenge}:{index}:{counter}".encode()).digest()
            if leading_zero_bits(digest) < bits:
                raise PowInvalid()
        # Split stamps are spent by their challenge: a second solution of one small puzzle
        # would otherwise make a "new" stamp for 1/64 of the work.
        spent = hashlib.sha256(b"chuishao/pow/split\0" + challenge.encode()).digest()
        return spent.hex(), issued + self.max_age


def upload_difficulty(base: int, free_bytes: int, declared_bytes: int) -> int:
    """The difficulty a stamp needs to upload ``declared_bytes``: one more bit (twice the
    work) each time the size doubles beyond ``free_bytes``, so the work grows in proportion
    to what the upload asks the server to store."""
    if declared_bytes <= free_bytes:
        return base
    extra = (-(-declared_bytes // free_bytes) - 1).bit_length()  # ceil(log2(size / free))
    return min(MAX_DIFFICULTY, base + extra)


def spend(session: Session, digest: str, expires_at: dt.datetime, *,
          granularity_seconds: int) -> None:
    """Record a stamp as used; a second use of the same stamp raises PowInvalid.

    The expiry is kept rounded up to the installation's time granularity: issue time plus a
    fixed age, to the second, would date the reporter's request. Kept longer, never shorter,
    so a replay is still refused until the stamp is forgotten.
    """
    expires_at = ceil_time(_utc(expires_at), granularity_seconds)
    # Core, not session.add: a duplicate must reach the database's primary key, not trip
    # over the identity map when the same session spent it before.
    if not insert_new(session, table_of(SpentStamp), {"digest": digest,
                                                      "expires_at": expires_at}):
        raise PowInvalid()


def purge_spent(session: Session, now: dt.datetime) -> int:
    """Forget stamps whose challenges have expired; they could not be replayed anyway."""
    result = session.execute(delete(SpentStamp).where(SpentStamp.expires_at < _utc(now)))
    return cast(CursorResult[Any], result).rowcount
