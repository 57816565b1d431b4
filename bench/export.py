"""Reward-ledger exports: time and peak memory of the streamed CSV and XLSX exports of
100 000 records, against floors measured in the same run.

Seeds N reward records (and their cases) in a temporary SQLite database, then runs every
measurement in a fresh subprocess so that ru_maxrss belongs to that measurement alone:

- ours:   service/domain/exports.py as the console runs it (export row and audit entry, rows read in
          keyset batches, CSV written batch by batch / XLSX by openpyxl write-only into a
          temporary file, every byte hashed, the manifest signed at the end);
- floor:  the same rows already in a Python list, written with csv.writer / openpyxl
          write-only directly: its time is the bare writers' alone (the list is built before
          the clock starts); its memory includes the list, as an unstreamed export would;
- small:  ours on a second database of N/10 records: if memory is flat, its peak is about
          the same.

Time and ru_maxrss come from a run without tracemalloc (it slows Python down several times);
the tracemalloc peak from a second run. Prints a table and the ratios.

Usage: python bench/export.py [--records 100000] [--formats csv,xlsx]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from starlette.datastructures import Secret  # noqa: E402

import crypto  # noqa: E402
from service.domain import (  # noqa: E402
    channels,
    exports,
    installation,
    reward_ledger,
    reward_policies,
)
from service.domain.models import Case, User, utcnow  # noqa: E402
from service.domain.models.rewards import RewardRecord  # noqa: E402
from service.domain.rewards import RewardInputs, calculate, load_policy  # noqa: E402
from service.platform import migrate  # noqa: E402
from service.platform.db import Database  # noqa: E402
from service.platform.settings import Settings  # noqa: E402

MiB = 1024 * 1024


def settings_for(directory: Path) -> Settings:
    return Settings(data_dir=directory / "var", database_url=f"sqlite:///{directory / 'b.db'}",
                    secret_key=Secret("bench-export"), receipt_iterations=1000)


def seed(directory: Path, records: int) -> None:
    settings = settings_for(directory)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database)
    database = Database.from_url(settings.database)
    policy = load_policy("national-2018")
    calc = calculate(policy, RewardInputs(case_type="hazard", grade="major",
                                          fine_fen=123_456_789, insider=True))
    with database.session() as session:
        installation.initialise(session, settings)
        channel = channels.add_channel(session, slug="acme", kind="enterprise",
                                       name_zh="某机械厂内部举报", name_en="ACME")
        private, public = crypto.generate_keypair()
        user = User(username="reviewer", display_name="审核员", roles="reviewer approver",
                    user_salt=os.urandom(16), auth_hash="-", public_key=public,
                    key_id=crypto.key_id(public).hex(), wrapped_private_key=b"\x01" * 77,
                    created_at=utcnow())
        session.add(user)
        session.flush()
        reward_policies.ensure_shipped(session)
        row_id = next(r.id for r in reward_policies.policy_rows(session)
                      if r.policy_id == "national-2018")
        channel_id, user_id = channel.id, user.id
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    text = calc.to_json()
    batch = 5000
    with database.session() as session:
        for first in range(0, records, batch):
            ids = [os.urandom(16).hex() for _ in range(min(batch, records - first))]
            when = [start + dt.timedelta(minutes=first + i) for i in range(len(ids))]
            session.execute(insert(Case), [{
                "id": case_id, "channel_id": channel_id, "created_at": t, "updated_at": t,
                "status": "closed", "lookup_hash": hashlib.sha256(case_id.encode()).hexdigest(),
                "ready": True, "verification_result": "true", "grade": "major",
                "first_valid": True} for case_id, t in zip(ids, when, strict=True)])
            session.execute(insert(RewardRecord), [{
                "id": os.urandom(16).hex(), "case_id": case_id, "channel_id": channel_id,
                "policy_row_id": row_id, "policy_id": calc.policy_id,
                "policy_version": calc.policy_version, "policy_digest": calc.policy_digest,
                "amount_fen": calc.amount_fen, "calculation": text, "status": "paid",
                "version": 4, "proposed_by": user_id, "proposed_at": t, "decided_by": user_id,
                "decided_at": t, "rejection_reason": "", "claim_due_at": t,
                "claimed_at": t, "claim_sealed_on_server": False, "paid_by": user_id,
                "paid_at": t, "payment_reference": f"转账-{first + i:06d}"}
                for i, (case_id, t) in enumerate(zip(ids, when, strict=True))])
    database.dispose()
    del private


# ---------------------------------------------------------------------------- one measurement


def _ours(directory: Path, fmt: str) -> dict[str, Any]:
    settings = settings_for(directory)
    database = Database.from_url(settings.database)
    filters = reward_ledger.LedgerFilters()
    with database.session() as session:
        export_id = exports.start_export(session, None, fmt, filters, via="bench").id
    digest, size = hashlib.sha256(), 0
    for chunk in exports.stream_export(database, settings, export_id):
        digest.update(chunk)
        size += len(chunk)
    with database.session() as session:
        from service.domain.models.rewards import RewardExport

        count = session.get(RewardExport, export_id).record_count  # type: ignore[union-attr]
    database.dispose()
    return {"records": count, "bytes": size}


def _floor_rows(directory: Path) -> list[tuple[Any, ...]]:
    settings = settings_for(directory)
    database = Database.from_url(settings.database)
    with database.session() as session:
        rows = list(exports.iter_rows(session, reward_ledger.LedgerFilters()))
    database.dispose()
    return rows


def _floor_write(rows: list[tuple[Any, ...]], fmt: str) -> int:
    if fmt == "csv":
        class Sink:
            size = 0

            def write(self, text: str) -> None:
                Sink.size += len(text.encode("utf-8"))

        writer = csv.writer(Sink(), lineterminator="\r\n")
        writer.writerow(exports.header())
        writer.writerows(rows)
        return Sink.size
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("rewards")
    sheet.append(exports.header())
    for row in rows:
        sheet.append(row)
    with tempfile.TemporaryFile() as handle:
        workbook.save(handle)
        return handle.tell()


def measure(directory: Path, kind: str, fmt: str, traced: bool) -> dict[str, Any]:
    """kind: ours | small | floor. The floor's list is built before its clock starts, but
    inside the tracer: holding every row is the memory an unstreamed export needs."""
    from openpyxl import Workbook  # noqa: F401 - imported before the clock and the tracer

    if traced:
        tracemalloc.start()
    rows = _floor_rows(directory) if kind == "floor" else None
    started = time.perf_counter()
    if kind == "floor":
        assert rows is not None
        result = {"records": len(rows), "bytes": _floor_write(rows, fmt)}
    else:
        result = _ours(directory / "small" if kind == "small" else directory, fmt)
    result["seconds"] = time.perf_counter() - started
    if traced:
        result["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    result["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def run_child(directory: Path, kind: str, fmt: str, traced: bool) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", str(directory), kind, fmt,
                           "1" if traced else "0"], capture_output=True, text=True,
                          check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        directory, kind, fmt, traced = args.child
        print(json.dumps(measure(Path(directory), kind, fmt, traced == "1")))
        return 0
    small = max(args.records // 10, 1)
    with tempfile.TemporaryDirectory(prefix="chuishao-bench-export-") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        seed(directory, args.records)
        (directory / "small").mkdir()
        seed(directory / "small", small)
        print(f"seeded {args.records} (and {small}) reward records in "
              f"{time.perf_counter() - started:.1f} s "
              f"(SQLite, {(directory / 'b.db').stat().st_size / MiB:.0f} MiB)")
        print(f"{'format':6} {'run':6} {'records':>8} {'seconds':>8} {'MB/s':>6} "
              f"{'traced peak':>12} {'max RSS':>9}  file")
        table: dict[tuple[str, str], dict[str, Any]] = {}
        for fmt in args.formats.split(","):
            for kind in ("ours", "small", "floor"):
                timed = run_child(directory, kind, fmt, False)
                traced = run_child(directory, kind, fmt, True)
                timed["traced_peak"] = traced["traced_peak"]
                table[(fmt, kind)] = timed
                print(f"{fmt:6} {kind:6} {timed['records']:>8} {timed['seconds']:>8.2f} "
                      f"{timed['bytes'] / MiB / timed['seconds']:>6.1f} "
                      f"{timed['traced_peak'] / MiB:>9.1f} MiB {timed['maxrss'] / MiB:>5.0f} MiB"
                      f"  {timed['bytes'] / MiB:.1f} MiB", flush=True)
        print()
        for fmt in args.formats.split(","):
            ours, little, floor = (table[(fmt, k)] for k in ("ours", "small", "floor"))
            print(f"{fmt}: time ours/floor = {ours['seconds'] / floor['seconds']:.2f}; "
                  f"traced peak ours/floor = {ours['traced_peak'] / floor['traced_peak']:.3f}; "
                  f"traced peak {args.records}/{small} records = "
                  f"{ours['traced_peak'] / little['traced_peak']:.2f} (1.0 = flat); "
                  f"max RSS ours/floor = {ours['maxrss'] / floor['maxrss']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
