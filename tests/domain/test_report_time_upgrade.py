"""The upgrade that stops stored data from dating reporters, on the installation made with the
first version (tests/fixtures/v0.1): ids and positions change, every case still opens
with its receipt, each author's messages keep their order, the audit trail stays intact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service.domain import audit, serverseal
from service.domain.models import SealedItem
from service.platform import migrate
from service.platform.db import make_engine
from tests.conftest import fast_settings
from tests.pgutil import temporary_database
from tests.upgrade.installation import FIXTURE

RANDOM_ID_TABLES = ("key_slots", "case_events", "reward_claim_slots")
ROWID_TABLES = ("cases", "sealed_items", "files", "file_chunks", "spent_stamps")



@pytest.fixture
def installation(db_backend: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if db_backend == "sqlite":
        copy = tmp_path / "chuishao.sqlite3"
        shutil.copyfile(FIXTURE / "chuishao.sqlite3", copy)
        yield f"sqlite:///{copy}", json.loads((FIXTURE / "manifest.json").read_text())
        return
    server = os.environ["CHUISHAO_TEST_POSTGRES_URL"]
    with temporary_database(server) as url:
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f",  # noqa: S607
                        str(FIXTURE / "postgres.sql")], check=True, capture_output=True)
        yield url, json.loads((FIXTURE / "postgres-manifest.json").read_text())


def _rows(session: Session, table: str) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in session.execute(text(f"SELECT * FROM {table}"))]  # noqa: S608


def _positions(session: Session) -> dict[tuple[str, str], list[str]]:
    order: dict[tuple[str, str], list[str]] = {}
    for item in session.scalars(select(SealedItem).order_by(SealedItem.position,
                                                            SealedItem.id)):
        order.setdefault((item.case_id, item.author), []).append(item.id)
    return order


def _rowids(session: Session, table: str) -> list[int]:
    return list(session.scalars(text(f"SELECT rowid FROM {table} ORDER BY rowid")))  # noqa: S608


def test_upgrade_randomises_ids_and_every_case_still_opens(
        installation: tuple[str, dict[str, Any]], db_backend: str, tmp_path: Path) -> None:
    url, manifest = installation
    migrate.upgrade(url, revision="0008")  # the fixture's own head; a no-op
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            before = {table: _rows(session, table) for table in RANDOM_ID_TABLES}
            positions = _positions(session)
            had_identity = set(session.scalars(select(SealedItem.case_id).where(
                SealedItem.kind == "identity")))
            rowids = {t: _rowids(session, t) for t in ROWID_TABLES} if db_backend == "sqlite" \
                else {}
        migrate.upgrade(url)
        with Session(engine) as session:
            for table, old in before.items():
                new = _rows(session, table)
                # The same rows, every column but the id kept; ids no longer small or ordered.
                strip = [tuple(sorted((k, repr(v)) for k, v in row.items() if k != "id"))
                         for row in old]
                assert Counter(strip) == Counter(
                    tuple(sorted((k, repr(v)) for k, v in row.items() if k != "id"))
                    for row in new), table
                assert old and all(row["id"] > 2**32 for row in new), table
                assert len({row["id"] for row in new}) == len(new)
            # Positions are counted per author now, in the order they had. The recipients
            # upgrade, which runs before, gave every case without an identity a stand-in
            # right after its report (where intake puts one): the only new item.
            after = _positions(session)
            assert after.keys() == positions.keys()
            for (case_id, author), ids in after.items():
                expected = positions[(case_id, author)]
                if author == "reporter" and case_id not in had_identity:
                    stand_in = session.get(SealedItem, ids[1])
                    assert stand_in is not None and stand_in.kind == "identity", case_id
                    assert stand_in.id not in expected
                    expected = [expected[0], stand_in.id, *expected[1:]]
                assert ids == expected, (case_id, author)
            assert Counter(session.scalars(select(SealedItem.case_id).where(
                SealedItem.kind == "identity"))) == Counter(
                case_id for case_id, author in after if author == "reporter")
            for (case_id, author), ids in after.items():
                assert [session.get(SealedItem, i).position for i in ids] == \
                    list(range(1, len(ids) + 1)), (case_id, author)
            positions_cases = {case_id for case_id, _ in positions}
            for table, old_rowids in rowids.items():
                new_rowids = _rowids(session, table)
                if table == "spent_stamps":
                    # Long expired (the fixture is days old): forgotten by the upgrade.
                    assert not new_rowids
                    continue
                added = len(positions_cases - had_identity) if table == "sealed_items" else 0
                assert len(new_rowids) == len(old_rowids) + added > 2, table
                assert any(abs(r) > 2**32 for r in new_rowids), table
            # No case's `updated_at` is behind its latest reviewer event any more (a reporter's
            # activity had set it back to its period's start, after that reviewer).
            for case_id, updated, latest in session.execute(text(
                    "SELECT c.id, c.updated_at, max(e.created_at) FROM cases c JOIN case_events "
                    "e ON e.case_id = c.id AND e.user_id IS NOT NULL GROUP BY c.id, c.updated_at")):
                assert str(updated) >= str(latest) if db_backend == "sqlite" \
                    else updated >= latest, case_id
            assert audit.verify_chain(session).ok
            settings = fast_settings(tmp_path / "var", receipt_iterations=600_000,
                                     time_granularity_seconds=3600)
            for name, case in manifest["cases"].items():
                opened = serverseal.open_with_receipt(session, settings, case["receipt"])
                assert opened.case.id == case["case_id"], name
                report = next(i.content for i in opened.items if i.kind == "report")
                assert report.get("description") == case["report"]["description"], name
                for author, kind in (("reviewer", "message"), ("reporter", "reply")):
                    shown = [i.content.get("text") for i in opened.items
                             if i.kind == kind and i.author == author]
                    sent = [m["text"] for m in case.get("messages", [])
                            if m["from"] == author and m.get("text")]
                    assert shown == sent, (name, author)
    finally:
        engine.dispose()
