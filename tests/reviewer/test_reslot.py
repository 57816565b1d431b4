"""Re-slotting a classical-only case (PROTOCOL 17.8), with Python playing the case page: a
reviewer holding the case key seals it v2 to every holder of a v1 slot that now has an X-Wing
key, the v1 slots go, the content is untouched; only exactly the listed set is taken; holders
without an X-Wing key and the reporter's v1 slot stay, and so does the marking."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

import crypto
from service.domain import sealing
from service.domain.models import AuditEntry, Case, KeySlot, SealedItem
from tests.console import sign_in
from tests.domain.test_cases import REPORT, submit
from tests.domain.test_reviewer_xwing import JSON, _case_data
from tests.factories import add_xwing, api_client, make_reviewer, make_world, open_as


def _slots(session, case_id: str) -> set[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(purpose, holder name, suite) of every slot of the case."""
    names = {}
    for slot in session.scalars(select(KeySlot).where(KeySlot.case_id == case_id)):
        who = slot.holder if slot.user_id is None else f"user{slot.user_id}"
        names[(slot.purpose, who, slot.suite)] = slot
    return set(names)


def _seal(case_id: str, targets: list[dict[str, Any]], keys: dict[str, bytes]) -> list[dict]:  # type: ignore[type-arg]
    raw_id = bytes.fromhex(case_id)
    return [{"purpose": t["purpose"], "suite": crypto.SUITE_V2, "key_id": t["xwing_key_id"],
             "slot": crypto.b64u_encode(crypto.seal_slot(
                 crypto.SUITE_V2, keys[t["purpose"]], crypto.b64u_decode(t["xwing_public_key"]),
                 raw_id, t["purpose"]))} for t in targets]


def test_a_reviewer_replaces_the_classical_slots_of_holders_with_an_xwing_key(  # type: ignore[no-untyped-def]
        client, session, settings) -> None:
    world = make_world(session, settings, reviewers=1)
    me = world.reviewers[0]
    li = make_reviewer(session, "li.na", world.channel)
    zhou = make_reviewer(session, "zhou", world.channel)
    session.commit()
    case, _ = submit(client, session)  # before anyone had an X-Wing key: v1 to reviewers
    assert case.classical_only
    case_key, _ = open_as(me.private_key, session, case.id)
    headers = {"X-CSRF-Token": sign_in(client, session, settings, me.user), **JSON}
    # The first note brings the internal key, v1 to the reviewers as well.
    internal = crypto.new_key()
    raw_id = bytes.fromhex(case.id)
    note_slots = []
    for r in _case_data(client, case.id)["internal_recipients"]:
        suite, kid, public = ((crypto.SUITE_V2, r["xwing_key_id"], r["xwing_public_key"])
                              if "xwing_key_id" in r else
                              (crypto.SUITE, r["key_id"], r["public_key"]))
        note_slots.append({"purpose": "internal", "suite": suite, "key_id": kid,
                           "slot": crypto.b64u_encode(crypto.seal_slot(
                               suite, internal, crypto.b64u_decode(public), raw_id,
                               "internal"))})
    note = sealing.seal_item_for_case(internal, case.id, "note", {"v": 1, "text": "内部记录"})
    assert client.post(f"/console/cases/{case.id}/notes", json={**note, "slots": note_slots},
                       headers=headers).status_code == 201
    blobs_before = {i.id: i.blob for i in session.scalars(select(SealedItem))}

    # Nothing to re-slot while nobody has an X-Wing key.
    assert _case_data(client, case.id)["reslot"] == []
    me.xwing_seed = add_xwing(session, me.user)
    li.xwing_seed = add_xwing(session, li.user)
    session.commit()
    page = client.get(f"/console/cases/{case.id}")
    assert 'id="reslot-panel"' in page.text and "封存抗量子密钥槽" in page.text
    targets = _case_data(client, case.id)["reslot"]
    # Me and li.na, each for both keys; not zhou (no X-Wing key), not the recovery key (v2
    # already), never the reporter.
    assert sorted((t["purpose"], t["user_id"]) for t in targets) == sorted(
        (p, u) for p in ("case", "internal") for u in (me.user.id, li.user.id))
    keys = {"case": case_key, "internal": internal}
    good = _seal(case.id, targets, keys)
    url = f"/console/cases/{case.id}/reslot"
    before = _slots(session, case.id)
    refusals = [
        ([{**good[0], "suite": crypto.SUITE,
           "slot": crypto.b64u_encode(b"\0" * crypto.SLOT_SIZE)}, *good[1:]], 400),
        (good[1:], 409),  # one missing
        ([*good, {**good[0], "purpose": "internal", "key_id": "ab" * 16}], 409),  # one extra
    ]
    for body, status in refusals:
        refused = client.post(url, json={"slots": body}, headers=headers)
        assert refused.status_code == status, refused.text
        assert _slots(session, case.id) == before
    conflict = client.post(url, json={"slots": good[1:]}, headers=headers).json()["error"]
    assert conflict["code"] == "reslot_changed" and "重新加载" in conflict["message"]
    # A reviewer holding no key of the case cannot re-slot it.
    outsider = make_reviewer(session, "outsider", world.channel, xwing=True)
    session.commit()
    other = {"X-CSRF-Token": sign_in(client, session, settings, outsider.user), **JSON}
    assert client.post(url, json={"slots": good}, headers=other).status_code == 403
    headers = {"X-CSRF-Token": sign_in(client, session, settings, me.user), **JSON}

    done = client.post(url, json={"slots": good}, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json() == {"replaced": 4, "classical_only": True}  # zhou is still v1
    session.expire_all()
    after = _slots(session, case.id)
    for user in (me.user, li.user):
        for purpose in ("case", "internal"):
            assert (purpose, f"user{user.id}", crypto.SUITE_V2) in after
            assert (purpose, f"user{user.id}", crypto.SUITE) not in after  # removed
    assert ("case", f"user{zhou.user.id}", crypto.SUITE) in after
    # The key, not the content: every item is byte for byte what it was.
    assert {i.id: i.blob for i in session.scalars(select(SealedItem))} == blobs_before
    for reviewer in (me, li):
        opened, items = open_as(reviewer.private_key, session, case.id,
                                xwing_seed=reviewer.xwing_seed)
        assert opened == case_key and items["report"] == [REPORT]
        mine = session.scalar(select(KeySlot).where(
            KeySlot.case_id == case.id, KeySlot.purpose == "internal",
            KeySlot.user_id == reviewer.user.id))
        assert crypto.open_slot(mine.suite, mine.slot, reviewer.xwing_seed, raw_id,
                                "internal") == internal
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "case.reslot"))
    assert entry.actor_id == me.user.id and entry.details["slots"] == 4
    assert _case_data(client, case.id)["reslot"] == []

    # zhou signs in in a browser with the hybrid: the last v1 slots go, and the marking.
    add_xwing(session, zhou.user)
    session.commit()
    targets = _case_data(client, case.id)["reslot"]
    assert {t["user_id"] for t in targets} == {zhou.user.id}
    done = client.post(url, json={"slots": _seal(case.id, targets, keys)}, headers=headers)
    assert done.json() == {"replaced": 2, "classical_only": False}
    session.expire_all()
    assert not session.get(Case, case.id).classical_only
    assert {suite for _, _, suite in _slots(session, case.id)} == {crypto.SUITE_V2}
    assert 'id="reslot-panel"' not in client.get(f"/console/cases/{case.id}").text


def test_the_reporter_v1_slot_stays_and_the_case_stays_marked(client, session,  # type: ignore[no-untyped-def]
                                                              settings) -> None:
    world = make_world(session, settings, reviewers=1)
    me = world.reviewers[0]
    info = api_client(client).channels()
    api = api_client(client)
    # An older page without the hybrid for the reporter's own slot.
    sealed = sealing.seal_submission(info["channels"][0],
                                     crypto.b64u_decode(info["installation"]["salt"]),
                                     settings.receipt_iterations, REPORT, None, [],
                                     reporter_v2=False)
    assert client.post("/api/v1/submissions",
                       json={**sealed.envelope, "pow": api.stamp()}).status_code == 201
    case_id = sealed.envelope["case_id"]
    me.xwing_seed = add_xwing(session, me.user)
    session.commit()
    headers = {"X-CSRF-Token": sign_in(client, session, settings, me.user), **JSON}
    page = client.get(f"/console/cases/{case_id}")
    assert 'id="reporter-classical"' in page.text and "只有举报人的浏览器才能替换它" in page.text
    targets = _case_data(client, case_id)["reslot"]
    assert [(t["purpose"], t["user_id"]) for t in targets] == [("case", me.user.id)]
    done = client.post(f"/console/cases/{case_id}/reslot", headers=headers,
                       json={"slots": _seal(case_id, targets, {"case": sealed.case_key})})
    assert done.json() == {"replaced": 1, "classical_only": True}
    session.expire_all()
    assert ("case", "reporter", crypto.SUITE) in _slots(session, case_id)
