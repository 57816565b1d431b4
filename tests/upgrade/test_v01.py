"""Upgrading an installation of the first version loses nothing.

tests/fixtures/v0.1 was made with the first release through its real paths (see its README);
its manifest holds every secret. A copy is migrated with `chuishao migrate`, then everyone who
used it gets back in: every receipt opens its case to the same plaintext and file bytes, every
account signs in with password and TOTP and reads what its roles read, the recovery secret
re-grants a channel, the audit chain and the stored signed exports verify, and every reward
record recomputes to its stored fen.

Both builds run here: the SQLite file, and the PostgreSQL dump restored with psql (when
CHUISHAO_TEST_POSTGRES_URL names a server). The module is SQLite-only in the sense of the
marker: it brings its own databases, so the PostgreSQL pass of the suite need not repeat it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.datastructures import Secret
from starlette.testclient import TestClient

import crypto
from service.app import create_app
from service.client import Client
from service.platform import migrate
from service.platform.settings import Settings
from tests import console
from tests.factories import testclient_transport
from tests.upgrade import installation as inst
from tests.upgrade.installation import Installation, Staff

pytestmark = pytest.mark.sqlite_only

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="module", params=BACKENDS)
def installation(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    target = tmp_path_factory.mktemp("upgrade")
    if request.param == "sqlite":
        found = inst.copy_sqlite(target)
        yield _migrated(found)
        return
    server = os.environ.get("CHUISHAO_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("CHUISHAO_TEST_POSTGRES_URL is not set: the PostgreSQL build of the v0.1 "
                    "fixture (postgres.sql) is not upgraded in this run")
    name = f"chuishao_upgrade_{uuid.uuid4().hex[:12]}"
    try:
        yield _migrated(inst.load_postgres(target, server, name))
    finally:
        inst.drop_postgres(server, name)


def _migrated(found: Installation) -> Installation:
    # The expectation (who held a case key before) is read from the untouched copy; every check
    # after the migration goes through the console and the public API.
    found.holders = _slot_holders(found)
    done = found.chuishao("migrate")
    found.migrate_output = done.stdout
    return found


def _slot_holders(found: Installation) -> set[tuple[str, str]]:
    url = found.database_url or f"sqlite:///{found.data_dir / 'chuishao.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT u.username, s.case_id FROM key_slots s JOIN users u ON u.id = s.user_id "
                "WHERE s.purpose = 'case'")).all()
    finally:
        engine.dispose()
    return {(username, case_id) for username, case_id in rows}


def _settings(found: Installation) -> Settings:
    cost = found.manifest["settings"]
    return Settings(
        data_dir=found.data_dir, database_url=found.database_url,
        secret_key=Secret((found.data_dir / "secret.key").read_text().strip()),
        base_url=inst.BASE_URL, secure_cookies=True,
        receipt_iterations=cost["receipt_iterations"],
        password_iterations=cost["password_iterations"], scrypt_n=cost["scrypt_n"],
        # Stamps are made afresh; their cost is not part of what was stored.
        pow_difficulty=4, time_granularity_seconds=cost["time_granularity_seconds"])


@pytest.fixture(scope="module")
def client(installation: Installation) -> Iterator[TestClient]:
    app = create_app(_settings(installation))
    with TestClient(app, base_url=inst.BASE_URL) as client:
        yield client


@pytest.fixture(scope="module")
def staff(installation: Installation, client: TestClient) -> dict[str, Staff]:
    """Every account signed in once (a TOTP step is spent on use, as it must be)."""
    return {name: inst.sign_in(client, name, account["password"],
                               account["totp_secret_base32"])
            for name, account in installation.manifest["accounts"].items()}


# ---------------------------------------------------------------------------- the migration


def test_migrate_reaches_head(installation: Installation) -> None:
    url = installation.database_url or f"sqlite:///{installation.data_dir / 'chuishao.sqlite3'}"
    assert migrate.current_revisions(url) == (migrate.head_revision(),)
    # Running it again is harmless and changes nothing.
    assert "newest schema" in installation.chuishao("migrate").stdout


# ---------------------------------------------------------------------------- reporters


def test_every_receipt_opens_its_case(installation: Installation, client: TestClient) -> None:
    for label, case in inst.iter_cases(installation.manifest):
        # v0.1 gave 20 digits, before the check digit: they are read as they are.
        assert len(crypto.normalize_receipt(case["receipt"])) == 20, label
        assert len(case["receipt"].replace(" ", "").replace("-", "")) == 20, label
        reporter = inst.Reporter(client, case["receipt"])
        feed = reporter.feed()
        assert feed["case_id"] == case["case_id"], label
        assert feed["status"] == case["status"], label
        raw_id = bytes.fromhex(case["case_id"])
        key = crypto.open_key(crypto.b64u_decode(feed["slot"]), reporter.keys.private, raw_id,
                              "case")
        items = [{"kind": item["kind"], "id": item["id"],
                  **crypto.open_item(key, raw_id, bytes.fromhex(item["id"]), item["kind"],
                                     crypto.b64u_decode(item["blob"]))}
                 for item in feed["items"]]
        report = next(i for i in items if i["kind"] == "report")
        for field, value in case["report"].items():
            assert report[field] == value, (label, field)
        # The identity is for reviewers only, through the audited endpoint (below).
        assert not [i for i in items if i["kind"] == "identity"], label
        assert inst.by_author(inst.messages_of(items)) == inst.by_author(
            [(m["from"], m["text"]) for m in case["messages"]]), label
        metas = {i["id"]: i for i in items if i["kind"] == "file-meta"}
        got = {}
        for f in feed["files"]:
            chunks = [reporter.chunk(f["id"], i) for i in range(f["chunk_count"])]
            got[f["id"]] = inst.file_sha256(metas[f["meta_item_id"]], raw_id, f["id"], chunks)
        expected = {f["stored_file_id"]: f["sha256_stored"] for f in case["files"]}
        assert {k: got.get(k) for k in expected} == expected, label
        # The plain-language status feed is there from the first event on.
        assert feed["events"] and feed["events"][0]["kind"] == "received", label


def test_reporters_see_their_rewards(installation: Installation, client: TestClient) -> None:
    by_case = {r["case"]: r for r in installation.manifest["rewards"].values()}
    for label, case in inst.iter_cases(installation.manifest):
        shown = {r["id"]: r for r in inst.Reporter(client, case["receipt"]).rewards()}
        expected = {rid: r for rid, r in installation.manifest["rewards"].items()
                    if r["case"] == label and r["status"] in ("approved", "claimed", "paid")}
        assert set(shown) == set(expected), label
        for rid, reward in expected.items():
            assert shown[rid]["status"] == reward["status"], label
            assert shown[rid]["amount"] in reward["amount"], label
        if label in by_case and by_case[label]["status"] == "proposed":
            assert not shown, "a proposal is not shown to the reporter"


# ---------------------------------------------------------------------------- staff


def _cases_of(installation: Installation, username: str) -> list[tuple[str, dict[str, Any]]]:
    account = installation.manifest["accounts"][username]
    return [(label, case) for label, case in inst.iter_cases(installation.manifest)
            if case["channel"] in account["channels"] or case.get("granted_to") == username]


def test_reviewers_read_their_cases(installation: Installation,
                                    staff: dict[str, Staff]) -> None:
    seen = 0
    for username, account in installation.manifest["accounts"].items():
        if "reviewer" not in account["roles"]:
            continue
        for label, case in _cases_of(installation, username):
            html, opened = inst.open_case_page(staff[username], case["case_id"])
            held = (username, case["case_id"]) in installation.holders
            assert bool(opened["items"]) == held, (username, label)
            if not held:
                continue
            seen += 1
            report = next(i for i in opened["items"] if i["kind"] == "report")
            assert report["description"] == case["report"]["description"], (username, label)
            assert inst.by_author(inst.messages_of(opened["items"])) == inst.by_author(
                [(m["from"], m["text"]) for m in case["messages"]]), (username, label)
            expected = {f["stored_file_id"]: f["sha256_stored"] for f in case["files"]}
            assert {k: opened["files"].get(k) for k in expected} == expected, (username, label)
            if case["identity"]:
                identity = inst.open_identity(staff[username], case["case_id"]) or {}
                assert {k: identity.get(k) for k in case["identity"]} == case["identity"], \
                    (username, label)
            # Internal notes: the reviewers of the line hold the internal key.
            notes = [n["text"] for n in opened["notes"]]
            for note in case["notes"]:
                if note["by"] == username:
                    assert note["text"] in notes, (username, label)
    assert seen >= 11, "every case was read by at least one reviewer"


def test_rectification_evidence_still_opens(installation: Installation,
                                            staff: dict[str, Staff]) -> None:
    found = 0
    for _label, case in inst.iter_cases(installation.manifest):
        record = case.get("rectification")
        if not record:
            continue
        viewer = staff[record["opened_by"]]
        page = viewer.get(f"/console/cases/{case['case_id']}/rectifications")
        assert page.status_code == 200
        text = inst.visible_text(page.text)
        assert record["five_guarantees"]["#f-person"] in text or \
            record["five_guarantees"]["#f-measures"] in text or "/console/rectifications/" \
            in page.text
        found += 1
    assert found == 3


def test_each_role_sees_its_pages(installation: Installation, staff: dict[str, Staff]) -> None:
    rewards = installation.manifest["rewards"]
    # The approver reads each record's state, amount and explanation, and may decide the one
    # proposed by someone else.
    approver = staff["wang.qiang"]
    for rid, reward in rewards.items():
        page = approver.get(f"/console/rewards/{rid}")
        assert page.status_code == 200, rid
        assert f'data-status="{reward["status"]}"' in page.text, rid
        shown = inst.visible_text(page.text)
        assert reward["amount"].removesuffix(" 元") in shown, rid
        explanation = inst.re.search(r'<pre class="explanation" id="explanation">(.*?)</pre>',
                                     page.text, inst.re.S)
        assert explanation and reward["amount"].removesuffix(" 元") in explanation.group(1), rid
        assert ('id="form-approve"' in page.text) == (reward["status"] == "proposed"), rid
    # Finance opens the claims it was sealed to: the payout details as the reporter sent them.
    finance = staff["zhao.min"]
    for rid, reward in rewards.items():
        if reward["status"] not in ("claimed", "paid"):
            continue
        page = finance.get(f"/console/rewards/{rid}")
        assert page.status_code == 200, rid
        # The claim is served only by the audited endpoint, as rewards.js asks for it.
        answer = finance.post(f"/console/rewards/{rid}/claim", json={})
        assert answer.status_code == 200, (rid, answer.text)
        data = answer.json()
        raw = bytes.fromhex(rid)
        key = crypto.open_claim_key(crypto.b64u_decode(data["slot"]), finance.private_key, raw)
        claim = crypto.open_item(key, raw, bytes.fromhex(data["item_id"]), "claim",
                                 crypto.b64u_decode(data["blob"]))
        for field, value in reward["claim"].items():
            assert claim[field] == value, (rid, field)
    # The auditor reads the whole trail made before the upgrade, intact, and every reward
    # record; the reports themselves stay closed to that role.
    auditor = staff["sun.li"]
    trail = auditor.get("/console/audit")
    assert trail.status_code == 200
    head = inst.re.search(r'id="chain-head">\D*(\d+)', trail.text)
    assert head and int(head.group(1)) >= 108, trail.text[:2000]
    assert 'id="chain-ok"' in auditor.get("/console/audit?verify=1").text
    listed = auditor.get("/console/rewards")
    assert listed.status_code == 200
    for rid in rewards:
        assert rid[:8] in listed.text, rid
    first = next(iter(inst.iter_cases(installation.manifest)))[1]
    closed = auditor.get(f"/console/cases/{first['case_id']}")
    assert closed.status_code in (403, 404) or not inst.data_island(
        closed.text, "case-data")["slot"]
    admin = staff["admin.chen"]
    assert admin.get("/console/admin").status_code == 200
    for name in installation.manifest["accounts"]:
        if name != "admin.chen":
            assert name in admin.get("/console/admin").text


# ---------------------------------------------------------------------------- the operator


def test_recovery_secret_regrants_a_channel(installation: Installation, client: TestClient,
                                            staff: dict[str, Staff]) -> None:
    # zhang.wei reviews the bureau line only; the recovery secret gives them the enterprise
    # line's cases, which they then open with their own key.
    enterprise = next(slug for slug, c in installation.manifest["channels"].items()
                      if c["kind"] == "enterprise")
    done = installation.chuishao("recover", "--channel", enterprise, "--to", "zhang.wei",
                                 stdin=installation.manifest["recovery_secret"] + "\n")
    assert "granted" in done.stdout.lower() or done.returncode == 0
    opened = 0
    for label, case in inst.iter_cases(installation.manifest):
        if case["channel"] != enterprise:
            continue
        _html, items = inst.open_case_page(staff["zhang.wei"], case["case_id"])
        report = next(i for i in items["items"] if i["kind"] == "report")
        assert report["description"] == case["report"]["description"], label
        opened += 1
    assert opened == 3



def test_recovery_secret_regrants_to_a_reviewer_enrolled_after_the_upgrade(
        installation: Installation, client: TestClient, staff: dict[str, Staff]) -> None:
    """A reviewer who did not exist in v0.1: invited by the admin in the console, enrolled in
    their own browser, then given the enterprise line's old cases with the recovery secret;
    they sign in with password and TOTP and read the reports and files."""
    enterprise, channel = next((slug, c) for slug, c in installation.manifest["channels"].items()
                               if c["kind"] == "enterprise")
    made = staff["admin.chen"].post("/console/admin/invitations", data={
        "roles": ["reviewer"], "hours": "24", "channel": str(channel["id"])})
    assert made.status_code == 200, made.text
    link = inst.re.search(r'<code id="invitation-link">([^<]+)</code>', made.text)
    assert link, "no invitation link on the page"
    password = "新的审核员 correct horse battery"
    enrolled = console.enrol(client.app, _settings(installation), link.group(1), "zhou.jie",
                             password)
    enrolled_step = inst.totp(crypto.b32_encode(enrolled.totp_secret))[1]
    done = installation.chuishao("recover", "--channel", enterprise, "--to", "zhou.jie",
                                 stdin=installation.manifest["recovery_secret"] + "\n")
    assert "sealed to zhou.jie" in done.stdout, done.stdout
    # The enrolment spent this TOTP step; an authenticator shows the next one.
    while inst.totp(crypto.b32_encode(enrolled.totp_secret))[1] == enrolled_step:
        time.sleep(0.5)
    newcomer = inst.sign_in(client, "zhou.jie", password, crypto.b32_encode(enrolled.totp_secret))
    opened = 0
    for label, case in inst.iter_cases(installation.manifest):
        if case["channel"] != enterprise:
            continue
        _html, items = inst.open_case_page(newcomer, case["case_id"])
        report = next(i for i in items["items"] if i["kind"] == "report")
        assert report["description"] == case["report"]["description"], label
        expected = {f["stored_file_id"]: f["sha256_stored"] for f in case["files"]}
        assert {k: items["files"].get(k) for k in expected} == expected, label
        opened += 1
    assert opened == 3
    # The bureau line was not granted: its cases stay closed to the newcomer.
    bureau = next(case for _label, case in inst.iter_cases(installation.manifest)
                  if case["channel"] != enterprise)
    assert newcomer.get(f"/console/cases/{bureau['case_id']}").status_code in (403, 404)


def _auditor_key(installation: Installation) -> Path:
    """The public key file the auditor keeps: written from signing.key for an installation
    made before such files existed (docs/OPERATIONS.md §10)."""
    key = installation.data_dir / "signing.pub"
    if not key.exists():
        installation.chuishao("audit", "key")
    assert key.exists()
    return key


def test_audit_chain_verifies(installation: Installation) -> None:
    done = installation.chuishao("audit", "verify")
    assert "intact" in done.stdout
    # The chain heads the stored exports were signed with are still in the chain, unchanged.
    manifests = [str(installation.exports_dir / (Path(e["file"]).name + ".manifest.json"))
                 for e in installation.manifest["exports"]]
    args = ["audit", "verify", "--key-file", str(_auditor_key(installation))]
    for manifest in manifests:
        args += ["--since-manifest", manifest]
    assert "intact" in installation.chuishao(*args).stdout


def test_stored_exports_verify(installation: Installation) -> None:
    key = _auditor_key(installation)
    for export in installation.manifest["exports"]:
        name = Path(export["file"]).name
        done = installation.chuishao("export", "verify", name, name + ".manifest.json",
                                     "--key-file", str(key), cwd=installation.exports_dir)
        assert "export verified" in done.stdout, done.stdout


def test_stored_exports_detect_a_changed_cell(installation: Installation,
                                              tmp_path: Path) -> None:
    export = next(e for e in installation.manifest["exports"] if e["format"] == "csv")
    name = Path(export["file"]).name
    forged = tmp_path / name
    text = (installation.exports_dir / name).read_text(encoding="utf-8-sig")
    forged.write_text(text.replace("30000.00", "39000.00", 1), encoding="utf-8-sig")
    (tmp_path / (name + ".manifest.json")).write_bytes(
        (installation.exports_dir / (name + ".manifest.json")).read_bytes())
    done = installation.chuishao("export", "verify", name, name + ".manifest.json",
                                 "--key-file", str(_auditor_key(installation)), cwd=tmp_path,
                                 check=False)
    assert done.returncode != 0


def test_reward_records_recompute(installation: Installation, staff: dict[str, Staff],
                                  tmp_path: Path) -> None:
    """A new export by the auditor after the upgrade; each record's calculation JSON is
    recomputed by `chuishao reward verify` and matches the stored fen, and it is the record
    the v0.1 export signed before the upgrade: same fen, same steps, same explanations."""
    auditor = staff["sun.li"]
    response = auditor.post("/console/rewards/export", data={"format": "csv"})
    assert response.status_code == 200, response.text
    column, by_id = _calculations(response.content.decode("utf-8-sig"))
    assert set(by_id) == set(installation.manifest["rewards"])
    stored = next(e for e in installation.manifest["exports"] if e["format"] == "csv")
    before_column, before = _calculations(
        (installation.exports_dir / Path(stored["file"]).name).read_text(encoding="utf-8-sig"))
    assert set(before) == set(by_id)
    for rid, row in before.items():
        assert json.loads(by_id[rid][column]) == json.loads(row[before_column]), rid
    policy_file = installation.root / "xiangyang-2024.toml"
    for rid, reward in installation.manifest["rewards"].items():
        record = json.loads(by_id[rid][column])
        amount = f"{record['amount_fen'] // 100:,}.{record['amount_fen'] % 100:02d}"
        assert amount.replace(",", " ") in reward["amount"], rid
        path = tmp_path / f"{rid}.json"
        path.write_text(by_id[rid][column], encoding="utf-8")
        args = ["reward", "verify", str(path)]
        if record["policy_id"] == "xiangyang-2024":
            args += ["--policy-file", str(policy_file)]
        done = installation.chuishao(*args)
        assert "identical" in done.stdout, (rid, done.stdout)


def _calculations(export_csv: str) -> tuple[int, dict[str, list[str]]]:
    """A reward export's rows by record id, and the column of the calculation JSON."""
    rows = list(csv.reader(io.StringIO(export_csv)))
    column = next(i for i, h in enumerate(rows[0]) if "JSON" in h)
    return column, {row[0]: row for row in rows[1:]}


# ---------------------------------------------------------------------------- migrate itself


def test_migrate_refuses_a_newer_database(tmp_path: Path) -> None:
    found = inst.copy_sqlite(tmp_path)
    database = found.data_dir / "chuishao.sqlite3"
    conn = sqlite3.connect(database)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = 'from_the_future'")
    conn.close()
    before = _dump(database)
    done = found.chuishao("migrate", check=False)
    assert done.returncode == 2
    assert "newer version" in done.stderr and "更新的版本" in done.stderr
    assert _dump(database) == before
    assert not (found.data_dir / "backups").exists()


def _dump(database: Path) -> list[str]:
    conn = sqlite3.connect(database)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_migrate_backs_up_sqlite_before_changing_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'chuishao.sqlite3'}"
    migrate.upgrade(url, "0007")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUISHAO_")}
    env["CHUISHAO_DATA_DIR"] = str(data)
    done = subprocess.run([str(inst.CHUISHAO), "migrate"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    backups = list((data / "backups").glob("*.sqlite3"))
    assert len(backups) == 1 and "before-0007" in backups[0].name
    assert migrate.current_revisions(f"sqlite:///{backups[0]}") == ("0007",)
    assert migrate.current_revisions(url) == (migrate.head_revision(),)
    # Nothing pending: no further copy.
    subprocess.run([str(inst.CHUISHAO), "migrate"], env=env, check=True, capture_output=True,
                   timeout=120)
    assert len(list((data / "backups").glob("*.sqlite3"))) == 1


# ---------------------------------------------------------------------------- carried-over data


def test_guessed_first_valid_groups_are_flagged_not_changed(installation: Installation,
                                                            staff: dict[str, Staff]) -> None:
    """v0.1 chose the first valid report of C05/C11 (same hour) by the random case id, and
    made the unverified C04 first valid over C10: both groups wait for a reviewer now, the
    stored choice is untouched, and the proposed reward of C05 cannot be approved meanwhile."""
    cases = installation.manifest["cases"]
    reviewer = staff["zhang.wei"]
    page = reviewer.get(f"/console/cases/{cases['C05']['case_id']}")
    assert 'id="first-valid-open"' in page.text and 'id="form-decide_first_valid"' in page.text
    assert cases["C11"]["case_id"][:8] in page.text
    c04 = staff["li.na"].get(f"/console/cases/{cases['C04']['case_id']}")
    assert 'id="first-valid-open"' in c04.text
    proposed = next(rid for rid, r in installation.manifest["rewards"].items()
                    if r["case"] == "C05")
    record = staff["wang.qiang"].get(f"/console/rewards/{proposed}")
    version = inst.re.search(r'name="version" value="(\d+)"', record.text)
    assert version
    refused = staff["wang.qiang"].post(f"/console/rewards/{proposed}/approve",
                                       data={"version": version.group(1)})
    assert refused.status_code == 409
    assert "首个有效举报" in refused.text
    # The reviewer decides, with a reason; the question closes.
    case_version = inst.re.search(r'name="version" value="(\d+)"', page.text)
    assert case_version
    decided = reviewer.post(
        f"/console/cases/{cases['C05']['case_id']}/actions/decide_first_valid",
        data={"version": case_version.group(1), "first": cases["C05"]["case_id"],
              "reason": "C05 的举报人在同一小时内先提交，核查记录可证"})
    assert decided.status_code == 303, decided.text
    after = reviewer.get(f"/console/cases/{cases['C05']['case_id']}")
    assert 'id="first-valid-open"' not in after.text


def test_old_cases_are_classical_only_and_stay_open_after_add_pq(
        installation: Installation, client: TestClient, staff: dict[str, Staff]) -> None:
    """Every v0.1 case has v1 slots only: marked classical-only. Giving the recovery key its
    X-Wing part changes none of them; receipts and the first recovery part still open them."""
    url = installation.database_url or f"sqlite:///{installation.data_dir / 'chuishao.sqlite3'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            marks = set(conn.execute(text("SELECT classical_only FROM cases")).scalars())
            suites = set(conn.execute(text("SELECT suite FROM key_slots")).scalars())
            before = conn.execute(text(
                "SELECT recovery_xwing_public_key FROM installation")).scalar()
    finally:
        engine.dispose()
    assert marks == {True} and suites == {crypto.SUITE} and before is None
    label, case = next(iter(inst.iter_cases(installation.manifest)))
    page = staff["zhang.wei"].get(f"/console/cases/{case['case_id']}")
    assert "仅经典加密" in page.text or "classical-only" in page.text, label
    done = installation.chuishao("recovery", "add-pq")
    shown = [line.strip() for line in done.stdout.splitlines() if line.startswith("    ")]
    seed = crypto.decode_recovery_secret(shown[0], "xwing")
    again = installation.chuishao("recovery", "add-pq", check=False)
    assert again.returncode == 1 and "already" in again.stderr
    channels = client.get("/api/v1/channels").json()["channels"]
    recovery = channels[0]["recipients"][-1]
    assert crypto.b64u_decode(recovery["xwing_public_key"]) == crypto.xwing_public_key(seed)
    for label, case in inst.iter_cases(installation.manifest):
        feed = inst.Reporter(client, case["receipt"]).feed()
        assert feed["slot_suite"] == crypto.SUITE, label
    enterprise = next(slug for slug, c in installation.manifest["channels"].items()
                      if c["kind"] == "enterprise")
    regrant = installation.chuishao("recover", "--channel", enterprise, "--to", "zhang.wei",
                                    stdin=installation.manifest["recovery_secret"] + "\n")
    assert "already held" in regrant.stdout


def test_a_v01_reviewer_gains_an_xwing_key_at_sign_in(
        installation: Installation, client: TestClient, staff: dict[str, Staff]) -> None:
    """What login.js does after a v0.1 account signs in: make the X-Wing pair, wrap its seed
    with the password's kek, send it. New cases then reach the reviewer v2, the old ones
    still open through their v1 slots."""
    me = staff["zhang.wei"]
    assert "xwing_key_id" not in me.get("/console/api/me/key").json()
    pre = me.post("/console/api/prelogin", json={"username": me.username})
    keys = crypto.derive_password(installation.manifest["accounts"][me.username]["password"],
                                  crypto.b64u_decode(pre.json()["salt"]),
                                  pre.json()["iterations"])
    seed, public = crypto.generate_xwing_keypair()
    kid = crypto.key_id(public)
    added = me.post("/console/api/account/xwing-key", json={
        "xwing_public_key": crypto.b64u_encode(public), "xwing_key_id": kid.hex(),
        "wrapped_xwing_seed": crypto.b64u_encode(crypto.wrap_xwing_seed(keys.kek, seed, kid))})
    assert added.status_code == 200, added.text
    mine = me.get("/console/api/me/key").json()
    assert crypto.unwrap_xwing_seed(keys.kek, crypto.b64u_decode(mine["wrapped_xwing_seed"]),
                                    kid) == seed
    # Old cases: the v1 slot as before.
    label, case = next((label, case) for label, case in inst.iter_cases(installation.manifest)
                       if ("zhang.wei", case["case_id"]) in installation.holders)
    _, opened = inst.open_case_page(me, case["case_id"])
    assert opened["items"], label
    # A new case on that line: the reviewer's slot is v2, under the X-Wing key id.
    slug = next(c["channel"] for _, c in inst.iter_cases(installation.manifest)
                if c["case_id"] == case["case_id"])
    listed = next(c for c in client.get("/api/v1/channels").json()["channels"]
                  if c["id"] == slug)
    assert kid.hex() in {r.get("xwing_key_id") for r in listed["recipients"]}
    receipt = Client(testclient_transport(client), language="en").submit(slug, {
        "v": 1, "unit": "某厂", "location": "", "category": "hazard", "description": "新举报",
        "seen_at": "", "insider": "", "language": "zh_CN"})
    case_id = inst.Reporter(client, receipt).feed()["case_id"]
    data = inst.data_island(me.get(f"/console/cases/{case_id}").text, "case-data")
    assert data["slot"] == "" and data["slot_v2"]
    assert len(crypto.open_key_v2(crypto.b64u_decode(data["slot_v2"]), seed,
                                  bytes.fromhex(case_id), "case")) == 32


def test_v01_claims_reach_a_finance_officer_enrolled_after_the_upgrade_as_v2(
        installation: Installation, client: TestClient, staff: dict[str, Staff]) -> None:
    """The v0.1 claims' slots are v1 (to zhao.min and the X25519 recovery key) and stay so.
    A finance officer invited after the upgrade, with an X-Wing pair from their browser's
    sign-in, is given them with ``chuishao recover --claims`` and the v0.1 secret (its
    X25519 part opens the old recovery slots): the new slots are v2 and open in the console."""
    made = staff["admin.chen"].post("/console/admin/invitations", data={
        "roles": ["finance"], "hours": "24"})
    assert made.status_code == 200, made.text
    link = inst.re.search(r'<code id="invitation-link">([^<]+)</code>', made.text)
    assert link, "no invitation link on the page"
    password = "新的财务 correct horse battery"
    enrolled = console.enrol(client.app, _settings(installation), link.group(1), "qian.hua",
                             password)
    step = inst.totp(crypto.b32_encode(enrolled.totp_secret))[1]
    while inst.totp(crypto.b32_encode(enrolled.totp_secret))[1] == step:
        time.sleep(0.5)
    newcomer = inst.sign_in(client, "qian.hua", password, crypto.b32_encode(enrolled.totp_secret))
    pre = newcomer.post("/console/api/prelogin", json={"username": "qian.hua"})
    kek = crypto.derive_password(password, crypto.b64u_decode(pre.json()["salt"]),
                                 pre.json()["iterations"]).kek
    seed, public = crypto.generate_xwing_keypair()
    kid = crypto.key_id(public)
    assert newcomer.post("/console/api/account/xwing-key", json={
        "xwing_public_key": crypto.b64u_encode(public), "xwing_key_id": kid.hex(),
        "wrapped_xwing_seed": crypto.b64u_encode(crypto.wrap_xwing_seed(kek, seed, kid)),
    }).status_code == 200
    claimed = {rid: reward for rid, reward in installation.manifest["rewards"].items()
               if reward["status"] in ("claimed", "paid")}
    assert claimed
    for rid in claimed:
        assert newcomer.post(f"/console/rewards/{rid}/claim", json={}).status_code == 403
    done = installation.chuishao("recover", "--claims", "--to", "qian.hua",
                                 stdin=installation.manifest["recovery_secret"] + "\n")
    assert f"{len(claimed)} keys sealed to qian.hua" in done.stdout, done.stdout
    for rid, reward in claimed.items():
        data = newcomer.post(f"/console/rewards/{rid}/claim", json={}).json()
        assert data["slot"] == "" and data["slot_v2"], rid
        raw = bytes.fromhex(rid)
        key = crypto.open_claim_slot(crypto.SUITE_V2, crypto.b64u_decode(data["slot_v2"]),
                                     seed, raw)
        claim = crypto.open_item(key, raw, bytes.fromhex(data["item_id"]), "claim",
                                 crypto.b64u_decode(data["blob"]))
        for field, value in reward["claim"].items():
            assert claim[field] == value, (rid, field)
        # The officer of v0.1 still opens the same claim through its v1 slot.
        old = staff["zhao.min"].post(f"/console/rewards/{rid}/claim", json={}).json()
        assert old["slot"] and old["slot_v2"] == "", rid
        assert crypto.open_claim_key(crypto.b64u_decode(old["slot"]),
                                     staff["zhao.min"].private_key, raw) == key
