"""Money typed by a person is read one way everywhere, and a stray comma is refused.

The attack (a slip, really): `--fine 20000,50` was read as 2 000 050 yuan, a hundred times the
fine, because every parser dropped commas before matching; `1,2` became 12. The one parser in
service/domain/rewards/money.py accepts plain digits or correctly grouped thousands only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from service.domain import rectification_facts
from service.domain.models.rewards import RewardRecord
from service.domain.rewards.money import AmountError, format_yuan, parse_amount, plain_yuan
from service.platform.settings import Settings
from tests.console import sign_in
from tests.domain.test_reward_lifecycle import People, make_people, policy_row, verified_case

CHUISHAO = Path(sys.executable).with_name("chuishao")
MISREAD = ["20000,50", "1,2", ",,1,,,0", "1,0000", "12,34.5", "1 2", "20 000,50", "1.2.3",
           "1,000.", "٣٠٠"]


@pytest.fixture
def people(session: Session, settings: Settings) -> People:
    return make_people(session, settings)


@pytest.mark.parametrize("text", MISREAD)
def test_misgrouped_amounts_are_refused(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)
    with pytest.raises(Exception, match="yuan"):
        rectification_facts.parse_yuan(text)


def test_grouped_and_plain_amounts_mean_the_same() -> None:
    for text in ("2000050", "2,000,050", "2 000 050", "2000050.00", " 2,000,050.0 "):
        assert parse_amount(text) == 200_005_000, text
    assert parse_amount("20,000.50") == 2_000_050
    assert parse_amount("0.05") == 5
    # What the pages print reads back as the same amount.
    for fen in (0, 7, 123_456_789, 10**11):
        assert parse_amount(format_yuan(fen)) == fen
        assert parse_amount(plain_yuan(fen)) == fen
    assert format_yuan(None) == plain_yuan(None) == ""


def test_command_line_refuses_a_comma_fine() -> None:
    done = subprocess.run([str(CHUISHAO), "reward", "calc", "--policy", "national-2018",
                           "--fine", "20000,50", "--grade", "major"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "20000,50" in done.stdout + done.stderr
    assert "2 000 050" not in done.stdout
    grouped = subprocess.run([str(CHUISHAO), "reward", "calc", "--policy", "national-2018",
                              "--fine", "200,000", "--grade", "major"],
                             capture_output=True, text=True, timeout=60)
    plain = subprocess.run([str(CHUISHAO), "reward", "calc", "--policy", "national-2018",
                            "--fine", "200000", "--grade", "major"],
                           capture_output=True, text=True, timeout=60)
    assert grouped.returncode == 0 and grouped.stdout == plain.stdout


def test_console_reward_form_refuses_a_comma_fine(client: TestClient, session: Session,
                                                  people: People, settings: Settings) -> None:
    case, _receipt = verified_case(client, session, people)
    row = policy_row(session)
    csrf = sign_in(client, session, settings, people.reviewer.user)
    answer = client.post(f"/console/cases/{case.id}/reward", data={
        "csrf_token": csrf, "policy": str(row.id), "fine": "20000,50", "action": "propose"},
        follow_redirects=False)
    assert answer.status_code == 400
    assert "20000,50" in answer.text
    assert session.scalars(select(RewardRecord).where(RewardRecord.case_id == case.id)).all() \
        == []
