"""A database writer against the audit chain and the signed exports.

With write access to the database alone one can rewrite an entry and compute every hash
after it again, cut the newest entries off, or replace the installation's public key and sign
a forged export with a key of one's own. The chain then verifies on its own, and before the
key was pinned, so did the forged export. What catches each: heads kept outside the database
(every export manifest names one, signed; so does a signed head), and a key file the auditor
keeps.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from service import cli
from service.app import create_app
from service.domain import audit, exports
from service.domain.installation import get_installation, read_key_file
from service.domain.models import AuditEntry, Installation, User
from service.platform.db import Database
from service.platform.settings import Settings
from tests.conftest import BASE_URL, fast_settings
from tests.console import sign_in
from tests.factories import make_reviewer
from tests.upgrade.installation import FIXTURE


def installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Settings, Database]:
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    assert cli.main(["init"], settings) == 0
    capsys.readouterr()
    return settings, Database.from_url(settings.database)


def staff_actions(database: Database, count: int, start: int = 0) -> None:
    with database.session() as session:
        user = session.scalar(select(User).where(User.username == "alice"))
        if user is None:
            user = make_reviewer(session, "alice").user
        for i in range(start, start + count):
            audit.append(session, "case.view", actor=user, target=f"case-{i}")


def export(settings: Settings, out: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert cli.main(["export", "rewards", "--out", str(out)], settings) == 0
    capsys.readouterr()
    manifest: dict = json.loads(Path(str(out) + ".manifest.json").read_text())  # type: ignore[type-arg]
    return manifest


def recompute_chain(session: Session, start: int) -> None:
    """What a database writer does after changing an entry: every hash from it on, again."""
    rows = list(session.scalars(select(AuditEntry).where(AuditEntry.id >= start - 1)
                                .order_by(AuditEntry.id)))
    previous = rows[0].hash if start > 1 else audit.GENESIS
    for entry in rows[1:] if start > 1 else rows:
        entry.prev_hash = previous
        entry.hash = audit.entry_hash(previous, entry)
        session.flush()
        previous = entry.hash


def verify(settings: Settings, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["audit", "verify", *args], settings)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.sqlite_only
def test_a_rewritten_chain_verifies_alone_but_not_against_a_kept_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, database = installed(tmp_path, capsys)
    pub = str(settings.data_dir / "signing.pub")
    try:
        staff_actions(database, 5)
        manifest = export(settings, tmp_path / "rewards.csv", capsys)
        kept = str(tmp_path / "rewards.csv.manifest.json")
        anchor = f"{manifest['audit_chain']['entry']}:{manifest['audit_chain']['head']}"
        staff_actions(database, 3, start=5)
        code, out = verify(settings, capsys, "--since-manifest", kept, "--key-file", pub,
                           "--expect-head", anchor)
        assert code == 0 and "every head you hold (2), unchanged" in out
        # The writer changes entry 2 and computes the chain again.
        with database.session() as session:
            session.execute(update(AuditEntry).where(AuditEntry.id == 2)
                            .values(target="case-innocent"))
            session.expire_all()
            recompute_chain(session, 2)
        code, out = verify(settings, capsys)
        assert code == 0  # on its own, the rewritten chain is intact
        assert "no head held outside the database" in out
        code, out = verify(settings, capsys, "--since-manifest", kept, "--key-file", pub)
        assert code == 1
        assert f"rewritten at or before entry {manifest['audit_chain']['entry']}" in out
        code, out = verify(settings, capsys, "--expect-head", anchor)
        assert code == 1 and "rewritten" in out
    finally:
        database.dispose()


@pytest.mark.sqlite_only
def test_cutting_the_newest_entries_off_is_caught_by_a_kept_head(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, database = installed(tmp_path, capsys)
    pub = str(settings.data_dir / "signing.pub")
    try:
        staff_actions(database, 4)
        # A signed head, as the console's audit page or `chuishao audit head` gives it.
        head_file = tmp_path / "head.json"
        assert cli.main(["audit", "head", "--out", str(head_file)], settings) == 0
        signed = json.loads(head_file.read_text())
        assert signed["schema"] == audit.HEAD_SCHEMA and signed["entry"] == 4
        staff_actions(database, 3, start=4)
        code, out = verify(settings, capsys, "--since-manifest", str(head_file),
                           "--key-file", pub)
        assert code == 0, out
        # The writer deletes entries 3 to 7: what is left is a consistent chain of two.
        with database.session() as session:
            session.execute(text("DELETE FROM audit_log WHERE id >= 3"))
        code, out = verify(settings, capsys)
        assert code == 0 and "2 entries" in out
        code, out = verify(settings, capsys, "--since-manifest", str(head_file),
                           "--key-file", pub)
        assert code == 1
        assert "entry 4 is gone, the chain now ends at entry 2" in out
        # A head changed by hand, or not signed by the pinned key, is refused as an anchor.
        forged = {**signed, "entry": 2}
        head_file.write_text(json.dumps(forged))
        code, out = verify(settings, capsys, "--since-manifest", str(head_file),
                           "--key-file", pub)
        assert code == 2 and "changed after it was signed" in out
        private, public = crypto.generate_signing_key()
        other = {**forged, "public_key": crypto.b64u_encode(public)}
        other["signature"] = crypto.b64u_encode(crypto.sign(private, exports.canonical(other)))
        head_file.write_text(json.dumps(other))
        code, out = verify(settings, capsys, "--since-manifest", str(head_file),
                           "--key-file", pub)
        assert code == 2 and "not the pinned key" in out
        # A manifest or head as anchor needs a pinned key, like export verify.
        code, out = verify(settings, capsys, "--since-manifest", str(head_file))
        assert code == 2 and "no pinned public key" in out
        code, out = verify(settings, capsys, "--expect-head", "nonsense")
        assert code == 2 and "ENTRY:HASH" in out
    finally:
        database.dispose()


@pytest.mark.sqlite_only
def test_a_replaced_database_key_does_not_make_a_forged_export_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, database = installed(tmp_path, capsys)
    pub = settings.data_dir / "signing.pub"
    try:
        with database.session() as session:
            installation = get_installation(session)
            assert installation is not None
            real = installation.signing_public_key
        assert read_key_file(pub.read_bytes()) == real
        assert read_key_file(settings.signing_key_path.read_bytes()) == real
        out = tmp_path / "rewards.csv"
        manifest = export(settings, out, capsys)
        # The writer adds a payment to the file, replaces the installation's public key with
        # one of their own and signs a manifest that fits the forged file.
        forged_bytes = out.read_bytes() + b"forged,row\r\n"
        out.write_bytes(forged_bytes)
        private, public = crypto.generate_signing_key()
        with database.session() as session:
            session.execute(update(Installation).values(signing_public_key=public))
        forged = {**manifest, "file_sha256": hashlib.sha256(forged_bytes).hexdigest(),
                  "file_bytes": len(forged_bytes), "record_count": 1,
                  "public_key": crypto.b64u_encode(public)}
        forged["signature"] = crypto.b64u_encode(crypto.sign(private, exports.canonical(forged)))
        forged_path = tmp_path / "forged.json"
        forged_path.write_text(json.dumps(forged))
        argv = ["export", "verify", str(out), str(forged_path)]
        # Without a pinned key the command refuses (before: it took the database's key and
        # said "export verified").
        assert cli.main(argv, settings) == 2
        err = capsys.readouterr().err
        assert "no pinned public key" in err and "--key-file" in err
        assert "--trust-database-key" in err
        assert cli.main([*argv, "--key-file", str(pub)], settings) == 1
        assert "MISMATCH\tkey" in capsys.readouterr().out
        # Told explicitly to trust the database, it does, and says what that is worth.
        assert cli.main([*argv, "--trust-database-key"], settings) == 0
        assert "proves nothing against someone able to write the database" in \
            capsys.readouterr().err
        # The console shows the fingerprint of the key the service signs with and says the
        # database's copy was replaced.
        with database.session() as session:
            auditor = make_reviewer(session, "sun.li", roles="auditor").user
            session.commit()
            with TestClient(create_app(settings), base_url=BASE_URL) as client:
                sign_in(client, session, settings, auditor)
                page = client.get("/console/audit")
                assert page.status_code == 200
                assert crypto.signing_fingerprint(real) in page.text
                assert 'id="key-replaced"' in page.text
                assert crypto.signing_fingerprint(real) in client.get("/console/rewards").text
                key_file = client.get("/console/audit/signing.pub")
                assert read_key_file(key_file.content) == real
                head = client.get("/console/audit/head.json").json()
                assert audit.anchor_from_document(json.dumps(head), real, "head").entry == \
                    head["entry"]
    finally:
        database.dispose()


@pytest.mark.sqlite_only
def test_init_prints_the_fingerprint_and_writes_the_key_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    database = Database.from_url(settings.database)
    try:
        assert cli.main(["init"], settings) == 0
        out = capsys.readouterr().out
        with database.session() as session:
            public = get_installation(session).signing_public_key  # type: ignore[union-attr]
        assert crypto.signing_fingerprint(public) in out
        assert str(settings.data_dir / "signing.pub") in out
        assert read_key_file((settings.data_dir / "signing.pub").read_bytes()) == public
    finally:
        database.dispose()


def fixture_copy(tmp_path: Path) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("chuishao.sqlite3", "secret.key", "signing.key"):
        shutil.copy2(FIXTURE / name, data / name)
    shutil.copytree(FIXTURE / "exports", tmp_path / "exports")
    return fast_settings(data)


@pytest.mark.sqlite_only
def test_the_first_versions_exports_still_verify_given_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = fixture_copy(tmp_path)
    assert cli.main(["migrate"], settings) == 0
    signing_key = str(settings.signing_key_path)
    manifests = sorted((tmp_path / "exports").glob("*.manifest.json"))
    assert len(manifests) == 2
    for manifest in manifests:
        data = tmp_path / "exports" / manifest.name.removesuffix(".manifest.json")
        assert cli.main(["export", "verify", str(data), str(manifest), "--key-file",
                         signing_key], settings) == 0, capsys.readouterr()
        assert "export verified" in capsys.readouterr().out
        assert cli.main(["export", "verify", str(data), str(manifest)], settings) == 2
        capsys.readouterr()
    # The key file for the auditor of an installation made before there was one.
    assert cli.main(["audit", "key", "--out", str(tmp_path / "auditor.pub")], settings) == 0
    out = capsys.readouterr().out
    key_id = json.loads(manifests[0].read_text())["installation_key_id"]
    assert " ".join(key_id[i:i + 4] for i in range(0, 32, 4)) in out
    args = [item for m in manifests for item in ("--since-manifest", str(m))]
    code, out = verify(settings, capsys, *args, "--key-file", str(tmp_path / "auditor.pub"))
    assert code == 0 and "108 entries" in out and "every head you hold (2)" in out
    # The PostgreSQL build's exports, checked offline with that build's key.
    for manifest in sorted((FIXTURE / "postgres-exports").glob("*.manifest.json")):
        data = FIXTURE / "postgres-exports" / manifest.name.removesuffix(".manifest.json")
        assert cli.main(["export", "verify", str(data), str(manifest), "--key-file",
                         str(FIXTURE / "postgres-data" / "signing.key")], settings) == 0
        capsys.readouterr()
