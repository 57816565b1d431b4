"""Nothing stored in plaintext tells which cases carry the reporter's identity.

Before, a case had an ``identity`` row in ``sealed_items`` exactly when the reporter gave a
name or contact: anyone reading the database (or a backup) could list the reporters who
identified themselves. Now every case has one identity item of the same size; when the
reporter gave none it is a stand-in that no key opens.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from service.domain.installation import get_installation
from service.domain.intake import IDENTITY_STAND_IN_BYTES
from service.domain.models import Case, SealedItem
from tests.factories import api_client, make_world, open_as

REPORT = {"v": 1, "unit": "某机械厂", "location": "二号车间", "category": "hazard",
          "description": "冲床的光电保护装置被拆除。"}


def _shape(session: Session, case: Case) -> list[tuple[Any, ...]]:
    """Everything plaintext about a case's items, ids and contents aside."""
    return [(i.kind, i.author, i.user_id, len(i.blob), i.blob[:1], i.position, i.created_at)
            for i in session.scalars(select(SealedItem).where(SealedItem.case_id == case.id)
                                     .order_by(SealedItem.position))]


def test_cases_with_and_without_identity_look_alike(client: TestClient, session: Session,
                                                    settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    sent: dict[str, dict[str, Any] | None] = {}
    for identity in (None, {"v": 1, "name": "王建国", "contact": "13800138000"}, None,
                     {"v": 1, "name": "", "contact": "wechat: worker-17"}):
        receipt = api_client(client).submit("acme", REPORT, identity=identity)
        keys = crypto.derive_receipt(receipt, get_installation(session).salt, 1000)
        case = session.scalar(select(Case).where(Case.lookup_hash == keys.lookup_hash.hex()))
        assert case is not None
        sent[case.id] = identity
    cases = [session.get(Case, case_id) for case_id in sent]
    shapes = {tuple(_shape(session, case)) for case in cases if case is not None}
    assert len(shapes) == 1, shapes  # one shape for all four
    (shape,) = shapes
    assert [row[0] for row in shape] == ["report", "identity"]
    assert shape[1][3] == IDENTITY_STAND_IN_BYTES

    # Reviewers still tell them apart, after opening: the stand-in opens with no key.
    reviewer = world.reviewers[0]
    for case_id, identity in sent.items():
        case_key, items = open_as(reviewer.private_key, session, case_id)
        assert items.get("identity") == ([identity] if identity else None)
        if identity is None:
            stand_in = session.scalar(select(SealedItem).where(
                SealedItem.case_id == case_id, SealedItem.kind == "identity"))
            assert stand_in is not None
            with pytest.raises(crypto.OpenError):
                crypto.open_item(case_key, bytes.fromhex(case_id), bytes.fromhex(stand_in.id),
                                 "identity", stand_in.blob)
