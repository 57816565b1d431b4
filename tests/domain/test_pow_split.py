"""Split stamps: many small puzzles adding up to the same expected work, spent by challenge."""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics

import pytest
from sqlalchemy.orm import Session

from service.client import solve_pow
from service.domain.pow import (
    MAX_STAMP_LENGTH,
    PowInvalid,
    ProofOfWork,
    leading_zero_bits,
    puzzle_shape,
    spend,
)

KEY = "test-secret-key-not-for-production"
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def counters_for(challenge: str, bits: int, index: int, how_many: int) -> list[str]:
    """The first ``how_many`` solutions of puzzle ``index``."""
    found: list[str] = []
    counter = 0
    while len(found) < how_many:
        digest = hashlib.sha256(f"{challenge}:{index}:{counter}".encode()).digest()
        if leading_zero_bits(digest) >= bits:
            found.append(str(counter))
        counter += 1
    return found


def test_shape_keeps_the_expected_work() -> None:
    for difficulty in range(0, 40):
        puzzles, bits = puzzle_shape(difficulty)
        assert puzzles * 2**bits == 2**difficulty
    assert puzzle_shape(18) == (64, 12)
    assert puzzle_shape(3) == (8, 0)


def test_split_stamp_accepted_and_fits(session: Session) -> None:
    proof = ProofOfWork(KEY, 10)
    issued = proof.issue(T0)
    stamp = solve_pow(issued["challenge"], issued["difficulty"])
    assert stamp.rpartition(":")[2].count(".") == issued["puzzles"] - 1
    assert len(stamp) <= MAX_STAMP_LENGTH
    digest, expires_at = proof.verify(stamp, T0)
    spend(session, digest, expires_at, granularity_seconds=1)


def test_one_unsolved_puzzle_or_wrong_count_refused() -> None:
    proof = ProofOfWork(KEY, 10)
    challenge = proof.issue(T0)["challenge"]
    stamp = solve_pow(challenge, 10)
    counters = stamp.rpartition(":")[2].split(".")
    for index in (0, 31, 63):
        wrong = list(counters)
        counter = 0
        while True:  # a counter that does not solve puzzle `index`
            digest = hashlib.sha256(f"{challenge}:{index}:{counter}".encode()).digest()
            if leading_zero_bits(digest) < 4:
                break
            counter += 1
        wrong[index] = str(counter)
        with pytest.raises(PowInvalid):
            proof.verify(f"{challenge}:{'.'.join(wrong)}", T0)
    # Too few, too many, empty or swapped puzzles.
    for answer in (counters[:-1], [*counters, counters[0]], [*counters[:-1], ""],
                   [counters[1], counters[0], *counters[2:]]):
        if answer[:2] == [counters[1], counters[0]] and counters[0] == counters[1]:
            continue
        with pytest.raises(PowInvalid):
            proof.verify(f"{challenge}:{'.'.join(answer)}", T0)


def test_a_second_solution_of_one_puzzle_is_no_new_stamp(session: Session) -> None:
    # The attack: solve all 64 puzzles once, then for 1/64 of the work find another counter
    # for puzzle 0 and present it as a fresh stamp. Spent by challenge, it is refused.
    proof = ProofOfWork(KEY, 10)
    challenge = proof.issue(T0)["challenge"]
    _, bits = puzzle_shape(10)
    stamp = solve_pow(challenge, 10)
    counters = stamp.rpartition(":")[2].split(".")
    other = counters_for(challenge, bits, 0, 2)[1]
    assert other != counters[0]
    forged = f"{challenge}:{'.'.join([other, *counters[1:]])}"
    first = proof.verify(stamp, T0)
    second = proof.verify(forged, T0)  # the work checks out...
    spend(session, *first, granularity_seconds=1)
    with pytest.raises(PowInvalid):  # ...but the challenge is used up
        spend(session, *second, granularity_seconds=1)


def test_old_single_counter_stamps_still_accepted(session: Session) -> None:
    proof = ProofOfWork(KEY, 8)
    challenge = proof.issue(T0)["challenge"]
    counter = 0
    while leading_zero_bits(hashlib.sha256(f"{challenge}:{counter}".encode()).digest()) < 8:
        counter += 1
    old = f"{challenge}:{counter}"
    digest, expires_at = proof.verify(old, T0)
    assert digest == hashlib.sha256(old.encode()).hexdigest()  # as before the split
    spend(session, digest, expires_at, granularity_seconds=1)
    with pytest.raises(PowInvalid):
        spend(session, *proof.verify(old, T0), granularity_seconds=1)


def test_split_work_varies_little() -> None:
    # Tries needed by 40 stamps at 12 bits: one puzzle's count is geometric (standard
    # deviation about the mean); 64 puzzles of 6 bits add up to about mean/8.
    whole, split = [], []
    for n in range(40):
        challenge = f"variance-{n}"
        whole.append(int(counters_for(challenge + "w", 12, 0, 1)[0]) + 1)
        split.append(sum(int(counters_for(challenge, 6, i, 1)[0]) + 1 for i in range(64)))
    assert statistics.pstdev(split) / statistics.mean(split) < 0.3
    assert statistics.pstdev(whole) / statistics.mean(whole) > 0.5
