"""Reviewers' own slots on an installation that requires v2 (PROTOCOL 17.7): a grant is v2
or refused, and a first note's internal key goes to the holders intake seals to, so a
reviewer left out of new cases for lack of an X-Wing key gets no v1 slot that way either."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import crypto
from service.domain import sealing
from service.domain.models import KeySlot
from service.platform.settings import Settings
from tests.conftest import fast_settings
from tests.console import sign_in
from tests.domain.test_cases import submit
from tests.domain.test_reviewer_xwing import JSON, _case_data, _suites
from tests.factories import add_xwing, make_reviewer, make_world, open_as


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "var", require_v2=True)


def test_grants_are_v2_only_and_notes_skip_the_left_out(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings, reviewers=1)
    me = world.reviewers[0]
    me.xwing_seed = add_xwing(session, me.user)
    hybrid = make_reviewer(session, "hybrid", world.channel, xwing=True)
    classic = make_reviewer(session, "classic", world.channel)  # no X-Wing key: left out
    session.commit()
    case, _ = submit(client, session)
    assert _suites(session, case.id) == {me.user.id: crypto.SUITE_V2,
                                         hybrid.user.id: crypto.SUITE_V2}
    assert not case.classical_only
    key, _ = open_as(me.private_key, session, case.id, xwing_seed=me.xwing_seed)
    raw_id = bytes.fromhex(case.id)
    headers = {"X-CSRF-Token": sign_in(client, session, settings, me.user), **JSON}

    def slot(suite: str, key_id: str, public: bytes, purpose: str = "case",
             secret: bytes = key) -> dict[str, str]:
        return {"purpose": purpose, "suite": suite, "key_id": key_id,
                "slot": crypto.b64u_encode(crypto.seal_slot(suite, secret, public, raw_id,
                                                            purpose))}

    c = classic.user
    refused = client.post(f"/console/cases/{case.id}/grants", headers=headers, json={
        "user_id": c.id, "slots": [slot(crypto.SUITE, c.key_id, c.public_key)]})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "v2_required" and error["message"].startswith("本系统要求抗量子封存")
    assert _suites(session, case.id).get(c.id) is None
    session.refresh(case)
    assert not case.classical_only

    # The first note: the page is handed the recipients intake seals to, without `classic`.
    recipients = _case_data(client, case.id)["internal_recipients"]
    assert c.key_id not in {r["key_id"] for r in recipients}
    internal = crypto.new_key()
    slots = [slot(crypto.SUITE_V2, r["xwing_key_id"], crypto.b64u_decode(r["xwing_public_key"]),
                  "internal", internal) for r in recipients]
    note = sealing.seal_item_for_case(internal, case.id, "note", {"v": 1, "text": "内部"})
    with_classic = [*slots, slot(crypto.SUITE, c.key_id, c.public_key, "internal", internal)]
    refused = client.post(f"/console/cases/{case.id}/notes",
                          json={**note, "slots": with_classic}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "internal_slot_refused"
    made = client.post(f"/console/cases/{case.id}/notes", json={**note, "slots": slots},
                       headers=headers)
    assert made.status_code == 201, made.text
    internal_suites = set(session.scalars(select(KeySlot.suite).where(
        KeySlot.case_id == case.id, KeySlot.purpose == "internal")))
    assert internal_suites == {crypto.SUITE_V2}

    # Once `classic` has a key, a v2 grant goes through.
    c_seed = add_xwing(session, c)
    session.commit()
    assert c.xwing_key_id is not None and c.xwing_public_key is not None
    granted = client.post(f"/console/cases/{case.id}/grants", headers=headers, json={
        "user_id": c.id, "slots": [slot(crypto.SUITE_V2, c.xwing_key_id, c.xwing_public_key)]})
    assert granted.status_code == 201, granted.text
    assert open_as(classic.private_key, session, case.id, xwing_seed=c_seed)[0] == key
