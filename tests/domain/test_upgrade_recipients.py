"""Upgrading an installation made with v0.1 (tests/fixtures/v0.1, see its README):
recipients follow roles and every case carries an identity item, while every case still opens.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

import crypto
from service.domain import intake
from service.domain.models import (
    Case,
    Channel,
    ChannelRecipient,
    ChannelScope,
    KeySlot,
    SealedItem,
    User,
)
from service.platform import migrate
from service.platform.db import Database
from tests.pgutil import temporary_database
from tests.upgrade.installation import FIXTURE

DEMOTE = "UPDATE users SET roles = 'auditor' WHERE username = 'li.na'"
IDENTITIES = "SELECT id, blob FROM sealed_items WHERE kind = 'identity'"


def _private_key(user: User, password: str, iterations: int) -> bytes:
    keys = crypto.derive_password(password, user.user_salt, iterations)
    return crypto.unwrap_private_key(keys.kek, user.wrapped_private_key,
                                     bytes.fromhex(user.key_id))


def test_v01_upgrade_moves_recipients_and_pads_identities(tmp_path: Path) -> None:
    manifest: dict[str, Any] = json.loads((FIXTURE / "manifest.json").read_text("utf-8"))
    path = tmp_path / "chuishao.sqlite3"
    shutil.copy(FIXTURE / "chuishao.sqlite3", path)
    # What v0.1's console did when an admin made li.na an auditor: her role changed, her
    # recipient rows stayed (the flaw this upgrade repairs).
    with sqlite3.connect(path) as raw:
        raw.execute(DEMOTE)
        before_identity = raw.execute(IDENTITIES).fetchall()
        before_items = raw.execute("SELECT count(*) FROM sealed_items").fetchone()[0]
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    migrate.check(url)
    _check_upgraded(url, manifest, before_identity, before_items)


def test_v01_upgrade_on_postgresql(db_backend: str) -> None:
    """The same installation built on PostgreSQL (postgres.sql in the fixture)."""
    server = os.environ.get("CHUISHAO_TEST_POSTGRES_URL")
    if db_backend != "postgres" or not server or shutil.which("psql") is None:
        pytest.skip("runs with --db=postgres and psql on the PATH")
    manifest: dict[str, Any] = json.loads(
        (FIXTURE / "postgres-manifest.json").read_text("utf-8"))
    with temporary_database(server) as url:
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",
                        str(FIXTURE / "postgres.sql")], check=True, capture_output=True)
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute(DEMOTE)
            before_identity = [(i, bytes(b)) for i, b in raw.execute(IDENTITIES).fetchall()]
            row = raw.execute("SELECT count(*) FROM sealed_items").fetchone()
            assert row is not None
        migrate.upgrade(url)
        migrate.check(url)
        _check_upgraded(url, manifest, before_identity, int(row[0]))


def _check_upgraded(url: str, manifest: dict[str, Any], before_identity: list[Any],
                    before_items: int) -> None:
    database = Database.from_url(url)
    try:
        with database.session() as session:
            users = {u.username: u for u in session.scalars(select(User))}
            channels = {c.slug: c for c in session.scalars(select(Channel))}
            li, zhang = users["li.na"], users["zhang.wei"]
            assert session.scalars(select(ChannelRecipient).where(
                ChannelRecipient.user_id == li.id)).all() == []
            assert {s.channel_id for s in session.scalars(select(ChannelScope).where(
                ChannelScope.user_id == li.id))} == {
                channels[slug].id for slug in manifest["accounts"]["li.na"]["channels"]}
            for channel in channels.values():
                keys = {r.key_id for r in intake.channel_keys(session, channel, v2_only=False).recipients}
                assert li.key_id not in keys
            bureau = channels["xiangyang-yjj"]
            assert session.get(ChannelRecipient, (bureau.id, zhang.id)) is not None

            # Every case has exactly one identity item, all of one size; the real one is
            # unchanged and the others are new stand-ins.
            cases = list(session.scalars(select(Case)))
            identity = {i.case_id: i for i in session.scalars(
                select(SealedItem).where(SealedItem.kind == "identity"))}
            assert set(identity) == {c.id for c in cases}
            assert {len(i.blob) for i in identity.values()} == {intake.IDENTITY_STAND_IN_BYTES}
            assert [(i, b) for i, b in before_identity] == [
                (identity[c].id, identity[c].blob) for c in identity
                if identity[c].id in {i for i, _ in before_identity}]
            total = len(session.scalars(select(SealedItem)).all())
            assert total == before_items + len(cases) - len(before_identity)
            # The timing upgrade, which runs after, counts positions per author: each
            # author's items are numbered 1..n, the identity second of the reporter's (right
            # after the report, where intake puts it).
            for case in cases:
                positions: dict[str, list[int]] = {}
                for i in session.scalars(select(SealedItem).where(
                        SealedItem.case_id == case.id).order_by(SealedItem.position)):
                    positions.setdefault(i.author, []).append(i.position)
                for author, numbers in positions.items():
                    assert numbers == list(range(1, len(numbers) + 1)), (case.id, author)
                assert identity[case.id].author == "reporter"
                assert identity[case.id].position == 2
                first = session.scalar(select(SealedItem).where(
                    SealedItem.case_id == case.id, SealedItem.author == "reporter",
                    SealedItem.position == 1))
                assert first is not None and first.kind == "report", case.id

            # Cases still open: C06 with its identity, C01 without one.
            iterations = manifest["settings"].get("password_iterations", 600000)
            private = _private_key(zhang, manifest["accounts"]["zhang.wei"]["password"],
                                   int(iterations))
            for name in ("C06", "C01"):
                entry = manifest["cases"][name]
                case_id = entry["case_id"]
                slot = session.scalar(select(KeySlot).where(
                    KeySlot.case_id == case_id, KeySlot.key_id == zhang.key_id,
                    KeySlot.purpose == "case"))
                assert slot is not None
                key = crypto.open_key(slot.slot, private, bytes.fromhex(case_id))
                report = session.scalar(select(SealedItem).where(
                    SealedItem.case_id == case_id, SealedItem.kind == "report"))
                assert report is not None
                crypto.open_item(key, bytes.fromhex(case_id), bytes.fromhex(report.id), "report",
                                 report.blob)
                item = identity[case_id]
                if entry["identity"]:
                    opened = crypto.open_item(key, bytes.fromhex(case_id),
                                              bytes.fromhex(item.id), "identity", item.blob)
                    assert (opened["name"], opened["contact"]) == (
                        entry["identity"]["name"], entry["identity"]["contact"])
                else:
                    with pytest.raises(crypto.OpenError):
                        crypto.open_item(key, bytes.fromhex(case_id), bytes.fromhex(item.id),
                                         "identity", item.blob)
    finally:
        database.dispose()
