"""Protocol v2 at intake: which slots are v2, which are refused, and classical-only cases."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

import crypto
from service.domain import channels, followup, intake, sealing, serverseal
from service.domain.installation import get_installation
from service.domain.models import Case, KeySlot
from service.platform.errors import Malformed
from tests.console import sign_in
from tests.factories import make_world, open_as

REPORT = {"v": 1, "unit": "某化工厂", "location": "罐区", "category": "hazard",
          "description": "液氨储罐安全阀被拆除。", "seen_at": "", "insider": "",
          "language": "zh_CN"}


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _seal(session, settings, slug: str = "acme", **kwargs: Any) -> sealing.SealedSubmission:  # type: ignore[no-untyped-def]
    info = serverseal.channel_info(session, slug, v2_only=False)
    return sealing.seal_submission(info, get_installation(session).salt,
                                   settings.receipt_iterations, REPORT, None, [], **kwargs)


def _store(session, settings, envelope: dict[str, Any]) -> Case:  # type: ignore[no-untyped-def]
    case, _ = intake.create_submission(session, settings,
                                       intake.parse_envelope(envelope, settings))
    return case


def _suites(session, case: Case) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {slot.holder: slot.suite
            for slot in session.scalars(select(KeySlot).where(KeySlot.case_id == case.id))}


def test_server_path_seals_v2_to_every_xwing_key(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    receipt = serverseal.seal_on_server(session, settings, "acme", REPORT, None, [])
    case = session.scalar(select(Case))
    assert case.sealed_on_server
    assert _suites(session, case) == {"reviewer": crypto.SUITE, "recovery": crypto.SUITE_V2,
                                      "reporter": crypto.SUITE_V2}
    assert case.classical_only  # the reviewers have X25519 keys only
    sizes = {slot.suite: len(slot.slot) for slot in session.scalars(select(KeySlot))}
    assert sizes == {crypto.SUITE: crypto.SLOT_SIZE, crypto.SUITE_V2: crypto.SLOT_SIZE_V2}
    # Everyone opens it: reviewers (v1), recovery (v2 part), the reporter (X-Wing seed).
    for reviewer in world.reviewers:
        assert open_as(reviewer.private_key, session, case.id)[1]["report"] == [REPORT]
    assert open_as(world.recovery_private, session, case.id,
                   xwing_seed=world.recovery_xwing_seed)[1]["report"] == [REPORT]
    opened = serverseal.open_with_receipt(session, settings, receipt)
    assert next(i.content for i in opened.items if i.kind == "report") == REPORT


def test_a_case_with_only_v2_slots_is_not_classical_only(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    # A line nobody receives yet: only the recovery key and the reporter, both X-Wing.
    channels.add_channel(session, slug="bureau", kind="bureau", name_zh="应急管理局")
    sealed = _seal(session, settings, "bureau")
    case = _store(session, settings, sealed.envelope)
    assert _suites(session, case) == {"recovery": crypto.SUITE_V2, "reporter": crypto.SUITE_V2}
    assert not case.classical_only
    # The reporter's v2 slot opens with the receipt's X-Wing seed (no-JavaScript follow-up).
    opened = serverseal.open_with_receipt(session, settings, sealed.receipt)
    assert next(i.content for i in opened.items if i.kind == "report") == REPORT


def test_an_older_client_still_sends_v1_and_is_marked(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    case = _store(session, settings, _seal(session, settings, hybrid=False).envelope)
    assert set(_suites(session, case).values()) == {crypto.SUITE}
    assert case.classical_only
    assert open_as(world.recovery_private, session, case.id)[1]["report"] == [REPORT]


def test_a_v2_slot_for_a_holder_without_an_xwing_key_is_refused(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    sealed = _seal(session, settings)
    reviewer = world.reviewers[0].user
    forged = dict(sealed.envelope)
    case_id = bytes.fromhex(forged["case_id"])
    # A v2 slot under the reviewer's (X25519) key id: no key of theirs could open it.
    fake = crypto.seal_key_v2(crypto.new_key(), crypto.generate_xwing_keypair()[1], case_id)
    forged["slots"] = [
        {**slot, "suite": crypto.SUITE_V2, "slot": crypto.b64u_encode(fake)}
        if slot["key_id"] == reviewer.key_id else slot for slot in sealed.envelope["slots"]]
    with pytest.raises(Malformed):
        _store(session, settings, forged)
    # Nor a v1 slot under the recovery key's X-Wing id.
    xwing_id = get_installation(session).recovery_xwing_key_id
    v1 = crypto.seal_key(crypto.new_key(), crypto.generate_keypair()[1], case_id)
    forged["slots"] = [
        {**slot, "suite": crypto.SUITE, "slot": crypto.b64u_encode(v1)}
        if slot["key_id"] == xwing_id else slot for slot in sealed.envelope["slots"]]
    with pytest.raises(Malformed):
        _store(session, settings, forged)
    assert session.scalar(select(Case)) is None


def test_before_add_pq_the_recovery_key_gets_v1_and_refuses_v2(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    installation = get_installation(session)
    xwing_public = installation.recovery_xwing_public_key
    installation.recovery_xwing_public_key = installation.recovery_xwing_key_id = None
    session.flush()
    info = serverseal.channel_info(session, "acme", v2_only=False)
    assert all("xwing_public_key" not in r for r in info["recipients"])
    sealed = _seal(session, settings)
    forged = dict(sealed.envelope)
    case_id = bytes.fromhex(forged["case_id"])
    v2 = crypto.seal_key_v2(sealed.case_key, xwing_public, case_id)
    forged["slots"] = [
        {**slot, "suite": crypto.SUITE_V2, "slot": crypto.b64u_encode(v2)}
        if slot["key_id"] == installation.recovery_key_id else slot
        for slot in sealed.envelope["slots"]]
    with pytest.raises(Malformed):
        _store(session, settings, forged)
    case = _store(session, settings, sealed.envelope)
    assert _suites(session, case)["recovery"] == crypto.SUITE
    # The receipt's X-Wing key does not depend on the installation's.
    assert _suites(session, case)["reporter"] == crypto.SUITE_V2


def test_a_client_may_still_seal_the_reporter_slot_v1(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    sealed = _seal(session, settings, reporter_v2=False)
    case = _store(session, settings, sealed.envelope)
    assert _suites(session, case)["reporter"] == crypto.SUITE
    opened = serverseal.open_with_receipt(session, settings, sealed.receipt)
    assert next(i.content for i in opened.items if i.kind == "report") == REPORT


@pytest.mark.parametrize("change", [
    {"suite": "mlkem1024x448-hkdf-sha512-aes256gcm"},
    {"suite": crypto.SUITE},  # a v2-sized slot under the v1 suite string
    {"slot": crypto.b64u_encode(b"\x00" * (crypto.SLOT_SIZE_V2 - 1))},
    {"slot": crypto.b64u_encode(b"\x00" * crypto.SLOT_SIZE)},
])
def test_v2_slot_form_is_checked(session, settings, world, change: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    sealed = _seal(session, settings)
    envelope = dict(sealed.envelope)
    reporter = envelope["slots"][-1]
    assert reporter["suite"] == crypto.SUITE_V2
    envelope["slots"] = [*envelope["slots"][:-1], {**reporter, **change}]
    with pytest.raises(Malformed):
        intake.parse_envelope(envelope, settings)


@pytest.mark.parametrize("where", [0, 1119, 1120, 1151, 1167])
def test_a_v2_slot_with_a_flipped_byte_opens_for_no_one(session, settings, world,  # type: ignore[no-untyped-def]
                                                         where: int) -> None:
    # The server cannot check a slot's content; a damaged one stays unopenable, with the
    # one error every failed opening raises (KEM ciphertext, X25519 part, sealed key, tag).
    sealed = _seal(session, settings)
    envelope = dict(sealed.envelope)
    reporter = envelope["slots"][-1]
    blob = bytearray(crypto.b64u_decode(reporter["slot"]))
    blob[where] ^= 0x01
    envelope["slots"] = [*envelope["slots"][:-1],
                         {**reporter, "slot": crypto.b64u_encode(bytes(blob))}]
    case = _store(session, settings, envelope)
    keys = crypto.derive_receipt(sealed.receipt, get_installation(session).salt,
                                 settings.receipt_iterations)
    with pytest.raises(crypto.OpenError):
        crypto.open_slot(crypto.SUITE_V2, bytes(blob), keys.xwing_seed, bytes.fromhex(case.id))
    with pytest.raises(crypto.OpenError):  # nor with the v1 opener
        crypto.open_slot(crypto.SUITE, bytes(blob), keys.private, bytes.fromhex(case.id))
    with pytest.raises(followup.ReceiptUnknown):
        serverseal.open_with_receipt(session, settings, sealed.receipt)


def test_console_marks_classical_only_cases_in_list_and_page(client, session, settings,  # type: ignore[no-untyped-def]
                                                             world) -> None:
    weak = _store(session, settings, _seal(session, settings, hybrid=False).envelope)
    strong = _store(session, settings, _seal(session, settings).envelope)
    # As it will be once the reviewers have X-Wing keys too: every slot v2.
    strong.classical_only = False
    session.commit()
    sign_in(client, session, settings, world.reviewers[0].user)
    for language, label in (("en", "classical-only"), ("zh-CN", "仅经典加密")):
        headers = {"Accept-Language": language}
        listing = client.get("/console/cases", headers=headers).text
        rows = {m.group(1): m.group(0) for m in re.finditer(
            r'data-case-id="(\w+)".*?</tr>', listing, re.S)}
        assert label in rows[weak.id] and label not in rows[strong.id]
        assert label in client.get(f"/console/cases/{weak.id}", headers=headers).text
        assert label not in client.get(f"/console/cases/{strong.id}", headers=headers).text
