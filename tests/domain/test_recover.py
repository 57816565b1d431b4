"""Recovery: the offline recovery secret re-grants a channel's case and internal keys."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select

import crypto
from service import cli
from service.domain import intake, recover, sealing
from service.domain.installation import get_installation
from service.domain.models import AuditEntry, KeySlot
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
