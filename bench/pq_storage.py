"""Key-slot bytes and database growth per case, before and after v2 sealing, with a floor.

Each run stores N reports through the no-JavaScript path's steps (serverseal.channel_info,
sealing.seal_submission, intake.parse_envelope and create_submission) into a fresh, migrated
SQLite database, on a channel of R reviewers:

- before: an installation without the recovery key's X-Wing part (every installation until
  `chuishao recovery add-pq`, the same slots as the previous version): every slot v1;
- after: with it: the recovery slot v2; the reviewers' (X25519 keys) and reporter's v1;
- reporter v2 too: the reporter's slot v2 as well (what the server path seals now);
- reviewers v2 too: every reviewer's account has its X-Wing pair (after each signed in once
  in a browser with the hybrid): every slot v2, the case no longer classical-only.

Ours is the bytes of the key_slots rows' `slot` column per case, and the database file's
growth per case after VACUUM; the floor is the sum of the bare crypto.seal_key /
crypto.seal_key_v2 outputs for the same recipients. Sealing time per case is also printed
(median, includes the receipt derivation at the iterations given).

Usage: python bench/pq_storage.py [--cases 200] [--reviewers 2] [--iterations 1000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402
from starlette.datastructures import Secret  # noqa: E402

import crypto  # noqa: E402
from service.domain import channels, installation, intake, sealing, serverseal  # noqa: E402
from service.domain.models import ChannelRecipient, KeySlot, User, utcnow  # noqa: E402
from service.platform import migrate  # noqa: E402
from service.platform.db import Database  # noqa: E402
from service.platform.settings import Settings  # noqa: E402

REPORT = {"v": 1, "unit": "某某机械制造有限公司", "location": "三号车间冲压线东侧",
          "category": "hazard", "description": "冲压机光电保护装置被拆除已两周。" * 10,
          "seen_at": "", "insider": "", "language": "zh_CN"}


def run(directory: Path, cases: int, reviewers: int, iterations: int, pq: bool,
        reporter_v2: bool, reviewers_v2: bool = False) -> dict:
    settings = Settings(data_dir=directory, secret_key=Secret("bench-secret-key-not-real"),
                        base_url="http://127.0.0.1", receipt_iterations=iterations,
                        password_iterations=1000, scrypt_n=2**10, pow_difficulty=0)
    url = f"sqlite:///{directory / 'bench.sqlite3'}"
    migrate.upgrade(url)
    database = Database.from_url(url)
    with database.session() as session:
        installation.initialise(session, settings)
        if not pq:
            row = installation.get_installation(session)
            row.recovery_xwing_public_key = row.recovery_xwing_key_id = None
        channel = channels.add_channel(session, slug="acme", kind="enterprise", name_zh="某厂")
        for i in range(reviewers):
            _private, public = crypto.generate_keypair()
            user = User(username=f"r{i}", display_name=f"r{i}", roles="reviewer", active=True,
                        user_salt=os.urandom(16), auth_hash="x", public_key=public,
                        key_id=crypto.key_id(public).hex(), wrapped_private_key=b"\x01" * 77,
                        totp_last_step=0, created_at=utcnow())
            if reviewers_v2:
                _seed, xwing = crypto.generate_xwing_keypair()
                user.xwing_public_key, user.xwing_key_id = xwing, crypto.key_id(xwing).hex()
                user.wrapped_xwing_seed = b"\x02" * crypto.XWING_WRAPPED_SIZE
            session.add(user)
            session.flush()
            session.add(ChannelRecipient(channel_id=channel.id, user_id=user.id,
                                         created_at=utcnow()))
    with database.session() as session:
        salt = installation.get_installation(session).salt
    path = directory / "bench.sqlite3"
    vacuum(path)
    empty = path.stat().st_size
    times = []
    for _ in range(cases):
        start = time.perf_counter()
        with database.session() as session:
            info = serverseal.channel_info(session, "acme", v2_only=False)
            sealed = sealing.seal_submission(info, salt, iterations, REPORT, None, [],
                                             reporter_v2=reporter_v2)
            intake.create_submission(session, settings,
                                     intake.parse_envelope(sealed.envelope, settings),
                                     sealed_on_server=True)
        times.append(time.perf_counter() - start)
    with database.session() as session:
        slot_bytes = session.scalar(select(func.sum(func.length(KeySlot.slot))))
        suites = dict(session.execute(select(KeySlot.suite, func.count())
                                      .group_by(KeySlot.suite)).all())
    database.dispose()
    vacuum(path)
    grown = path.stat().st_size - empty
    per_case = {suite: count // cases for suite, count in suites.items()}
    floor = sum(count * (crypto.SLOT_SIZE if suite == crypto.SUITE else crypto.SLOT_SIZE_V2)
                for suite, count in per_case.items())
    return {"slots": per_case, "slot_bytes": slot_bytes / cases, "floor": floor,
            "db_bytes": grown / cases, "seal_ms": statistics.median(times) * 1000}


def vacuum(path: Path) -> None:
    # Checkpointed and compacted, so file sizes compare what the rows take.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
    conn.close()


def bare_floor(reviewers: int) -> tuple[int, int, int, int]:
    """The bare crypto calls' output for the same recipients in each configuration."""
    case_id, key = crypto.new_id(), crypto.new_key()
    v1 = len(crypto.seal_key(key, crypto.generate_keypair()[1], case_id))
    v2 = len(crypto.seal_key_v2(key, crypto.generate_xwing_keypair()[1], case_id))
    return ((reviewers + 2) * v1, (reviewers + 1) * v1 + v2, reviewers * v1 + 2 * v2,
            (reviewers + 2) * v2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--reviewers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    floors = bare_floor(args.reviewers)
    configs = (("before (v1 only)", False, False, False),
               ("after (recovery v2)", True, False, False),
               ("reporter v2 too", True, True, False), ("reviewers v2 too", True, True, True))
    results = {}
    for name, pq, reporter_v2, reviewers_v2 in configs:
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = run(Path(tmp), args.cases, args.reviewers, args.iterations, pq,
                                reporter_v2, reviewers_v2)
    print(f"{args.cases} cases, {args.reviewers} reviewers + recovery + reporter, SQLite, "
          f"receipt iterations {args.iterations}")
    print(f"{'':26} {'slots/case':>12} {'slot B/case':>12} {'floor B':>8} "
          f"{'DB B/case':>10} {'seal+store ms':>14}")
    for (name, result), floor in zip(results.items(), floors, strict=True):
        assert result["floor"] == floor, (result, floor)
        slots = " + ".join(f"{n}×{'v2' if s == crypto.SUITE_V2 else 'v1'}"
                           for s, n in sorted(result["slots"].items(), reverse=True))
        print(f"{name:26} {slots:>12} {result['slot_bytes']:>12.0f} {floor:>8} "
              f"{result['db_bytes']:>10.0f} {result['seal_ms']:>14.2f}")
    base = results["before (v1 only)"]
    for name, result in list(results.items())[1:]:
        print(f"{name}: slots +{result['slot_bytes'] - base['slot_bytes']:.0f} B/case, "
              f"database +{result['db_bytes'] - base['db_bytes']:.0f} B/case")

if __name__ == "__main__":
    main()
