"""The public API against its documentation (docs/API.md), both ways, without a new tool.

CONTRACT below is the table of every documented endpoint: method, path, authentication,
success status and the error answers its section documents. It is checked against the
document (every endpoint there is in the table and the other way round; every error the
table lists is written in the endpoint's section), against the app (every /api/v1 route and
every form endpoint is documented; every documented endpoint exists), and against behaviour:
requests built from the documented shape, with Hypothesis-generated valid-looking and
invalid values, must get a documented status and code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from tests.security.fuzzing import FUZZ, dumps, json_values
from tests.security.support import routes_of
from tests.security.test_fuzz_api import PUBLIC, Target, spoil, target  # noqa: F401

API_MD = Path(__file__).resolve().parents[2] / "docs" / "API.md"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    auth: str                          # none | upload | followup
    success: frozenset[int]
    errors: frozenset[tuple[int, str]]


def E(method: str, path: str, auth: str, success: set[int], *errors: str) -> Endpoint:
    parsed = frozenset((int(e.split()[0]), e.split()[1]) for e in errors)
    return Endpoint(method, path, auth, frozenset(success), parsed)


SUB = "/api/v1/submissions/{case_id}"
FILES = "/api/v1/followup/files/{file_id}"
CONTRACT = [
    E("GET", "/api/v1/channels", "none", {200}),
    E("GET", "/api/v1/pow", "none", {200}),
    E("POST", "/api/v1/submissions", "none", {201}, "400 invalid", "400 malformed_json",
      "400 pow_invalid", "400 unknown_channel", "400 duplicate_submission",
      "409 keys_changed", "413 too_large", "415 wrong_content_type", "503 not_initialised"),
    E("PUT", SUB + "/files/{file_id}/batch/{first}/{count}", "upload", {200},
      "404 submission_not_found", "404 not_found", "400 invalid", "413 too_large"),
    E("PUT", SUB + "/files/{file_id}/chunks/{index}", "upload", {204},
      "404 submission_not_found", "404 not_found", "400 invalid", "413 too_large"),
    E("GET", SUB, "upload", {200}, "404 submission_not_found"),
    E("POST", SUB + "/finish", "upload", {200}, "409 upload_incomplete",
      "404 submission_not_found"),
    E("DELETE", SUB, "upload", {204}, "404 submission_not_found"),
    E("POST", "/api/v1/followup/session", "none", {200}, "415 wrong_content_type",
      "400 malformed_json", "400 pow_invalid", "404 receipt_unknown"),
    E("GET", "/api/v1/followup", "followup", {200}, "401 followup_expired"),
    E("POST", "/api/v1/followup/items", "followup", {201}, "401 followup_expired",
      "415 wrong_content_type", "400 malformed_json", "400 invalid", "400 duplicate_item",
      "413 too_large"),
    E("POST", "/api/v1/followup/files", "followup", {201}, "401 followup_expired",
      "415 wrong_content_type", "400 malformed_json", "400 invalid", "400 duplicate_item",
      "413 too_large"),
    E("PUT", FILES + "/batch/{first}/{count}", "followup", {200}, "401 followup_expired",
      "404 not_found", "409 file_complete", "400 invalid", "413 too_large"),
    E("GET", FILES, "followup", {200}, "401 followup_expired", "404 not_found"),
    E("PUT", FILES + "/chunks/{index}", "followup", {204}, "401 followup_expired",
      "404 not_found", "409 file_complete", "400 invalid", "413 too_large"),
    E("POST", FILES + "/finish", "followup", {200}, "401 followup_expired", "404 not_found",
      "409 upload_incomplete"),
    E("GET", FILES + "/chunks/{index}", "followup", {200}, "401 followup_expired",
      "404 not_found", "400 invalid"),
    E("GET", "/api/v1/followup/rewards", "followup", {200}, "401 followup_expired"),
    E("POST", "/api/v1/followup/rewards/{reward_id}/claim", "followup", {201},
      "401 followup_expired", "404 not_found", "409 already_claimed",
      "409 claim_keys_changed", "410 claim_window_closed", "400 invalid",
      "400 malformed_json", "415 wrong_content_type"),
]
# Section 9: the pages and forms that work without JavaScript.
FORMS = [("GET", "/"), ("POST", "/report"), ("GET", "/report/sent"), ("POST", "/report/sent"),
         ("GET", "/followup"), ("POST", "/followup"),
         ("POST", "/followup/reply"), ("POST", "/followup/file"), ("POST", "/followup/claim"),
         ("GET", "/board"), ("GET", "/language"), ("GET", "/healthz"),
         ("GET", "/readyz"), ("GET", "/favicon.ico"), ("GET", "/static/{path}")]


# ---------------------------------------------------------------------------- the document


def documented_sections() -> dict[tuple[str, str], str]:
    """(method, path) -> the text of its section, from the headings of docs/API.md."""
    text = API_MD.read_text(encoding="utf-8")
    sections: dict[tuple[str, str], str] = {}
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        found = re.findall(r"`(GET|POST|PUT|DELETE) ([^`]+)`", heading)
        previous = ""
        for method, path in found:
            if path.startswith("…"):
                path = previous.rsplit("/{file_id}", 1)[0] + path[1:]
            previous = path
            sections[(method, path)] = body
    return sections


def documented_forms() -> set[tuple[str, str]]:
    text = API_MD.read_text(encoding="utf-8").split("## 9.", 1)[1]
    return {(m, p.split("?")[0]) for m, p in re.findall(r"^\| `(GET|POST) ([^`]+)`", text,
                                                        flags=re.M)}


def test_the_table_is_the_document() -> None:
    sections = documented_sections()
    assert {(e.method, e.path) for e in CONTRACT} == set(sections)
    for endpoint in CONTRACT:
        body = sections[(endpoint.method, endpoint.path)]
        for status, code in endpoint.errors:
            assert (f"{status} {code}" in body or f"`{status}`" in body
                    or f"`{code}`" in body), (endpoint.method, endpoint.path, status, code)
    assert documented_forms() == set(FORMS)


def test_every_documented_endpoint_exists(web: TestClient) -> None:
    routes = routes_of(web.app)  # type: ignore[arg-type]
    present = {(m, r.path) for r in routes for m in r.methods}
    missing = [(e.method, e.path) for e in CONTRACT if (e.method, e.path) not in present]
    missing += [form for form in FORMS if form not in present]
    assert not missing


def test_every_public_route_is_documented(web: TestClient) -> None:
    documented = {(e.method, e.path) for e in CONTRACT} | set(FORMS)
    undocumented = sorted(f"{m} {r.path}" for m, r in PUBLIC
                          if (m, r.path) not in documented)
    assert not undocumented, undocumented


# ---------------------------------------------------------------------------- behaviour

hex32 = st.binary(min_size=16, max_size=16).map(bytes.hex)


def b64(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(crypto.b64u_encode)


def blob() -> st.SearchStrategy[str]:
    return st.sampled_from([256, 255, 272, 300, 1024]).flatmap(
        lambda n: st.binary(min_size=n + 29, max_size=n + 29)).map(
        lambda b: crypto.b64u_encode(b"\x01" + b[1:]))


def shaped_body(endpoint: Endpoint, t: Target) -> st.SearchStrategy[dict[str, object]]:
    """A body of the documented shape with valid-looking values."""
    if endpoint.path == "/api/v1/submissions":
        return st.fixed_dictionaries({
            "channel": st.sampled_from(["acme", "nope"]), "case_id": hex32,
            "lookup_hash": st.binary(min_size=32, max_size=32).map(bytes.hex),
            "slots": st.lists(st.fixed_dictionaries({
                "purpose": st.just("case"), "suite": st.just(crypto.SUITE), "key_id": hex32,
                "slot": b64(80)}), min_size=1, max_size=4),
            "items": st.lists(st.fixed_dictionaries({
                "id": hex32, "kind": st.sampled_from(["report", "identity", "file-meta"]),
                "blob": blob()}), min_size=1, max_size=3),
            "files": st.just([]), "pow": st.sampled_from(["x:1", ""])})
    if endpoint.path == "/api/v1/followup/session":
        return st.fixed_dictionaries({"lookup_secret": b64(32), "pow": st.just("x:1")})
    if endpoint.path == "/api/v1/followup/items":
        return st.fixed_dictionaries({"id": hex32, "kind": st.just("reply"), "blob": blob()})
    if endpoint.path == "/api/v1/followup/files":
        return st.fixed_dictionaries({
            "file": st.fixed_dictionaries({"id": hex32, "meta_item_id": hex32,
                                           "stored_size": st.sampled_from([17, 272, 288]),
                                           "chunk_count": st.just(1)}),
            "meta": st.fixed_dictionaries({"id": hex32, "blob": blob()})})
    if endpoint.path.endswith("/claim"):
        return st.fixed_dictionaries({
            "claim_hash": st.binary(min_size=32, max_size=32).map(bytes.hex),
            "item": st.fixed_dictionaries({"id": hex32, "kind": st.just("claim"),
                                           "blob": blob()}),
            "slots": st.lists(st.fixed_dictionaries({
                "key_id": hex32, "suite": st.just(crypto.SUITE), "slot": b64(80)}),
                min_size=1, max_size=3)})
    return st.just({})


def _request(draw: st.DrawFn, endpoint: Endpoint, t: Target) -> tuple[str, dict[str, str],
                                                                      bytes | None]:
    real = {"case_id": [t.draft_case, t.rich.case.id],
            "file_id": [t.draft_file, t.rich.file_id], "index": ["0", "1", "7", "x"],
            "first": ["0", "1", "7", "x"], "count": ["1", "2", "65", "0"],
            "reward_id": [t.rich.reward_id]}
    path = re.sub(r"{(\w+)}", lambda m: draw(st.one_of(st.sampled_from(real[m.group(1)]),
                                                          hex32)), endpoint.path)
    headers: dict[str, str] = {"Accept-Language": "en"}
    token = {"upload": t.upload, "followup": t.followup}.get(endpoint.auth)
    if token and draw(st.booleans()):
        headers["Authorization"] = f"Bearer {token}"
    elif draw(st.booleans()):
        headers["Authorization"] = "Bearer " + draw(st.sampled_from(["x", "A" * 40]))
    if endpoint.method in ("GET", "DELETE"):
        return path, headers, None
    if "/chunks/" in path or "/batch/" in path:
        size = draw(st.sampled_from([0, 17, 100, 65552, 65553, 2 * 65552]))
        return path, {**headers, "Content-Type": "application/octet-stream"}, bytes(size)
    body = draw(shaped_body(endpoint, t))
    if draw(st.booleans()):
        body = spoil(draw, body)
    headers["Content-Type"] = draw(st.sampled_from(["application/json"] * 5 + ["text/plain"]))
    raw = dumps(body) if draw(st.integers(0, 9)) else draw(st.sampled_from([b"{", b"[]",
                                                                            dumps(draw(json_values))]))
    return path, headers, raw


@pytest.mark.parametrize("endpoint", CONTRACT, ids=[f"{e.method} {e.path}" for e in CONTRACT])
def test_answers_are_documented(endpoint: Endpoint, target: Target, web: TestClient,  # noqa: F811
                                session: Session) -> None:
    @FUZZ
    @given(st.data())
    def run(data: st.DataObject) -> None:
        if endpoint.method == "DELETE" and data.draw(st.booleans()):
            return  # a DELETE with the real token would end the draft the others need
        path, headers, body = _request(data.draw, endpoint, target)
        if endpoint.method == "DELETE":
            headers.pop("Authorization", None)
        response = web.request(endpoint.method, path, headers=headers, content=body)
        status = response.status_code
        if status in endpoint.success:
            return
        error = response.json()["error"]
        assert (status, error["code"]) in endpoint.errors, (
            f"{endpoint.method} {path}: undocumented {status} {error['code']}: "
            f"{error['message']}")

    run()
