"""An installation that requires suite v2 (settings.require_v2, docs/PROTOCOL.md 17.7): intake
refuses any v1 slot with a translated error, stores nothing and spends the stamp; new cases
are sealed only to reviewers with an X-Wing key. With the setting off the same envelope is
taken and marked classical-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

import crypto
from service.domain import intake, serverseal
from service.domain.installation import get_installation
from service.domain.models import Case, KeySlot, SealedItem
from service.domain.sealing import seal_submission
from service.platform.settings import Settings
from tests.conftest import fast_settings
from tests.console import sign_in
from tests.factories import Reviewer, api_client, make_reviewer, make_world, open_as

REPORT = {"v": 1, "unit": "某化工有限公司", "location": "二号罐区", "category": "hazard",
          "description": "液氯储罐压力表损坏两周未换。", "seen_at": "", "insider": "",
          "language": "zh_CN"}
REFUSED_ZH = "本服务只接收用抗量子加密封存的举报"
REFUSED_EN = "This service accepts only reports sealed with post-quantum encryption"


@pytest.fixture(params=[True, False], ids=["v2-required", "v1-allowed"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "var", require_v2=request.param)


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


@pytest.fixture
def pq(session, world) -> Reviewer:  # type: ignore[no-untyped-def]
    """One reviewer with an X-Wing pair besides the world's two classical ones."""
    reviewer = make_reviewer(session, "pq.reviewer", world.channel, xwing=True)
    session.commit()
    return reviewer


def _counts(session) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    return tuple(session.scalar(select(func.count()).select_from(model))  # type: ignore[return-value]
                 for model in (Case, KeySlot, SealedItem))


def _sealed(client: TestClient, world, **kwargs: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    info = api_client(client).channels()
    return seal_submission(info["channels"][0], crypto.b64u_decode(info["installation"]["salt"]),
                           world.settings.receipt_iterations, REPORT, None, [],
                           **kwargs).envelope


def test_discovery_lists_only_reviewers_with_an_xwing_key(client: TestClient, world, pq,
                                                          settings) -> None:  # type: ignore[no-untyped-def]
    data = client.get("/api/v1/channels").json()
    assert data["require_v2"] is settings.require_v2
    recipients = data["channels"][0]["recipients"]
    listed = {r["key_id"] for r in recipients if r["holder"] == "reviewer"}
    everyone = {r.user.key_id for r in world.reviewers} | {pq.user.key_id}
    assert listed == ({pq.user.key_id} if settings.require_v2 else everyone)
    # The fingerprint is over what is listed: a left-out reviewer's key is not in it.
    key_ids = [bytes.fromhex(r[field]) for r in recipients
               for field in ("key_id", "xwing_key_id") if field in r]
    assert data["channels"][0]["fingerprint"] == crypto.keyset_fingerprint(key_ids).hex()


@pytest.mark.parametrize("language, words", [("zh-CN", REFUSED_ZH), ("en", REFUSED_EN)])
def test_a_v1_envelope_is_refused_only_while_v2_is_required(
        client: TestClient, world, pq, session, settings, language: str, words: str) -> None:  # type: ignore[no-untyped-def]
    api = api_client(client)
    # A browser without the hybrid: every slot v1, the reporter's too.
    envelope = _sealed(client, world, hybrid=False)
    stamp = api.stamp()
    before = _counts(session)
    response = client.post("/api/v1/submissions", json={**envelope, "pow": stamp},
                           headers={"Accept-Language": language})
    if not settings.require_v2:
        assert response.status_code == 201, response.text
        case = session.get(Case, response.json()["case_id"])
        assert case.classical_only
        return
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "v2_required" and error["message"].startswith(words)
    assert "v2_required" not in error["message"]
    assert _counts(session) == before
    # The stamp was spent by the refused request, as for keys_changed (API.md 3.3).
    good = _sealed(client, world)
    replay = client.post("/api/v1/submissions", json={**good, "pow": stamp})
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "pow_invalid"
    assert _counts(session) == before


def test_one_v1_slot_is_enough_to_refuse(client: TestClient, world, pq, session,
                                         settings) -> None:  # type: ignore[no-untyped-def]
    # Every recipient v2, the reporter's own slot v1: still classical, still refused.
    envelope = _sealed(client, world, reporter_v2=False)
    assert [s["suite"] for s in envelope["slots"]].count(crypto.SUITE) == (
        1 if settings.require_v2 else 3)
    response = client.post("/api/v1/submissions",
                           json={**envelope, "pow": api_client(client).stamp()})
    if settings.require_v2:
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "v2_required"
        assert session.scalar(select(func.count()).select_from(Case)) == 0
    else:
        assert response.status_code == 201


def test_a_hybrid_envelope_is_all_v2_and_reaches_the_pq_reviewer(
        client: TestClient, world, pq, session, settings) -> None:  # type: ignore[no-untyped-def]
    envelope = _sealed(client, world)
    response = client.post("/api/v1/submissions",
                           json={**envelope, "pow": api_client(client).stamp()})
    assert response.status_code == 201, response.text
    case = session.get(Case, response.json()["case_id"])
    holders = {(slot.user_id, slot.suite) for slot in case.slots if slot.holder == "reviewer"}
    mine = (pq.user.id, crypto.SUITE_V2)
    if settings.require_v2:
        assert holders == {mine} and not case.classical_only
        for reviewer in world.reviewers:  # left out: no slot at all
            with pytest.raises(AssertionError, match="no slot"):
                open_as(reviewer.private_key, session, case.id)
    else:
        assert holders == {mine} | {(r.user.id, crypto.SUITE) for r in world.reviewers}
        assert case.classical_only
    _, items = open_as(pq.private_key, session, case.id, xwing_seed=pq.xwing_seed)
    assert items["report"] == [REPORT]


def test_an_envelope_for_the_whole_line_is_keys_changed(client: TestClient, world, pq, session,
                                                        settings) -> None:  # type: ignore[no-untyped-def]
    """A page sealed before the setting went on (slots for the left-out reviewers too) is
    told to seal again, and then seals to the listed keys only."""
    if not settings.require_v2:
        pytest.skip("the line is the same either way")
    everyone = serverseal.channel_info(session, "acme", v2_only=False)
    installation_salt = api_client(client).channels()["installation"]["salt"]
    envelope = seal_submission(everyone, crypto.b64u_decode(installation_salt),
                               settings.receipt_iterations, REPORT, None, []).envelope
    response = client.post("/api/v1/submissions",
                           json={**envelope, "pow": api_client(client).stamp()})
    assert response.status_code == 409 and response.json()["error"]["code"] == "keys_changed"


def test_the_server_path_seals_v2_to_the_listed_keys(session, world, pq, settings) -> None:  # type: ignore[no-untyped-def]
    receipt = serverseal.seal_on_server(session, settings, "acme", REPORT, None, [])
    case = session.scalar(select(Case))
    suites = {slot.suite for slot in case.slots}
    assert (suites == {crypto.SUITE_V2}) is settings.require_v2
    assert case.classical_only is not settings.require_v2
    opened = serverseal.open_with_receipt(session, settings, receipt)
    assert next(i.content for i in opened.items if i.kind == "report") == REPORT
    assert intake.channel_keys(session, world.channel, v2_only=settings.require_v2) \
        .recipients[0].user_id == (pq.user.id if settings.require_v2
                                   else world.reviewers[0].user.id)


def test_a_recovery_key_without_its_xwing_part_stops_intake_and_the_console_says_so(
        client: TestClient, world, pq, session, settings) -> None:  # type: ignore[no-untyped-def]
    installation = get_installation(session)
    # As an installation made before v2 is after migrating, until `chuishao recovery add-pq`.
    installation.recovery_xwing_public_key = installation.recovery_xwing_key_id = None
    session.commit()
    envelope = _sealed(client, world)  # with the hybrid: v1 only for the recovery key
    before = _counts(session)
    response = client.post("/api/v1/submissions",
                           json={**envelope, "pow": api_client(client).stamp()})
    if not settings.require_v2:
        assert response.status_code == 201
        return
    # Not "use another browser": no client could do better; the worker is asked to come back.
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "v2_not_ready" and error["message"].startswith("本服务目前无法接收举报")
    assert _counts(session) == before
    with pytest.raises(intake.V2NotReady):
        serverseal.seal_on_server(session, settings, "acme", REPORT, None, [])
    admin = make_reviewer(session, "root", roles="admin", xwing=True).user
    admin.totp_confirmed = True
    session.commit()
    sign_in(client, session, settings, admin)
    page = client.get("/console/admin/channels").text
    assert 'id="recovery-classical"' in page and "chuishao recovery add-pq" in page
