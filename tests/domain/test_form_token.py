"""A no-JavaScript report is filed once per form: a reload, a second tap or a post replayed
from history meets a spent one-time token and files nothing (issue 13); the receipt page is
a GET reached by a redirect, so Back and Forward never post again."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from service.domain import formtoken
from service.domain.models import Case, SpentStamp
from service.platform.i18n import Catalogs
from tests.factories import form_token, make_world

CATALOGS = Catalogs.load()
zh = CATALOGS.gettext("zh_CN")
RECEIPT = re.compile(r'id="receipt-code">([0-9 -]+)<')


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _form(token: str, **extra: str) -> dict[str, str]:
    data = {"channel": "acme", "unit": "某物流公司", "category": "hazard", "sealing": "noscript",
            "description": "二号仓库的消防通道被堵死。", "insider": "no", "form_token": token}
    data.update(extra)
    return data


def _cases(session) -> int:  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Case))


def test_repeat_post_of_a_form_files_one_case(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    token = form_token(client)
    first = client.post("/report", data=_form(token), follow_redirects=False)
    # Post/redirect/get: the receipt is not in the URL, the POST is not in history.
    assert first.status_code == 303 and first.headers["location"] == "/report/sent"
    page = client.get("/report/sent")
    receipt = RECEIPT.search(page.text)
    assert receipt and page.status_code == 200
    # Reloading the receipt page shows the same receipt, and files nothing.
    assert RECEIPT.search(client.get("/report/sent").text).group(1) == receipt.group(1)  # type: ignore[union-attr]
    # The same form posted again (reload of the POST, double tap): the same receipt page.
    again = client.post("/report", data=_form(token), follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/report/sent"
    assert _cases(session) == 1
    # Once written down, the receipt leaves the phone; a repeat post is told "already sent".
    client.post("/report/sent")
    assert "receipt-code" not in client.get("/report/sent").text
    replay = client.post("/report", data=_form(token))
    assert replay.status_code == 409
    assert zh("Already sent") in replay.text and "receipt-code" not in replay.text
    # From another browser (no receipt cookie): also "already sent", never a second case.
    other = TestClient(client.app, base_url=str(client.base_url))
    assert other.post("/report", data=_form(token)).status_code == 409
    assert _cases(session) == 1


def test_spent_token_keeps_no_receipt_and_no_fine_time(client: TestClient, world, session,  # type: ignore[no-untyped-def]
                                                       settings) -> None:
    token = form_token(client)
    page = client.post("/report", data=_form(token))
    receipt = RECEIPT.search(page.text).group(1).replace(" ", "").replace("-", "")  # type: ignore[union-attr]
    session.expire_all()
    rows = session.scalars(select(SpentStamp)).all()
    assert len(rows) == 1
    assert receipt not in rows[0].digest
    # The expiry is rounded to the installation's granularity, like a spent stamp's.
    assert int(rows[0].expires_at.timestamp()) % settings.time_granularity_seconds == 0
    # The token itself carries only a rounded issue time.
    _, issued = formtoken._serializer(client.app.state.secret_key).loads(token)
    assert issued % settings.time_granularity_seconds == 0


@pytest.mark.parametrize("token", ["", "x", "not.a.token", None])
def test_report_without_a_valid_token_is_refused_and_filled_in(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                               session, token) -> None:
    data = _form(token or "", name="王五", contact="139")
    if token is None:
        del data["form_token"]
    refused = client.post("/report", data=data)
    assert refused.status_code == 400
    assert zh(formtoken.FormTokenInvalid.message) in refused.text
    assert 'value="某物流公司"' in refused.text and 'value="王五"' in refused.text
    assert _cases(session) == 0
    # The form it comes back in carries a fresh token that works.
    fresh = re.search(r'name="form_token" value="([^"]+)"', refused.text).group(1)  # type: ignore[union-attr]
    assert client.post("/report", data=_form(fresh)).status_code == 200
    assert _cases(session) == 1


def test_refused_post_does_not_spend_the_token(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    token = form_token(client)
    assert client.post("/report", data=_form(token, unit=" ")).status_code == 400
    assert client.post("/report", data=_form(token)).status_code == 200
    assert _cases(session) == 1


def test_forged_receipt_cookie_shows_nothing(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    client.cookies.set(formtoken.RECEIPT_COOKIE, "AAAA" * 20)
    page = client.get("/report/sent")
    assert page.status_code == 200 and "receipt-code" not in page.text


def test_rate_limited_report_comes_back_filled(client: TestClient, world, session, app) -> None:  # type: ignore[no-untyped-def]
    from service.domain.ratelimit import TokenBucket

    app.state.nojs_submissions = TokenBucket(1, burst=1)
    assert client.post("/report", data=_form(form_token(client))).status_code == 200
    refused = client.post("/report", data=_form(form_token(client), name="王五",
                                                contact="139 0000 0000", location="二号仓库"))
    assert refused.status_code == 429
    assert zh("Too many requests right now. Please wait a few minutes and try again.") in refused.text
    for value in ("某物流公司", "王五", "139 0000 0000", "二号仓库"):
        assert f'value="{value}"' in refused.text
    assert "二号仓库的消防通道被堵死。" in refused.text
    assert _cases(session) == 1


@pytest.mark.parametrize(("typed", "status"), [("1234 5678 9012 3456 7890", 404),
                                               ("1234 5678 9012 3456 789", 400)])
def test_wrong_receipt_without_javascript_keeps_what_was_typed(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                               typed, status) -> None:
    page = client.post("/followup", data={"receipt": typed, "sealing": "noscript"})
    assert page.status_code == status
    assert 'id="refusal"' in page.text and f'value="{typed}"' in page.text
    assert 'id="followup-form"' in page.text
