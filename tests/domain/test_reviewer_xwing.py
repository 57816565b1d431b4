"""Reviewers' X-Wing keys at work (PROTOCOL 17.5, 17.7): discovery lists them, the channel
fingerprint covers them, the server path and `chuishao submit` seal v2 to them, the case page
hands the v2 slot, grants, first notes and `chuishao recover` seal v2 to holders that have one."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

import crypto
from service.domain import recover, sealing, serverseal
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, KeySlot
from tests.console import sign_in
from tests.domain.test_cases import REPORT, submit
from tests.factories import add_xwing, api_client, make_reviewer, make_world, open_as

JSON = {"Accept": "application/json"}


def _suites(session, case_id: str, purpose: str = "case") -> dict[int | None, str]:  # type: ignore[no-untyped-def]
    return {slot.user_id: slot.suite for slot in session.scalars(
        select(KeySlot).where(KeySlot.case_id == case_id, KeySlot.purpose == purpose,
                              KeySlot.holder == "reviewer"))}


def _case_data(client, case_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    page = client.get(f"/console/cases/{case_id}")
    assert page.status_code == 200
    match = re.search(r'<script type="application/json" id="case-data">(.*?)</script>',
                      page.text, re.S)
    assert match
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_discovery_lists_a_reviewer_xwing_key_and_the_fingerprint_covers_it(  # type: ignore[no-untyped-def]
        client, session, settings) -> None:
    world = make_world(session, settings)
    before = api_client(client).channels()["channels"][0]
    assert all("xwing_key_id" not in r for r in before["recipients"] if r["holder"] == "reviewer")
    first = world.reviewers[0]
    first.xwing_seed = add_xwing(session, first.user)
    session.commit()
    after = api_client(client).channels()["channels"][0]
    listed = {r["key_id"]: r for r in after["recipients"]}
    mine = listed[first.user.key_id]
    assert mine["xwing_key_id"] == first.user.xwing_key_id
    assert crypto.b64u_decode(mine["xwing_public_key"]) == \
        crypto.xwing_public_key(first.xwing_seed)
    assert "xwing_key_id" not in listed[world.reviewers[1].user.key_id]
    # Over every id of both kinds: a server withholding the reviewer's X-Wing key shows another.
    ids = [bytes.fromhex(i) for r in after["recipients"]
           for i in (r["key_id"], r.get("xwing_key_id")) if i]
    assert after["fingerprint"] == crypto.keyset_fingerprint(ids).hex()
    assert after["fingerprint"] != before["fingerprint"]


def test_the_server_path_and_chuishao_submit_seal_v2_to_a_reviewer_with_one(  # type: ignore[no-untyped-def]
        client, session, settings) -> None:
    world = make_world(session, settings, reviewers=0)
    hybrid = make_reviewer(session, "hybrid", world.channel, xwing=True)
    session.commit()
    assert hybrid.xwing_seed is not None
    serverseal.seal_on_server(session, settings, "acme", REPORT, None, [])
    by_server = session.scalar(select(Case).where(Case.sealed_on_server.is_(True)))
    by_client, _ = submit(client, session)
    for case in (by_server, by_client):
        assert _suites(session, case.id) == {hybrid.user.id: crypto.SUITE_V2}
        slot = session.scalar(select(KeySlot).where(KeySlot.case_id == case.id,
                                                    KeySlot.user_id == hybrid.user.id))
        assert slot.key_id == hybrid.user.xwing_key_id and len(slot.slot) == crypto.SLOT_SIZE_V2
        # Every case-key slot v2 (reviewer, recovery, reporter): not classical-only.
        assert not case.classical_only
        assert open_as(hybrid.private_key, session, case.id,
                       xwing_seed=hybrid.xwing_seed)[1]["report"] == [REPORT]


def test_the_case_page_hands_the_v2_slot_and_the_list_both(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings, reviewers=1)
    classical_case, _ = submit(client, session)  # sealed before the reviewer had an X-Wing key
    me = world.reviewers[0]
    me.xwing_seed = add_xwing(session, me.user)
    session.commit()
    hybrid_case, _ = submit(client, session)
    sign_in(client, session, settings, me.user)
    old, new = _case_data(client, classical_case.id), _case_data(client, hybrid_case.id)
    assert old["slot"] and old["slot_v2"] == ""
    assert new["slot"] == "" and new["slot_v2"]
    key = crypto.open_key_v2(crypto.b64u_decode(new["slot_v2"]), me.xwing_seed,
                             bytes.fromhex(hybrid_case.id), "case")
    assert key == open_as(me.private_key, session, hybrid_case.id,
                          xwing_seed=me.xwing_seed)[0]
    assert new["can_write"] and old["can_write"]
    listing = client.get("/console/cases").text
    rows = dict(re.findall(r'data-case-id="([0-9a-f]{32})" data-slot="[^"]*".*?'
                           r'data-slot-v2="([^"]*)"', listing))
    assert rows[classical_case.id] == "" and rows[hybrid_case.id] == new["slot_v2"]
    # The internal key's recipients carry the X-Wing key where there is one.
    recipients = {r["key_id"]: r for r in new["internal_recipients"]}
    assert recipients[me.user.key_id]["xwing_key_id"] == me.user.xwing_key_id


def test_grants_and_first_notes_seal_v2_to_holders_with_an_xwing_key(  # type: ignore[no-untyped-def]
        client, session, settings) -> None:
    world = make_world(session, settings, reviewers=1)
    me = world.reviewers[0]
    me.xwing_seed = add_xwing(session, me.user)
    session.commit()
    case, _ = submit(client, session)
    hybrid = make_reviewer(session, "hybrid", world.channel, xwing=True)
    classic = make_reviewer(session, "classic", world.channel)
    session.commit()
    key, _ = open_as(me.private_key, session, case.id, xwing_seed=me.xwing_seed)
    raw_id = bytes.fromhex(case.id)
    headers = {"X-CSRF-Token": sign_in(client, session, settings, me.user), **JSON}
    url = f"/console/cases/{case.id}/grants"

    def slot(suite: str, key_id: str, public: bytes, purpose: str = "case",
             secret: bytes = key) -> dict[str, str]:
        return {"purpose": purpose, "suite": suite, "key_id": key_id,
                "slot": crypto.b64u_encode(crypto.seal_slot(suite, secret, public, raw_id,
                                                            purpose))}

    h = hybrid.user
    assert h.xwing_key_id is not None and h.xwing_public_key is not None
    v2 = slot(crypto.SUITE_V2, h.xwing_key_id, h.xwing_public_key)
    for bad in ({**v2, "suite": crypto.SUITE},  # v1 under an X-Wing key id
                slot(crypto.SUITE_V2, h.key_id, h.xwing_public_key),  # v2 under the X25519 id
                {**v2, "slot": crypto.b64u_encode(crypto.b64u_decode(v2["slot"])[:-1])},
                {**v2, "suite": "x-unknown"}):
        refused = client.post(url, json={"user_id": h.id, "slots": [bad]}, headers=headers)
        assert refused.status_code == 400, bad
    assert client.post(url, json={"user_id": h.id, "slots": [v2]},
                       headers=headers).status_code == 201
    assert open_as(hybrid.private_key, session, case.id,
                   xwing_seed=hybrid.xwing_seed)[1]["report"] == [REPORT]
    session.refresh(case)
    assert not case.classical_only
    # A colleague without an X-Wing key gets a v1 slot, and the case is then classical-only.
    c = classic.user
    assert client.post(url, json={"user_id": c.id, "slots": [slot(crypto.SUITE, c.key_id,
                                                                  c.public_key)]},
                       headers=headers).status_code == 201
    session.refresh(case)
    assert case.classical_only
    assert _suites(session, case.id) == {me.user.id: crypto.SUITE_V2, h.id: crypto.SUITE_V2,
                                         c.id: crypto.SUITE}

    # The first note's internal key: v2 to every recipient with an X-Wing key.
    internal = crypto.new_key()
    installation = get_installation(session)
    recipients = [(r["key_id"], r) for r in _case_data(client, case.id)["internal_recipients"]]
    slots = []
    for _, r in recipients:
        if "xwing_key_id" in r:
            slots.append(slot(crypto.SUITE_V2, r["xwing_key_id"],
                              crypto.b64u_decode(r["xwing_public_key"]), "internal", internal))
        else:
            slots.append(slot(crypto.SUITE, r["key_id"], crypto.b64u_decode(r["public_key"]),
                              "internal", internal))
    note = sealing.seal_item_for_case(internal, case.id, "note", {"v": 1, "text": "内部"})
    wrong = [dict(s, suite=crypto.SUITE) if s["suite"] == crypto.SUITE_V2 else s for s in slots]
    assert client.post(f"/console/cases/{case.id}/notes", json={**note, "slots": wrong},
                       headers=headers).status_code == 400
    made = client.post(f"/console/cases/{case.id}/notes", json={**note, "slots": slots},
                       headers=headers)
    assert made.status_code == 201, made.text
    suites = _suites(session, case.id, "internal")
    assert suites[me.user.id] == crypto.SUITE_V2 and suites[h.id] == crypto.SUITE_V2
    assert suites[c.id] == crypto.SUITE
    recovery = session.scalar(select(KeySlot).where(KeySlot.case_id == case.id,
                                                    KeySlot.purpose == "internal",
                                                    KeySlot.holder == "recovery"))
    assert recovery.key_id == installation.recovery_xwing_key_id
    mine = session.scalar(select(KeySlot).where(KeySlot.case_id == case.id,
                                                KeySlot.purpose == "internal",
                                                KeySlot.user_id == h.id))
    assert crypto.open_key_v2(mine.slot, hybrid.xwing_seed, raw_id, "internal") == internal


def test_recover_seals_v2_to_a_reviewer_with_an_xwing_key(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings, reviewers=0)
    serverseal.seal_on_server(session, settings, "acme", REPORT, None, [])
    case = session.scalar(select(Case))
    assert not case.classical_only  # recovery and reporter only, both v2
    newcomer = make_reviewer(session, "newcomer", world.channel, xwing=True)
    done = recover.recover(session, "acme", "newcomer", None, world.recovery_xwing_seed)
    assert done.granted == 1
    assert _suites(session, case.id) == {newcomer.user.id: crypto.SUITE_V2}
    session.refresh(case)
    assert not case.classical_only
    assert open_as(newcomer.private_key, session, case.id,
                   xwing_seed=newcomer.xwing_seed)[1]["report"] == [REPORT]
    # Held already (under the X-Wing key id): skipped the second time.
    assert recover.recover(session, "acme", "newcomer", None,
                           world.recovery_xwing_seed).skipped == 1
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "account.add_pq"))
