"""Plaintext reaches the server only from a browser that really ran no script (or whose script
asked the reporter): a page whose encryption module failed to load posts the same form without
the marker, and that post is refused and forgotten (issue 10, section 3)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.testclient import TestClient

from service.domain.models import Case, CaseEvent, FileChunk, SealedItem, StoredFile
from service.domain.ratelimit import TokenBucket
from service.domain.reportform import ScriptDidNotRun
from service.platform.i18n import Catalogs
from tests.factories import api_client, make_world, open_as, with_token

CATALOGS = Catalogs.load()
DESCRIPTION = "二号仓库的消防通道被货物堵死，夜班有人在里面抽烟。"


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _gps_jpeg() -> bytes:
    image = Image.new("RGB", (16, 16), (10, 200, 10))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (31.0, 14.0, 5.0), 3: "E", 4: (121.0, 28.0, 7.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _form(**extra: str) -> dict[str, str]:
    # Exactly what form#report-form sends when its module did not run: no "sealing" field.
    data = {"channel": "acme", "unit": "某物流公司", "location": "二号仓库", "category": "hazard",
            "description": DESCRIPTION, "seen_at": "昨晚", "insider": "no", "name": "王五",
            "contact": "139 0000 0000"}
    data.update(extra)
    return data


def _rows(session) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Case, CaseEvent, SealedItem, StoredFile, FileChunk)}


NOTHING = {"Case": 0, "CaseEvent": 0, "SealedItem": 0, "StoredFile": 0, "FileChunk": 0}


@pytest.mark.parametrize("marker", [None, "", "yes", "NOSCRIPT", "noscript "])
@pytest.mark.parametrize(("accept", "language"), [("zh-CN", "zh_CN"), ("en", "en")])
def test_report_from_a_page_whose_script_failed_is_refused(client: TestClient, world, session,  # type: ignore[no-untyped-def]
                                                           app, caplog, marker, accept,
                                                           language) -> None:
    data = _form() if marker is None else _form(sealing=marker)
    app.state.nojs_submissions = TokenBucket(1, burst=1)
    response = client.post("/report", data=with_token(client, data), headers={"Accept-Language": accept},
                           files=[("files", ("IMG_20261130_221503.jpg", _gps_jpeg(),
                                             "image/jpeg"))])
    assert response.status_code == 400
    message = CATALOGS.gettext(language)(ScriptDidNotRun.message)
    assert message.replace("'", "&#39;") in response.text
    assert _rows(session) == NOTHING
    # The form comes back with what was typed (never stored), so nothing is lost.
    assert DESCRIPTION in response.text and 'value="某物流公司"' in response.text
    assert 'value="王五"' in response.text
    # Nothing of the plaintext went to the log either.
    assert DESCRIPTION not in caplog.text and "王五" not in caplog.text
    # A refused post does not use up the no-JavaScript budget.
    assert client.post("/report", data=with_token(client, _form(sealing="noscript"))).status_code == 200


def test_report_without_javascript_is_accepted(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/report", data=with_token(client, _form(sealing="noscript")))
    assert response.status_code == 200
    assert CATALOGS.gettext("zh_CN")(
        "Your report was encrypted by the server on arrival because JavaScript was off; the "
        "plaintext was discarded at once.") in response.text
    case = session.scalar(select(Case))
    assert case.sealed_on_server


def test_report_the_reporter_chose_to_send_to_the_server(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                         session) -> None:
    response = client.post("/report", data=with_token(client, _form(sealing="chosen")),
                           headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert "as you chose, because this browser cannot encrypt on your device" in response.text
    assert "because JavaScript was off" not in response.text
    assert session.scalar(select(Case)).sealed_on_server


def _case_page(client: TestClient, receipt: str, marker: str = "noscript") -> str:
    page = client.post("/followup", data={"receipt": receipt, "sealing": marker})
    assert page.status_code == 200, page.text
    return page.text


def test_followup_receipt_not_looked_at_without_the_marker(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                           app) -> None:
    receipt = api_client(client).submit("acme", {
        "v": 1, "unit": "u", "location": "", "category": "hazard", "description": "d",
        "seen_at": "", "insider": "", "language": "zh_CN"})
    refused = client.post("/followup", data={"receipt": receipt},
                          headers={"Accept-Language": "en"})
    assert refused.status_code == 400
    assert "this page&#39;s encryption script did not load" in refused.text
    assert 'name="capability"' not in refused.text  # the case was not opened
    # Through the no-JS page the same receipt opens the case, and every form on that page
    # carries the same marker, inside <noscript>.
    text = _case_page(client, receipt)
    for form in re.findall(r'<form method="post" action="/followup/(?:reply|claim)".*?</form>',
                           text, re.S):
        assert '<noscript><input type="hidden" name="sealing" value="noscript"></noscript>' in form
    # A browser that chose the server path keeps its choice on the case page.
    chosen = _case_page(client, receipt, "chosen")
    assert '<input type="hidden" name="sealing" value="chosen">' in chosen
    assert "<noscript><input" not in chosen


def test_followup_reply_without_the_marker_is_refused(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                      session) -> None:
    receipt = api_client(client).submit("acme", {
        "v": 1, "unit": "u", "location": "", "category": "hazard", "description": "d",
        "seen_at": "", "insider": "", "language": "zh_CN"})
    text = _case_page(client, receipt)
    case = session.scalar(select(Case))
    capability = re.search(r'name="capability" value="([^"]+)"', text).group(1)
    form = {"case": case.id, "capability": capability, "text": "还有第三个阀门也漏"}
    refused = client.post("/followup/reply", data=form)
    assert refused.status_code == 400
    assert CATALOGS.gettext("zh_CN")(ScriptDidNotRun.message) in refused.text
    _, items = open_as(world.reviewers[0].private_key, session, case.id)
    assert "reply" not in items
    assert client.post("/followup/reply", data={**form, "sealing": "noscript"}).status_code == 200
    _, items = open_as(world.reviewers[0].private_key, session, case.id)
    assert [r["text"] for r in items["reply"]] == ["还有第三个阀门也漏"]


def test_claim_without_the_marker_is_refused(client: TestClient, world) -> None:  # type: ignore[no-untyped-def]
    refused = client.post("/followup/claim", data={"receipt": "1" * 20, "reward": "0" * 32,
                                                   "method": "cash"})
    assert refused.status_code == 400
    assert CATALOGS.gettext("zh_CN")(ScriptDidNotRun.message) in refused.text


DEVICE_CLAIMS = {
    "en": ["encrypted on your device", "before it leaves your device",
           "encrypted on your device before it leaves it"],
    "zh_CN": ["在您的设备上加密，只有", "在离开您的设备之前就已加密", "在离开设备之前就已在设备上加密"],
}


def _visible(html: str) -> str:
    # What a browser without scripts shows: no data islands, no inert templates.
    html = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)
    html = re.sub(r"<template\b.*?</template>", "", html, flags=re.S)
    return html


@pytest.mark.parametrize(("accept", "language"), [("zh-CN", "zh_CN"), ("en", "en")])
def test_no_javascript_pages_never_claim_encryption_on_the_device(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                                  accept, language) -> None:
    headers = {"Accept-Language": accept}
    receipt_page = client.post("/report", data=with_token(client, _form(sealing="noscript")), headers=headers)
    receipt = re.search(r'id="receipt-code">([\d ]+)<', receipt_page.text).group(1)
    pages = {
        "index": client.get("/", headers=headers).text,
        "followup": client.get("/followup", headers=headers).text,
        "receipt": receipt_page.text,
        "case": client.post("/followup", data={"receipt": receipt, "sealing": "noscript"},
                            headers=headers).text,
        "refused": client.post("/report", data=with_token(client, _form()), headers=headers).text,
    }
    for name, html in pages.items():
        shown = _visible(html)
        for claim in DEVICE_CLAIMS[language]:
            assert claim not in shown, (name, claim)
    # The script fills the claim in only once it runs (static/js/ui.js showDeviceClaims).
    assert '<span class="device-claim"></span>' in pages["index"]


def test_a_refused_no_javascript_report_loses_nothing_typed(client: TestClient, world,  # type: ignore[no-untyped-def]
                                                            session) -> None:
    response = client.post("/report", data=with_token(client, _form(sealing="noscript", unit="")))
    assert response.status_code == 400
    assert "请填写被举报单位" in response.text
    assert DESCRIPTION in response.text and 'value="王五"' in response.text
    # The marker is not echoed back as a plain field: only the page's own <noscript> one.
    assert response.text.count('value="noscript"') == 1
    assert '<input type="hidden" name="sealing" value="chosen">' not in response.text
    assert _rows(session) == NOTHING


def test_the_refusal_in_json_for_a_client_that_asks(client: TestClient, world, session) -> None:  # type: ignore[no-untyped-def]
    refused = client.post("/report", data=with_token(client, _form()), headers={"Accept": "application/json",
                                                            "Accept-Language": "en"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "script_failed"
    assert "encryption script did not load" in refused.json()["error"]["message"]
    assert _rows(session) == NOTHING
