"""`chuishao submit` is a real client: it seals locally and talks HTTP to a running server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

import crypto
from service.domain.models import Case, SealedItem
from service.platform.db import Database
from tests.serverproc import cli_env, free_port, run_cli, serving


@pytest.mark.sqlite_only
def test_submit_against_a_running_server(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "var", free_port(), CHUISHAO_POW_DIFFICULTY="8",
                  CHUISHAO_RECEIPT_ITERATIONS="1000")
    assert run_cli(env, "migrate").returncode == 0
    init = run_cli(env, "init")
    # Two secrets, printed once each: the X25519 part, then the X-Wing part.
    secret, xwing_secret = [line.strip() for line in init.stdout.splitlines()
                            if line.startswith("    ")][:2]
    crypto.decode_recovery_secret(secret)
    xwing_seed = crypto.decode_recovery_secret(xwing_secret, "xwing")
    assert run_cli(env, "channel", "add", "acme", "--kind", "enterprise",
                   "--name-zh", "某厂").returncode == 0
    photo = tmp_path / "p.jpg"
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}
    Image.new("RGB", (20, 20)).save(photo, "JPEG", exif=exif)
    with serving(env, tmp_path / "server.log") as base:
        done = run_cli(env, "submit", "--server", base, "--channel", "acme", "--unit", "某厂",
                       str(photo), stdin="冲压机保护装置被拆除\n")
        refused = run_cli(env, "submit", "--server", base, "--channel", "nope", "--unit", "x",
                          stdin="x")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\d{3}( \d{3}){6}", done.stdout.strip())
    receipt = done.stdout.strip().replace(" ", "")
    assert crypto.damm_check_digit(receipt) == "0"
    assert "EXIF (incl. GPS)" in done.stderr
    assert refused.returncode == 2 and "unknown_channel" in refused.stderr
    # Open what arrived with the offline recovery key, as `chuishao recover` would.
    database = Database.from_url(f"sqlite:///{tmp_path / 'var' / 'chuishao.sqlite3'}")
    with database.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and case.ready and not case.sealed_on_server
        # `chuishao submit` seals v2 wherever the channel offers an X-Wing key (the recovery
        # key) and to the reporter, from the receipt's X-Wing seed. The channel has no
        # reviewer yet, so the case has no v1 slot at all.
        assert {s.holder: s.suite for s in case.slots} == {
            "recovery": crypto.SUITE_V2, "reporter": crypto.SUITE_V2}
        assert not case.classical_only
        slot = next(s for s in case.slots if s.holder == "recovery")
        key = crypto.open_key_v2(slot.slot, xwing_seed, bytes.fromhex(case.id))
        report = session.scalar(select(SealedItem).where(SealedItem.kind == "report"))
        opened = crypto.open_item(key, bytes.fromhex(case.id), bytes.fromhex(report.id),
                                  "report", report.blob)
        assert opened["description"] == "冲压机保护装置被拆除"
    database.dispose()

