from __future__ import annotations

from starlette.testclient import TestClient

from service.domain import channels


def test_index_is_chinese_by_default(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text
    assert "举报安全隐患" in response.text


def test_accept_language_english(client: TestClient) -> None:
    response = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert '<html lang="en">' in response.text
    assert "Report a safety hazard" in response.text


def test_language_switch_sets_cookie_and_stays_on_site(client: TestClient) -> None:
    response = client.get("/language?lang=en&next=/console/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-lang=en")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Domain" not in cookie and "Path=/" in cookie
    page = client.get("/", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in page.text


def test_language_switch_refuses_open_redirect(client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = client.get("/language", params={"lang": "en", "next": target},
                              follow_redirects=False)
        assert response.headers["location"] == "/"


def test_channels_listed(client: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    channels.add_channel(session, slug="acme-internal", kind="enterprise",
                         name_zh="某某机械厂内部举报", name_en="ACME internal line")
    session.commit()
    page = client.get("/")
    assert "某某机械厂内部举报" in page.text
    english = client.get("/", headers={"Accept-Language": "en"})
    assert "ACME internal line" in english.text


def test_security_headers_on_pages_and_errors(client: TestClient) -> None:
    for path in ("/", "/no-such-page", "/console/", "/console/invite/nope"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def test_static_is_cacheable(client: TestClient) -> None:
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_not_found_page_translated(client: TestClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "该页面不存在" in response.text
    response = client.get("/no-such-page", headers={"Accept-Language": "en"})
    assert "This page does not exist." in response.text


def test_api_errors_are_json(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "http_404",
                                         "message": "This page does not exist."}}


def test_method_not_allowed_translated(client: TestClient) -> None:
    response = client.post("/language")
    assert response.status_code == 405
    assert "该地址不接受此类请求" in response.text
