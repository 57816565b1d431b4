"""Signed exports of the reward ledger: streamed CSV and XLSX, manifests, offline checks.

A one-cell change in either file, a changed manifest, a manifest signed with another key and
a missing key to pin against are all reported, each saying what does not match.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from service import cli
from service.domain import audit, exports, reward_claims, reward_ledger
from service.domain.installation import get_installation
from service.domain.models import AuditEntry
from service.domain.models.rewards import RewardExport
from service.platform import localtime
from service.platform.settings import Settings
from tests.console import sign_in
from tests.domain.test_reward_lifecycle import (
    People,
    approved_reward,
    browser_claim,
    followup_token,
    make_people,
)


@pytest.fixture
def people(session, settings) -> People:  # type: ignore[no-untyped-def]
    return make_people(session, settings)


@pytest.fixture
def ledger(client: TestClient, session: Session, people: People) -> list[str]:
    """Two approved rewards, one of them claimed and paid with a formula-like reference."""
    _, receipt, paid = approved_reward(client, session, people, fine="200000")
    token, keys = followup_token(client, session, receipt)
    auth = {"Authorization": f"Bearer {token}"}
    reward = client.get("/api/v1/followup/rewards", headers=auth).json()["rewards"][0]
    code, body = browser_claim(reward, keys.lookup_secret)
    assert client.post(f"/api/v1/followup/rewards/{paid.id}/claim", json=body,
                       headers=auth).status_code == 201
    session.refresh(paid)
    reward_claims.record_payment(session, paid, people.finance.user, code,
                                 "=HYPERLINK(\"http://x\")", paid.version)
    _, _, other = approved_reward(client, session, people, fine="1234567.89")
    session.commit()
    return [paid.id, other.id]


def export_files(client: TestClient, session: Session, settings: Settings, people: People,
                 tmp_path: Path, fmt: str, **filters: str) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    csrf = sign_in(client, session, settings, people.auditor.user)
    response = client.post("/console/rewards/export", data={"csrf_token": csrf, "format": fmt,
                                                            **filters})
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    export_id = response.headers["x-chuishao-export"]
    manifest = client.get(f"/console/rewards/exports/{export_id}/manifest.json")
    assert manifest.status_code == 200
    data = json.loads(manifest.text)
    path = tmp_path / data["file_name"]
    path.write_bytes(response.content)
    manifest_path = tmp_path / (data["file_name"] + ".manifest.json")
    manifest_path.write_text(manifest.text, encoding="utf-8")
    return path, manifest_path, data


def installation_key(session: Session) -> bytes:
    return get_installation(session).signing_public_key


def failed(checks: list[exports.Check]) -> dict[str, str]:
    return {check.name: check.detail for check in checks if not check.ok}


def test_csv_export_verifies_and_a_one_cell_change_is_caught(
        client: TestClient, session: Session, people: People, settings: Settings,
        ledger: list[str], tmp_path: Path) -> None:
    path, manifest_path, manifest = export_files(client, session, settings, people, tmp_path,
                                                 "csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "记录编号 / Record id" and len(rows) == 3
    assert manifest["record_count"] == 2 and manifest["format"] == "csv"
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == set(ledger)
    paid = by_id[ledger[0]]
    assert paid[6] == "30000.00" and paid[7] == "3000000" and paid[8] == "已付款 / Paid"
    assert paid[18].startswith("'=HYPERLINK")  # never a live formula in a spreadsheet
    assert json.loads(paid[19])["amount_fen"] == 3000000  # the record, for reward verify
    key = installation_key(session)
    assert failed(exports.verify(path, manifest_path.read_text(), key)) == {}
    # The manifest names the audit entry that records this export, and the chain has both.
    entry = session.get(AuditEntry, manifest["audit_chain"]["entry"])
    assert entry.action == "export.rewards" and entry.hash == manifest["audit_chain"]["head"]
    done = session.scalar(select(AuditEntry).where(AuditEntry.action == "export.completed"))
    assert done.details["file_sha256"] == manifest["file_sha256"]
    # One cell: 30000.00 -> 30001.00.
    changed = raw.replace(b",30000.00,", b",30001.00,", 1)
    assert changed != raw
    path.write_bytes(changed)
    problems = failed(exports.verify(path, manifest_path.read_text(), key))
    assert set(problems) == {"hash"} and "the file was changed" in problems["hash"]
    # A dropped row: hash, size and count all say so.
    path.write_bytes(b"\r\n".join(raw.split(b"\r\n")[:2]) + b"\r\n")
    assert set(failed(exports.verify(path, manifest_path.read_text(), key))) == {
        "hash", "size", "count"}


def test_xlsx_export_verifies_and_a_one_cell_change_is_caught(
        client: TestClient, session: Session, people: People, settings: Settings,
        ledger: list[str], tmp_path: Path) -> None:
    path, manifest_path, manifest = export_files(client, session, settings, people, tmp_path,
                                                 "xlsx", status="paid")
    assert manifest["record_count"] == 1 and manifest["filters"]["status"] == "paid"
    workbook = load_workbook(path)
    sheet = workbook.worksheets[0]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[1][0] == ledger[0] and values[1][7] == 3000000
    key = installation_key(session)
    assert failed(exports.verify(path, manifest_path.read_text(), key)) == {}
    sheet.cell(row=2, column=8).value = 3000001
    workbook.save(path)
    problems = failed(exports.verify(path, manifest_path.read_text(), key))
    assert "hash" in problems and "count" not in problems


def test_tampered_or_unpinned_manifests_are_refused(
        client: TestClient, session: Session, people: People, settings: Settings,
        ledger: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, manifest_path, manifest = export_files(client, session, settings, people, tmp_path,
                                                 "csv")
    key = installation_key(session)
    # The count changed in the manifest: its signature no longer fits.
    forged = {**manifest, "record_count": 3}
    problems = failed(exports.verify(path, json.dumps(forged), key))
    assert set(problems) == {"signature", "count"}
    # Re-signed with another key: the signature fits, but not the installation's key.
    private, public = crypto.generate_signing_key()
    resigned = {**forged, "public_key": crypto.b64u_encode(public)}
    resigned["signature"] = crypto.b64u_encode(crypto.sign(private, exports.canonical(resigned)))
    problems = failed(exports.verify(path, json.dumps(resigned), key))
    assert set(problems) == {"key", "count"}
    assert "not the installation's key" in problems["key"]
    assert "no pinned public key" in failed(
        exports.verify(path, manifest_path.read_text(), None))["key"]
    assert set(failed(exports.verify(path, "{not json", key))) == {"manifest"}
    # The command line says the same, with exit codes.
    argv = ["export", "verify", str(path), str(manifest_path), "--public-key", key.hex()]
    assert cli.main(argv, settings) == 0
    assert "export verified" in capsys.readouterr().out
    forged_path = tmp_path / "forged.json"
    forged_path.write_text(json.dumps(resigned))
    # (base64url may start with "-": the "=" form keeps argparse from taking it for an option)
    assert cli.main(["export", "verify", str(path), str(forged_path),
                     f"--public-key={crypto.b64u_encode(key)}"], settings) == 1
    out = capsys.readouterr().out
    assert "MISMATCH\tkey" in out and "MISMATCH\tcount" in out and "ok\thash" in out


def test_export_needs_the_auditor_and_csrf(client: TestClient, session: Session,
                                           people: People, settings: Settings,
                                           ledger: list[str]) -> None:
    csrf = sign_in(client, session, settings, people.auditor.user)
    assert client.post("/console/rewards/export", data={"format": "csv"}).status_code == 403
    assert client.post("/console/rewards/export", data={"csrf_token": csrf,
                                                        "format": "pdf"}).status_code == 400
    assert session.scalar(select(RewardExport.id)) is None
    refused = set(session.scalars(select(AuditEntry.action).where(
        AuditEntry.outcome == "refused")))
    assert {"csrf", "export.rewards"} <= refused
    csrf = sign_in(client, session, settings, people.reviewer.user)
    assert client.post("/console/rewards/export", data={"csrf_token": csrf,
                                                        "format": "csv"}).status_code == 403


@pytest.mark.sqlite_only
def test_export_command_writes_file_and_manifest(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import fast_settings

    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    assert cli.main(["init"], settings) == 0
    capsys.readouterr()
    out = tmp_path / "rewards.xlsx"
    assert cli.main(["export", "rewards", "--out", str(out)], settings) == 0
    assert "0 records" in capsys.readouterr().out
    # The key file written at init pins the key.
    pub = settings.data_dir / "signing.pub"
    assert cli.main(["export", "verify", str(out), str(out) + ".manifest.json",
                     "--key-file", str(pub)], settings) == 0
    assert cli.main(["export", "rewards", "--out", str(tmp_path / "x.pdf")], settings) == 2


def test_a_cut_download_and_an_abandoned_export_are_marked_failed(
        database, session: Session, people: People, settings: Settings,  # type: ignore[no-untyped-def]
        ledger: list[str]) -> None:
    import datetime as dt

    from service.domain.models import utcnow

    auditor = people.auditor.user
    started = exports.start_export(session, auditor, "csv", reward_ledger.LedgerFilters())
    session.commit()
    body = exports.stream_export(database, settings, started.id, auditor.id)
    assert next(body).startswith(b"\xef\xbb\xbf")
    # The lock is held while it runs: housekeeping would leave it alone.
    assert exports._alive(exports.lock_path(settings, started.id)) is True
    body.close()  # the download was cut: the generator is closed half-way
    session.expire_all()
    assert session.get(RewardExport, started.id).state == "failed"
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "export.failed"))
    assert entry.details == {"reason": "interrupted"} and entry.actor == auditor.username
    # Started but never streamed (no lock file): left alone for a while, then failed.
    waiting = exports.start_export(session, auditor, "xlsx", reward_ledger.LedgerFilters())
    old = exports.start_export(session, auditor, "xlsx", reward_ledger.LedgerFilters(),
                               now=utcnow() - exports.UNLOCKED_GRACE - dt.timedelta(minutes=1))
    session.commit()
    assert exports.fail_abandoned(session, settings) == 1
    session.commit()
    assert session.get(RewardExport, waiting.id).state == "started"
    assert session.get(RewardExport, old.id).state == "failed"
    assert audit.verify_chain(session).ok


def test_csv_and_xlsx_carry_the_same_values_as_an_auditor_can_use_them(
        client: TestClient, session: Session, people: People, settings: Settings,
        ledger: list[str], tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "x").mkdir()
    csv_path, csv_manifest, _ = export_files(client, session, settings, people,
                                             tmp_path / "c", "csv")
    xlsx_path, xlsx_manifest, _ = export_files(client, session, settings, people,
                                               tmp_path / "x", "xlsx")
    key = installation_key(session)
    assert failed(exports.verify(csv_path, csv_manifest.read_text(), key)) == {}
    assert failed(exports.verify(xlsx_path, xlsx_manifest.read_text(), key)) == {}
    table = list(csv.reader(io.StringIO(csv_path.read_bytes().decode("utf-8-sig"))))
    sheet = load_workbook(xlsx_path).worksheets[0]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == f"A1:T{len(table)}"
    assert sheet.column_dimensions["A"].width >= 30
    amount, fen, status, proposed = (sheet.cell(2, 7), sheet.cell(2, 8), sheet.cell(2, 9),
                                     sheet.cell(2, 11))
    assert isinstance(amount.value, (int, float)) and amount.number_format == "0.00"
    assert isinstance(fen.value, int) and fen.value == round(amount.value * 100)
    assert proposed.is_date and " / " in status.value and status.value != "approved"
    xlsx_rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert xlsx_rows[0] == table[0]
    for written, cells in zip(table[1:], xlsx_rows[1:], strict=True):
        assert written[0] == cells[0] and written[8] == cells[8] and written[7] == str(cells[7])
        assert written[6] == f"{cells[6]:.2f}"
        assert written[10].startswith(cells[10].isoformat()) and written[10].endswith("+08:00")
    # A person is named as the console names them, the account in brackets.
    assert all("approver1" in row[11] for row in table[1:])


@pytest.mark.parametrize(("zone", "label"), [("Asia/Shanghai", "UTC+08:00"),
                                             ("Asia/Kathmandu", "UTC+05:45"),
                                             ("Europe/Berlin", "Europe/Berlin")])
def test_time_columns_are_labelled_with_the_installation_zone(zone: str, label: str) -> None:
    # The headers once said "UTC+8" whatever the installation's zone was.
    before = localtime.zone().key
    localtime.install(zone)
    try:
        headers = [h for h in exports.header() if "时间" in h or "期限" in h]
        assert headers and all(f"（{label}）" in h and f"({label})" in h for h in headers)
    finally:
        localtime.install(before)
