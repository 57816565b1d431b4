"""Bodies are judged by their route before they are read (in process; the live attacks are
in tests/reliability/test_dos.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

JSON = {"Accept": "application/json", "Accept-Language": "en"}


def test_a_body_for_an_unknown_path_or_method_gets_the_routers_answer(client: TestClient) -> None:
    unknown = client.post("/no/such/path", content=b"x" * 1000, headers=JSON)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "http_404"
    assert unknown.headers["connection"] == "close"
    wrong = client.put("/api/v1/channels", content=b"x" * 1000, headers=JSON)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "http_405"
    # Without a body the router answers as before.
    assert client.post("/no/such/path", headers=JSON).json()["error"]["code"] == "http_404"


def test_each_route_has_its_own_limit(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    # Over the JSON limit but under the no-JavaScript one: refused on the JSON route.
    body = b"x" * (settings.max_form_bytes + 1)
    refused = client.post("/api/v1/submissions", content=body,
                          headers={**JSON, "Content-Type": "application/json"})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"
    # A route without a limit of its own gets the form limit.
    finish = client.post("/api/v1/submissions/" + "0" * 32 + "/finish", content=body,
                         headers={**JSON, "Content-Type": "application/json"})
    assert finish.status_code == 413
