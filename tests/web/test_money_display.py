"""An amount a person reads looks the same on every page: the public board, the follow-up page
(without and with JavaScript, which shows what the API sends) and the console's reward page.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from service.domain.models import utcnow
from service.domain.rewards.money import format_yuan
from service.platform import localtime
from service.platform.settings import Settings
from tests.console import sign_in
from tests.domain.test_reward_lifecycle import People, approved_reward, followup_token, make_people

FINE = "823,045.20"  # 15 % of it: 123 456.78 yuan, grouped and with fen


@pytest.fixture
def people(session: Session, settings: Settings) -> People:
    return make_people(session, settings)


def _shown(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, pattern
    return found.group(1)


def test_board_and_followup_show_an_amount_alike(client: TestClient, session: Session,
                                                 settings: Settings, people: People) -> None:
    _, receipt, record = approved_reward(client, session, people, fine=FINE)
    assert record.amount_fen == 12_345_678
    # Paid without the claim round trip: only what the pages show matters here.
    record.status, record.paid_at = "paid", utcnow()
    people.world.channel.public_board = True
    session.commit()
    english = {"Accept-Language": "en"}
    year = localtime.local(utcnow()).year
    board = client.get(f"/board?channel={people.world.channel.slug}&period={year}",
                       headers=english)
    assert board.status_code == 200
    on_board = _shown(r'id="rewards-paid">([^<]*)<', board.text)
    page = client.post("/followup", data={"receipt": receipt, "sealing": "noscript"},
                       headers=english)
    assert page.status_code == 200
    on_followup = _shown(r"A reward of ([^<]*?) yuan was approved", page.text)
    token, _ = followup_token(client, session, receipt)
    listed = client.get("/api/v1/followup/rewards",
                        headers={"Authorization": f"Bearer {token}"}).json()["rewards"]
    csrf = sign_in(client, session, settings, people.auditor.user)
    assert csrf
    console = client.get(f"/console/rewards/{record.id}", headers=english)
    in_console = _shown(r'id="reward-amount">([^<]*?) yuan<', console.text)
    assert on_board == on_followup == listed[0]["amount"] == in_console \
        == format_yuan(record.amount_fen) == "123 456.78"
