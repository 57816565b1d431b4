"""Recovery: the offline recovery secret re-grants a channel's case and internal keys."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select

import crypto
from service import cli
from service.domain import intake, recover, sealing, serverseal
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, Case, KeySlot
from service.platform.db import Database
from service.platform.errors import ChuishaoError
from tests.conftest import fast_settings
from tests.factories import make_reviewer, make_world, open_as

REPORT = {"v": 1, "unit": "某机械厂", "location": "冲压车间", "category": "hazard",
          "description": "冲床光电保护被拆除。", "seen_at": "", "insider": "",
          "language": "zh_CN"}


def add_case(session, settings, world, with_internal: bool = False) -> str:  # type: ignore[no-untyped-def]
    """A case sealed exactly as intake stores it (plus internal-key slots if asked)."""
    installation = get_installation(session)
    publics = [r.user.public_key for r in world.reviewers] + [installation.recovery_public_key]
    channel = {"id": world.channel.slug, "recipients": [
        {"public_key": crypto.b64u_encode(p), "key_id": crypto.key_id(p).hex()}
        for p in publics]}
    sealed = sealing.seal_submission(channel, installation.salt, settings.receipt_iterations,
                                     REPORT, None, [])
    case, _ = intake.create_submission(session, settings,
                                       intake.parse_envelope(sealed.envelope, settings))
    if with_internal:
        internal = crypto.new_key()
        for public in publics:
            is_recovery = public == installation.recovery_public_key
            owner = next((r.user for r in world.reviewers if r.user.public_key == public), None)
            session.add(KeySlot(
                case_id=case.id, purpose="internal", suite=crypto.SUITE,
                holder="recovery" if is_recovery else "reviewer",
                user_id=owner.id if owner else None, key_id=crypto.key_id(public).hex(),
                slot=crypto.seal_key(internal, public, bytes.fromhex(case.id), "internal"),
                created_at=case.created_at))
    session.flush()
    return case.id


def test_recover_grants_every_case_once(session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    plain = add_case(session, settings, world)
    noted = add_case(session, settings, world, with_internal=True)
    newcomer = make_reviewer(session, "newcomer", world.channel)
    done = recover.recover(session, "acme", "newcomer", world.recovery_private)
    assert done == recover.Recovered(cases=2, granted=3, skipped=0)
    for case_id in (plain, noted):
        _, items = open_as(newcomer.private_key, session, case_id)
        assert items["report"] == [REPORT]
    internal = session.scalar(select(KeySlot).where(
        KeySlot.case_id == noted, KeySlot.purpose == "internal",
        KeySlot.key_id == newcomer.user.key_id))
    assert len(crypto.open_key(internal.slot, newcomer.private_key, bytes.fromhex(noted),
                               "internal")) == 32
    # Idempotent: a second run adds nothing.
    again = recover.recover(session, "acme", "newcomer", world.recovery_private)
    assert again == recover.Recovered(cases=2, granted=0, skipped=3)
    entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "case.recover")))
    assert [e.details["granted"] for e in entries] == [3, 0]


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"channel_slug": "nope"}, "unknown_channel"),
    ({"username": "nobody"}, "not_a_reviewer"),
    ({"username": "auditor"}, "not_a_reviewer"),
    ({"recovery_private": b"\x01" * 32}, "recovery_mismatch"),
])
def test_recover_refusals(session, settings, kwargs: dict[str, Any], code: str) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    add_case(session, settings, world)
    make_reviewer(session, "auditor", world.channel, roles="auditor")
    args = {"channel_slug": "acme", "username": "reviewer0",
            "recovery_private": world.recovery_private, **kwargs}
    with pytest.raises(ChuishaoError) as refused:
        recover.recover(session, **args)
    assert refused.value.code == code


@pytest.mark.sqlite_only
def test_recover_command_reads_the_secret_from_stdin(tmp_path, monkeypatch,  # type: ignore[no-untyped-def]
                                                     capsys) -> None:
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    database = Database.from_url(settings.database)
    with database.session() as session:
        world = make_world(session, settings)
        case_id = add_case(session, settings, world, with_internal=True)
        newcomer = make_reviewer(session, "newcomer", world.channel)
    secret = crypto.encode_recovery_secret(world.recovery_private)
    # No argument takes the secret.
    with pytest.raises(SystemExit):
        cli.main(["recover", "--channel", "acme", "--to", "newcomer", secret], settings)
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("not a secret\n"))
    assert cli.main(["recover", "--channel", "acme", "--to", "newcomer"], settings) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO(secret.lower() + "\n"))
    assert cli.main(["recover", "--channel", "acme", "--to", "newcomer"], settings) == 0
    out = capsys.readouterr().out
    assert "2 keys sealed to newcomer across 1 cases of acme (0 already held)" in out
    assert secret not in out
    monkeypatch.setattr("sys.stdin", io.StringIO(secret + "\n"))
    assert cli.main(["recover", "--channel", "acme", "--to", "newcomer"], settings) == 0
    assert "0 keys sealed" in capsys.readouterr().out
    with database.session() as session:
        _, items = open_as(newcomer.private_key, session, case_id)
        assert items["report"] == [REPORT]
    database.dispose()


def add_v2_case(session, settings) -> str:  # type: ignore[no-untyped-def]
    """A case as the server path seals it today: the recovery slot is v2."""
    info = serverseal.channel_info(session, "acme", v2_only=False)
    sealed = sealing.seal_submission(info, get_installation(session).salt,
                                     settings.receipt_iterations, REPORT, None, [])
    case, _ = intake.create_submission(session, settings,
                                       intake.parse_envelope(sealed.envelope, settings))
    return case.id


def test_recover_opens_v1_slots_with_the_first_part_and_v2_with_the_xwing_part(  # type: ignore[no-untyped-def]
        session, settings) -> None:
    world = make_world(session, settings)
    old = add_case(session, settings, world)  # made before v2: a v1 recovery slot
    new = add_v2_case(session, settings)
    suites = dict(session.execute(select(KeySlot.case_id, KeySlot.suite).where(
        KeySlot.holder == "recovery")).all())
    assert suites == {old: crypto.SUITE, new: crypto.SUITE_V2}
    newcomer = make_reviewer(session, "newcomer", world.channel)
    # Either part alone is refused before anything changes: both kinds of case need theirs.
    for parts in [(world.recovery_private, None), (None, world.recovery_xwing_seed)]:
        with pytest.raises(recover.SecretMissing):
            recover.recover(session, "acme", "newcomer", *parts)
    assert session.scalar(select(KeySlot).where(KeySlot.user_id == newcomer.user.id)) is None
    done = recover.recover(session, "acme", "newcomer", world.recovery_private,
                           world.recovery_xwing_seed)
    assert done == recover.Recovered(cases=2, granted=2, skipped=0)
    for case_id in (old, new):
        assert open_as(newcomer.private_key, session, case_id)[1]["report"] == [REPORT]
        assert session.get(Case, case_id).classical_only  # the newcomer's slot is v1


def test_recover_with_only_the_xwing_part_when_only_v2_slots_are_left(session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    case_id = add_v2_case(session, settings)
    newcomer = make_reviewer(session, "newcomer", world.channel)
    done = recover.recover(session, "acme", "newcomer", None, world.recovery_xwing_seed)
    assert done.granted == 1
    assert open_as(newcomer.private_key, session, case_id)[1]["report"] == [REPORT]
    with pytest.raises(ChuishaoError) as refused:
        recover.recover(session, "acme", "newcomer", None, crypto.new_key())
    assert refused.value.code == "recovery_mismatch"
    with pytest.raises(ChuishaoError) as refused:
        recover.recover(session, "acme", "newcomer", None, None)
    assert refused.value.code == "recovery_mismatch"


def test_a_damaged_v2_recovery_slot_stops_recovery_with_the_one_error(session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    case_id = add_v2_case(session, settings)
    slot = session.scalar(select(KeySlot).where(KeySlot.case_id == case_id,
                                                KeySlot.holder == "recovery"))
    slot.slot = slot.slot[:500] + bytes([slot.slot[500] ^ 0x80]) + slot.slot[501:]
    session.flush()
    make_reviewer(session, "newcomer", world.channel)
    with pytest.raises(crypto.OpenError):
        recover.recover(session, "acme", "newcomer", world.recovery_private,
                        world.recovery_xwing_seed)


def test_parse_secrets_tells_the_parts_apart() -> None:
    x25519, xwing = crypto.new_key(), crypto.new_key()
    first = crypto.encode_recovery_secret(x25519)
    second = crypto.encode_recovery_secret(xwing, "xwing")
    assert recover.parse_secrets(f"{first}\n{second}\n") == (x25519, xwing)
    assert recover.parse_secrets(f"{second}\n{first}\n") == (x25519, xwing)
    assert recover.parse_secrets(second + "\n") == (None, xwing)
    for bad in ["", "\n\n", f"{first}\n{first}\n", f"{first}\nnot a secret\n"]:
        with pytest.raises(ValueError):
            recover.parse_secrets(bad)


@pytest.mark.sqlite_only
def test_recover_command_takes_both_parts_one_a_line(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    database = Database.from_url(settings.database)
    with database.session() as session:
        world = make_world(session, settings)
        add_case(session, settings, world)
        add_v2_case(session, settings)
        make_reviewer(session, "newcomer", world.channel)
    first = crypto.encode_recovery_secret(world.recovery_private)
    second = crypto.encode_recovery_secret(world.recovery_xwing_seed, "xwing")
    monkeypatch.setattr("sys.stdin", io.StringIO(first + "\n"))
    assert cli.main(["recover", "--channel", "acme", "--to", "newcomer"], settings) == 2
    assert "other part" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{second}\n{first}\n"))
    assert cli.main(["recover", "--channel", "acme", "--to", "newcomer"], settings) == 0
    out = capsys.readouterr().out
    assert "2 keys sealed to newcomer across 2 cases of acme" in out
    assert first not in out and second not in out
    database.dispose()


@pytest.mark.sqlite_only
def test_init_prints_both_parts_and_add_pq_adds_one_once(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    assert cli.main(["init"], settings) == 0
    shown = [line.strip() for line in capsys.readouterr().out.splitlines()
             if line.startswith("    ")]
    crypto.decode_recovery_secret(shown[0])
    seed = crypto.decode_recovery_secret(shown[1], "xwing")
    database = Database.from_url(settings.database)
    with database.session() as session:
        installation = get_installation(session)
        assert installation.recovery_xwing_public_key == crypto.xwing_public_key(seed)
        # As an installation made before v2 is after migrating.
        installation.recovery_xwing_public_key = installation.recovery_xwing_key_id = None
    assert cli.main(["recovery", "add-pq"], settings) == 0
    shown = [line.strip() for line in capsys.readouterr().out.splitlines()
             if line.startswith("    ")]
    assert len(shown) == 1
    seed = crypto.decode_recovery_secret(shown[0], "xwing")
    with database.session() as session:
        installation = get_installation(session)
        assert installation.recovery_xwing_public_key == crypto.xwing_public_key(seed)
        assert installation.recovery_xwing_key_id == crypto.key_id(
            crypto.xwing_public_key(seed)).hex()
        actions = list(session.scalars(select(AuditEntry.action)))
        assert "recovery.add_pq" in actions
    # A second would strand the v2 slots sealed to the first: refused, nothing printed.
    assert cli.main(["recovery", "add-pq"], settings) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "already" in captured.err
    with database.session() as session:
        assert get_installation(session).recovery_xwing_public_key == crypto.xwing_public_key(
            seed)
    database.dispose()
