"""Proof-of-work stamps, solved for real at low difficulty, spent on the real database."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.domain.models import SpentStamp
from service.domain.pow import (
    SALT,
    PowInvalid,
    ProofOfWork,
    leading_zero_bits,
    purge_spent,
    spend,
)
from service.platform.errors import ChuishaoError

KEY = "test-secret-key-not-for-production"
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def solve(challenge: str, difficulty: int) -> str:
    counter = 0
    while True:
        stamp = f"{challenge}:{counter}"
        if leading_zero_bits(hashlib.sha256(stamp.encode()).digest()) >= difficulty:
            return stamp
        counter += 1


def failing(challenge: str, difficulty: int) -> str:
    """A well-formed stamp that does not do the work."""
    counter = 0
    while True:
        stamp = f"{challenge}:{counter}"
        if leading_zero_bits(hashlib.sha256(stamp.encode()).digest()) < difficulty:
            return stamp
        counter += 1


@pytest.fixture(scope="module")
def pow8() -> ProofOfWork:
    return ProofOfWork(KEY, 8)


@pytest.fixture(scope="module")
def stamp(pow8: ProofOfWork) -> str:
    return solve(pow8.issue(T0)["challenge"], 8)


def test_valid_stamp_accepted_then_replay_refused(
    pow8: ProofOfWork, stamp: str, session: Session
) -> None:
    digest, expires_at = pow8.verify(stamp, T0 + dt.timedelta(seconds=30))
    assert digest == hashlib.sha256(stamp.encode()).hexdigest()
    assert expires_at == T0 + dt.timedelta(seconds=600)
    spend(session, digest, expires_at, granularity_seconds=1)
    # Verification alone cannot tell a replay; spending again is what refuses it.
    assert pow8.verify(stamp, T0 + dt.timedelta(seconds=60))[0] == digest
    with pytest.raises(PowInvalid):
        spend(session, digest, expires_at, granularity_seconds=1)
    # The failed insert was rolled back to its savepoint: the session goes on working.
    other = solve(pow8.issue(T0)["challenge"], 8)
    spend(session, *pow8.verify(other, T0), granularity_seconds=1)
    session.flush()
    rows = session.scalars(select(SpentStamp.digest)).all()
    assert sorted(rows) == sorted([digest, hashlib.sha256(other.encode()).hexdigest()])


def test_purge_forgets_only_expired_stamps(session: Session) -> None:
    spend(session, "a" * 64, T0, granularity_seconds=1)
    spend(session, "b" * 64, T0 + dt.timedelta(minutes=10), granularity_seconds=1)
    assert purge_spent(session, T0) == 0  # expires_at is the last moment it still counts
    assert purge_spent(session, T0 + dt.timedelta(seconds=1)) == 1
    assert session.scalars(select(SpentStamp.digest)).all() == ["b" * 64]
    assert purge_spent(session, T0 + dt.timedelta(hours=1)) == 1


def test_spent_stamp_expiry_is_rounded_up_to_the_granularity(pow8: ProofOfWork,
                                                                session: Session) -> None:
    """Issue time + 600 s, kept to the second, dated the reporter's request: the kept expiry
    is the next period boundary, the same for every stamp spent in that period."""
    issued = T0 + dt.timedelta(minutes=17, seconds=23)
    kept = []
    for offset in (0, 11, 1500):
        stamp = solve(pow8.issue(issued + dt.timedelta(seconds=offset))["challenge"], 8)
        digest, expires_at = pow8.verify(stamp, issued + dt.timedelta(seconds=offset + 5))
        spend(session, digest, expires_at, granularity_seconds=3600)
        session.flush()
        kept.append(session.get(SpentStamp, digest).expires_at)
    assert kept == [T0 + dt.timedelta(hours=1)] * 3
    # Never before the stamp's own expiry: a replay is refused as long as it could be tried.
    assert all(moment >= issued + dt.timedelta(seconds=1500 + 600) for moment in kept[2:])


def test_issue_shape(pow8: ProofOfWork) -> None:
    issued = pow8.issue()
    assert set(issued) == {"challenge", "difficulty", "puzzles", "bits"}
    assert issued["difficulty"] == 8 and (issued["puzzles"], issued["bits"]) == (64, 2)
    assert ":" not in issued["challenge"] and issued["challenge"].isascii()
    assert pow8.issue()["challenge"] != issued["challenge"]  # a fresh nonce every time


def test_expired_and_future_challenges_refused(pow8: ProofOfWork, stamp: str) -> None:
    pow8.verify(stamp, T0 + dt.timedelta(seconds=600))
    with pytest.raises(PowInvalid):
        pow8.verify(stamp, T0 + dt.timedelta(seconds=601))
    pow8.verify(stamp, T0 - dt.timedelta(seconds=60))  # small clock skew between instances
    with pytest.raises(PowInvalid):
        pow8.verify(stamp, T0 - dt.timedelta(seconds=61))
    short = ProofOfWork(KEY, 8, max_age_seconds=60)
    with pytest.raises(PowInvalid):
        short.verify(stamp, T0 + dt.timedelta(seconds=61))


def test_tampered_or_foreign_signatures_refused(pow8: ProofOfWork, stamp: str) -> None:
    challenge, _, _ = stamp.rpartition(":")
    body, _, signature = challenge.rpartition(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    forged = [
        f"{body}.{flipped}",
        f"{body}.",
        body,
        URLSafeSerializer("another-key", salt=SALT).dumps(["n", 8, int(T0.timestamp())]),
        # Same key, another purpose: one salt per purpose keeps tokens apart.
        URLSafeSerializer(KEY, salt="chuishao.csrf", signer_kwargs={
            "digest_method": hashlib.sha256}).dumps(["n", 8, int(T0.timestamp())]),
    ]
    for challenge in forged:
        with pytest.raises(PowInvalid):
            pow8.verify(solve(challenge, 8), T0)
    with pytest.raises(PowInvalid):
        ProofOfWork("another-key", 8).verify(stamp, T0)


def test_signed_but_malformed_payloads_refused(pow8: ProofOfWork) -> None:
    signer = URLSafeSerializer(KEY, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})
    now = int(T0.timestamp())
    for payload in ({"n": "x"}, ["n", 8], ["n", "8", now], ["n", True, now], [1, 8, now],
                    ["n", 8, 10**20], ["n", 8, -(10**20)], ["n", 65, now], None, "text"):
        with pytest.raises(PowInvalid):
            pow8.verify(solve(signer.dumps(payload), 8), T0)


def test_difficulty_rules() -> None:
    easy, hard = ProofOfWork(KEY, 4), ProofOfWork(KEY, 8)
    weak = solve(easy.issue(T0)["challenge"], 4)
    while leading_zero_bits(hashlib.sha256(weak.encode()).digest()) >= 8:
        weak = solve(easy.issue(T0)["challenge"], 4)
    easy.verify(weak, T0)
    with pytest.raises(PowInvalid):  # the setting was raised after the challenge was issued
        hard.verify(weak, T0)
    strong = solve(hard.issue(T0)["challenge"], 8)
    easy.verify(strong, T0)  # a harder challenge still counts after the setting was lowered
    with pytest.raises(PowInvalid):  # the work must match the challenge's own difficulty
        easy.verify(failing(hard.issue(T0)["challenge"], 8), T0)
    with pytest.raises(PowInvalid):
        hard.verify(failing(hard.issue(T0)["challenge"], 8), T0)
    zero = ProofOfWork(KEY, 0)
    zero.verify(zero.issue(T0)["challenge"] + ":0", T0)


def test_malformed_stamps_refused(pow8: ProofOfWork, stamp: str) -> None:
    challenge, _, counter = stamp.rpartition(":")
    bad: list[object] = [
        "", ":", "::", ":0", "no colon at all", challenge, challenge + ":",
        challenge + ":" + "9" * 21, challenge + ":-1", challenge + ":+1", challenge + ": 1",
        challenge + ":1 ", challenge + ":1e3", challenge + ":１", challenge + ":\u0661",
        challenge + ":" + counter + ":" + counter, "挑战:1", challenge + "é:" + counter,
        "x" * 10_000, challenge + ":" + "0" * 10_000, (challenge + ":") * 400 + counter,
        None, b"bytes:1", 12,
    ]
    for value in bad:
        with pytest.raises(PowInvalid):
            pow8.verify(value, T0)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_random_stamps_only_ever_raise_pow_invalid(pow8: ProofOfWork, text: str) -> None:
    with pytest.raises(PowInvalid):
        pow8.verify(text, T0)


def test_error_and_arguments() -> None:
    assert issubclass(PowInvalid, ChuishaoError)
    error = PowInvalid()
    assert error.status == 400 and error.code == "pow_invalid"
    assert "reload the page" in error.message
    for difficulty in (-1, 65):
        with pytest.raises(ValueError):
            ProofOfWork(KEY, difficulty)
    with pytest.raises(ValueError):
        ProofOfWork(KEY, 8, max_age_seconds=0)
    with pytest.raises(ValueError):
        ProofOfWork(KEY, 8).issue(dt.datetime(2026, 1, 1))  # naive on purpose
