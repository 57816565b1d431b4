"""Exports of the reward ledger (CSV with a UTF-8 BOM, XLSX) and their signed manifests.

Both formats stream: rows come from the database in keyset batches of plain tuples, the CSV is
written batch by batch, and the XLSX is built by openpyxl's write-only mode into a temporary
file on disk (inline strings, no shared-string table), then sent in chunks. Memory stays flat
however many records there are (bench/export.py measures it).

The file's SHA-256 and row count are known only at its end, so the manifest is made then:
the export row is created (and audited) when the download starts, and signed with the
installation's Ed25519 key when the last byte has been produced. The manifest names the audit
entry that records the export (the chain head at that moment), so every manifest is also a
signed anchor of the audit chain for the auditor to keep. ``verify`` checks a file and its
manifest offline: the signature, the key it was made with, the hash, the size and the count.

An export that never finishes (the process killed, the download cut) must not pass for one:
the command line writes to a hidden ``.NAME.partial`` and renames it only when complete, and
an export row left ``started`` becomes ``failed``. While it runs, the exporting process holds
an exclusive lock on a file named after the export; housekeeping marks ``failed`` every
started export whose lock nobody holds (the kernel drops the lock of a killed process).

Longer than 500 lines because both formats, their shared batch reader and the signed
manifest that covers them are one promise (docs/OPERATIONS.md, exports).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import Engine, select, tuple_, update
from sqlalchemy.orm import Session, aliased

import crypto
from service.domain import audit, sheets
from service.domain.installation import canonical_json, load_signing_key
from service.domain.models import Channel, User, utcnow
from service.domain.models.rewards import RewardExport, RewardRecord
from service.domain.reward_ledger import LedgerFilters, ledger_clause
from service.domain.reward_states import STATUS_LABELS, display_status
from service.platform import localtime
from service.platform.db import IMMEDIATE, Database
from service.platform.errors import InvalidInput, NotFound
from service.platform.i18n import N_
from service.platform.settings import Settings

SCHEMA = "chuishao.export-manifest/1"
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
BATCH = 1000
CHUNK = 64 * 1024
# (key, Chinese header, English header, kind, width): zh-CN first, English second, in one
# header cell (a file has no page language). Kinds and widths: service/domain/sheets.py.
COLUMNS = (
    ("id", "记录编号", "Record id", "text", 34),
    ("case_id", "案件编号", "Case id", "text", 34),
    ("channel", "举报渠道", "Channel", "text", 16),
    ("policy_id", "奖励政策", "Policy", "text", 18),
    ("policy_version", "政策版本", "Policy version", "int", 10),
    ("policy_digest", "政策文本 SHA-256", "Policy digest", "text", 20),
    ("amount_yuan", "金额（元）", "Amount (yuan)", "yuan", 14),
    ("amount_fen", "金额（分）", "Amount (fen)", "int", 14),
    ("status", "状态", "Status", "text", 24),
    ("proposed_by", "提议人", "Proposed by", "text", 18),
    ("proposed_at", "提议时间（{zone}）", "Proposed at ({zone})", "datetime", 20),
    ("decided_by", "审批人", "Decided by", "text", 18),
    ("decided_at", "审批时间（{zone}）", "Decided at ({zone})", "datetime", 20),
    ("rejection_reason", "驳回理由", "Rejection reason", "text", 24),
    ("claim_due_at", "领取期限（{zone}）", "Claim due ({zone})", "datetime", 20),
    ("claimed_at", "领取时间（{zone}）", "Claimed at ({zone})", "datetime", 20),
    ("paid_by", "付款人", "Paid by", "text", 18),
    ("paid_at", "付款时间（{zone}）", "Paid at ({zone})", "datetime", 20),
    ("payment_reference", "付款凭证号", "Payment reference", "text", 20),
    ("calculation", "计算记录（JSON，可用 chuishao reward verify 复核）",
     "Calculation record (JSON, for chuishao reward verify)", "text", 40),
)


def sheet_columns() -> tuple[sheets.Column, ...]:
    """The columns, times labelled with the installation's zone (set when the app starts)."""
    zone = localtime.zone_label()
    return tuple(sheets.Column(f"{zh} / {en}".format(zone=zone), width, kind)
                 for _, zh, en, kind, width in COLUMNS)


def header() -> tuple[str, ...]:
    return tuple(column.header for column in sheet_columns())


# A started export with no lock file has not begun streaming yet (or was made before locks
# existed); it counts as abandoned only after this long.
UNLOCKED_GRACE = dt.timedelta(minutes=10)


class ExportInvalid(InvalidInput):
    code = "export_invalid"
    message = N_("Choose CSV or XLSX.")


# ---------------------------------------------------------------------------- rows


def _time(value: dt.datetime | None) -> dt.datetime | None:
    # In the installation's zone: the CSV writes it with its offset, the XLSX as a date.
    return localtime.local(value).replace(microsecond=0) if value else None


def _text(value: str | None) -> str:
    return value or ""


def _status(code: str) -> str:
    """A status in both languages, as the headers are."""
    label = STATUS_LABELS.get(code, code)
    return f"{sheets.translate('zh_CN', label)} / {sheets.translate('en', label)}"


def _person(username: str | None, shown: str | None) -> str:
    if not username:
        return ""
    return f"{shown} ({username})" if shown and shown != username else username


_INDENT = re.compile(r"\n *")


def _compact(calculation: str) -> str:
    # The stored record is indented JSON; one line per cell reads better. A raw newline only
    # ever appears between tokens (inside strings it is escaped), so dropping the newlines and
    # their indentation leaves the same JSON, without parsing 100 000 records.
    return _INDENT.sub("", calculation)


def iter_rows(session: Session, filters: LedgerFilters, user: User | None = None,
              now: dt.datetime | None = None, batch: int = BATCH) -> Iterator[tuple[Any, ...]]:
    """Ledger rows in proposal order, as plain values; one batch in memory at a time."""
    now = now or utcnow()
    proposer, decider, payer = aliased(User), aliased(User), aliased(User)
    R = RewardRecord  # noqa: N806 - a short alias keeps the column list readable
    query = (
        select(R.id, R.case_id, Channel.slug, R.policy_id, R.policy_version, R.policy_digest,
               R.amount_fen, R.status, R.claim_due_at, proposer.username,
               proposer.display_name, R.proposed_at, decider.username, decider.display_name,
               R.decided_at, R.rejection_reason, R.claimed_at, payer.username,
               payer.display_name, R.paid_at, R.payment_reference, R.calculation)
        .join(Channel, Channel.id == R.channel_id)
        .join(proposer, proposer.id == R.proposed_by)
        .outerjoin(decider, decider.id == R.decided_by)
        .outerjoin(payer, payer.id == R.paid_by)
        .where(ledger_clause(session, user, filters, now))
    )
    last: tuple[dt.datetime, str] | None = None
    while True:
        page = query
        if last is not None:
            when, record_id = last
            # A row-value comparison: SQLite and PostgreSQL seek in the index with it; the
            # equivalent OR scans the index from its start for every batch (quadratic).
            page = page.where(tuple_(R.proposed_at, R.id) > tuple_(when, record_id))
        rows = session.execute(page.order_by(R.proposed_at, R.id).limit(batch)).all()
        if not rows:
            return
        for (rid, case_id, channel, policy_id, version, digest, fen, status, due, by,
             by_name, proposed_at, decided_by, decided_name, decided_at, reason, claimed_at,
             paid_by, paid_name, paid_at, reference, calculation) in rows:
            shown = display_status(_Status(status, due), now)  # type: ignore[arg-type]
            yield (rid, case_id, _text(channel), _text(policy_id), version, digest,
                   sheets.yuan(fen), fen, _status(shown), _person(by, by_name),
                   _time(proposed_at), _person(decided_by, decided_name), _time(decided_at),
                   _text(reason), _time(due), _time(claimed_at), _person(paid_by, paid_name),
                   _time(paid_at), _text(reference), _compact(calculation))
        last = (rows[-1].proposed_at, rows[-1].id)
        session.expunge_all()


@dataclass
class _Status:
    status: str
    claim_due_at: dt.datetime | None


# ---------------------------------------------------------------------------- formats


def csv_chunks(rows: Iterator[tuple[Any, ...]], batch: int = BATCH) -> Iterator[bytes]:
    return sheets.csv_chunks(header(), rows, batch)


def xlsx_chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[bytes]:
    # Built on disk, not in memory; then sent in chunks.
    with tempfile.TemporaryFile() as handle:
        columns = sheet_columns()
        sheets.write_xlsx(handle, "奖励台账 Rewards", columns,
                          tuple(column.header for column in columns), rows)
        handle.seek(0)
        while chunk := handle.read(CHUNK):
            yield chunk


@dataclass
class Tally:
    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    count: int = 0

    def rows(self, rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        for row in rows:
            self.count += 1
            yield row

    def chunks(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.digest.update(chunk)
            self.size += len(chunk)
            yield chunk


def file_chunks(fmt: str, rows: Iterator[tuple[Any, ...]], tally: Tally) -> Iterator[bytes]:
    counted = tally.rows(rows)
    return tally.chunks(csv_chunks(counted) if fmt == "csv" else xlsx_chunks(counted))


# ---------------------------------------------------------------------------- exports


def file_name(export: RewardExport) -> str:
    day = localtime.local(export.created_at).strftime("%Y%m%d")
    return f"rewards-{day}-{export.id[:8]}.{export.format}"


def start_export(session: Session, actor: User | None, fmt: str, filters: LedgerFilters,
                 now: dt.datetime | None = None, via: str = "console") -> RewardExport:
    """Create the export's row and its audit entry (whose hash the manifest will name)."""
    if fmt not in FORMATS:
        raise ExportInvalid()
    now = now or utcnow()
    export = RewardExport(id=crypto.new_id().hex(), created_at=now,
                          user_id=actor.id if actor else None, format=fmt,
                          filters=filters.as_dict(), state="started")
    session.add(export)
    session.flush()
    entry = audit.append(session, "export.rewards", actor=actor, target=f"export:{export.id}",
                         now=now, details={"format": fmt, "filters": filters.as_dict(),
                                           "via": via})
    export.audit_entry, export.audit_head = entry.id, entry.hash
    session.flush()
    return export


def stream_export(database: Database, settings: Settings, export_id: str,
                  user_id: int | None = None,
                  on_done: Callable[[dict[str, Any]], None] | None = None) -> Iterator[bytes]:
    """The file's bytes; when the last one is out, the manifest is signed and stored.

    Runs in its own read transaction (the request's has ended when streaming starts). If it
    stops before the end (an error, the download cut, the generator closed), the export is
    marked failed; if the process dies, its lock goes and housekeeping does it.
    """
    with running(settings, export_id):
        try:
            tally = Tally()
            with database.session() as session:
                if database.dialect == "postgresql" and isinstance(database.bind, Engine):
                    # One snapshot for every batch: a record changed mid-export appears as it
                    # was.
                    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                export = session.get(RewardExport, export_id)
                if export is None:
                    raise NotFound()
                user = session.get(User, user_id) if user_id else None
                filters = LedgerFilters(**_filters_from(export.filters))
                rows = iter_rows(session, filters, user, export.created_at)
                yield from file_chunks(export.format, rows, tally)
            manifest = finish_export(database, settings, export_id, tally)
        except BaseException:
            # Best effort: if the database cannot take it now, housekeeping will.
            with contextlib.suppress(Exception):
                mark_failed(database, export_id, "interrupted")
            raise
    if on_done is not None:
        on_done(manifest)


def lock_path(settings: Settings, export_id: str) -> Path:
    return settings.data_dir / "exports-running" / f"{export_id}.lock"


@contextlib.contextmanager
def running(settings: Settings, export_id: str) -> Iterator[None]:
    """Hold the export's lock while it runs: a live exporter is one holding it."""
    path = lock_path(settings, export_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Locked before it takes its name: a lock file nobody holds is always a dead export's.
    fresh = path.with_name(f".{path.name}.{os.getpid()}")
    with fresh.open("wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        os.replace(fresh, path)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _alive(path: Path) -> bool | None:
    """True while a process holds the lock, False if nobody does, None without a lock file."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def mark_failed(database: Database, export_id: str, reason: str) -> None:
    with database.session() as session:
        _fail(session, export_id, reason)


def _fail(session: Session, export_id: str, reason: str) -> bool:
    # Only a started export fails: one that finished meanwhile stays done.
    result = session.execute(update(RewardExport)
                             .where(RewardExport.id == export_id,
                                    RewardExport.state == "started")
                             .values(state="failed"))
    if not getattr(result, "rowcount", 0):
        return False
    export = session.get(RewardExport, export_id)
    creator = session.get(User, export.user_id) if export and export.user_id else None
    audit.append(session, "export.failed", actor=creator, target=f"export:{export_id}",
                 outcome="refused", details={"reason": reason})
    return True


def fail_abandoned(session: Session, settings: Settings,
                   now: dt.datetime | None = None) -> int:
    """Mark failed every started export no live process is still writing; returns how many."""
    now = now or utcnow()
    count = 0
    started = list(session.execute(select(RewardExport.id, RewardExport.created_at)
                                   .where(RewardExport.state == "started")))
    for export_id, created_at in started:
        alive = _alive(lock_path(settings, export_id))
        if alive is None and created_at > now - UNLOCKED_GRACE:
            continue
        if alive is False:
            lock_path(settings, export_id).unlink(missing_ok=True)
        if not alive and _fail(session, export_id, "abandoned"):
            count += 1
    return count


def _day(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _filters_from(data: dict[str, Any]) -> dict[str, Any]:
    day = _day
    return {"date_from": day(data.get("from")), "date_to": day(data.get("to")),
            "channel": data.get("channel"), "status": data.get("status"),
            "policy": data.get("policy")}


def canonical(manifest: dict[str, Any]) -> bytes:
    return canonical_json(manifest)


def finish_export(database: Database, settings: Settings, export_id: str,
                  tally: Tally) -> dict[str, Any]:
    with database.session() as session:
        if isinstance(database.bind, Engine) and database.dialect == "sqlite":
            # Take the write lock before reading: a read-then-write transaction can fail on
            # SQLite when another writer commits in between.
            session.connection(execution_options={IMMEDIATE: True})
        export = session.get(RewardExport, export_id)
        assert export is not None
        creator = session.get(User, export.user_id) if export.user_id else None
        signing_key = load_signing_key(settings)
        # The key file's own public half: the database's copy may have been replaced.
        public = crypto.signing_public_key(signing_key)
        manifest: dict[str, Any] = {
            "schema": SCHEMA, "export_id": export.id, "kind": "rewards",
            "format": export.format, "file_name": file_name(export),
            "file_sha256": tally.digest.hexdigest(), "file_bytes": tally.size,
            "record_count": tally.count,
            "period": {"from": export.filters.get("from"), "to": export.filters.get("to")},
            "filters": {k: export.filters.get(k) for k in ("channel", "status", "policy")},
            "audit_chain": {"entry": export.audit_entry, "head": export.audit_head},
            "created_at": export.created_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "created_by": creator.username if creator else "command line",
            "installation_key_id": hashlib.sha256(public).digest()[:16].hex(),
            "public_key": crypto.b64u_encode(public),
        }
        signature = crypto.sign(signing_key, canonical(manifest))
        manifest["signature"] = crypto.b64u_encode(signature)
        export.state = "done"
        export.record_count = tally.count
        export.file_sha256 = manifest["file_sha256"]
        export.manifest = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True)
        audit.append(session, "export.completed", actor=creator, target=f"export:{export.id}",
                     details={"file_sha256": manifest["file_sha256"],
                              "records": tally.count, "bytes": tally.size})
    return manifest


def partial_path(out: Path) -> Path:
    """Where the command line writes until the export is complete: hidden, never taken for
    an export."""
    return out.with_name(f".{out.name}.partial")


def _write_whole(path: Path, chunks: Iterator[bytes]) -> None:
    """Write to the partial name, then rename: the final name only ever holds a whole file."""
    partial = partial_path(path)
    try:
        with partial.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_export(database: Database, settings: Settings, export_id: str,
                 out: Path) -> dict[str, Any]:
    """The command line's export: FILE and FILE.manifest.json, each whole or not at all."""
    _write_whole(out, stream_export(database, settings, export_id))
    with database.session() as session:
        export = session.get(RewardExport, export_id)
        assert export is not None and export.manifest is not None
        text = export.manifest
    _write_whole(Path(str(out) + ".manifest.json"), iter([(text + "\n").encode("utf-8")]))
    result: dict[str, Any] = json.loads(text)
    return result


def recent_exports(session: Session, user: User, limit: int = 20) -> list[RewardExport]:
    return list(session.scalars(select(RewardExport).where(RewardExport.user_id == user.id)
                                .order_by(RewardExport.created_at.desc()).limit(limit)))


# ---------------------------------------------------------------------------- verification


def count_rows(path: Path, fmt: str) -> int:
    """Data rows of an export file (the header excluded), read without trusting the manifest."""
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)

    workbook = load_workbook(path, read_only=True)
    try:
        sheet = workbook.worksheets[0]
        return max(sum(1 for _ in sheet.iter_rows(values_only=True)) - 1, 0)
    finally:
        workbook.close()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def verify(path: Path, manifest_text: str, pinned_key: bytes | None) -> list[Check]:
    """Every check of a file against its manifest; each says what matched or what did not."""
    checks: list[Check] = []
    try:
        manifest = json.loads(manifest_text)
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise ValueError("not a Chuishao export manifest")
        public = crypto.b64u_decode(str(manifest["public_key"]))
        signature = crypto.b64u_decode(str(manifest["signature"]))
        expected_hash = str(manifest["file_sha256"])
        expected_count = int(manifest["record_count"])
        expected_size = int(manifest["file_bytes"])
        fmt = str(manifest["format"])
    except (ValueError, KeyError, TypeError) as exc:
        return [Check("manifest", False, f"the manifest cannot be read: {exc}")]
    if pinned_key is None:
        checks.append(Check("key", False, "no pinned public key to check the manifest's key "
                                          "against (give --key-file)"))
    elif pinned_key != public:
        checks.append(Check("key", False, "the manifest was signed with key "
                            f"{crypto.b64u_encode(public)}, not the installation's key "
                            f"{crypto.b64u_encode(pinned_key)}"))
    else:
        checks.append(Check("key", True, "signed with the installation's key "
                            f"(key id {hashlib.sha256(public).digest()[:16].hex()}, "
                            f"fingerprint {crypto.signing_fingerprint(public)})"))
    if crypto.verify_signature(public, canonical(manifest), signature):
        checks.append(Check("signature", True, "the manifest's signature is valid"))
    else:
        checks.append(Check("signature", False, "the signature does not match the manifest: "
                            "the manifest was changed after it was signed"))
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    actual = digest.hexdigest()
    checks.append(Check("hash", actual == expected_hash,
                        f"SHA-256 {actual}" if actual == expected_hash else
                        f"the file's SHA-256 is {actual}, the manifest says {expected_hash}: "
                        "the file was changed"))
    checks.append(Check("size", size == expected_size,
                        f"{size} bytes" if size == expected_size else
                        f"the file has {size} bytes, the manifest says {expected_size}"))
    try:
        count = count_rows(path, fmt)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
        checks.append(Check("count", False, f"the file cannot be read as {fmt}: {exc}"))
    else:
        checks.append(Check("count", count == expected_count,
                            f"{count} records" if count == expected_count else
                            f"the file has {count} records, the manifest says "
                            f"{expected_count}"))
    return checks
