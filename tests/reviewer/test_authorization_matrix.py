"""Every console route, for every role: who gets in and who is turned away.

The table below is the specification, written independently of the views. A console route
missing from it fails the test, so a new route cannot ship without a decision about who may
use it. "Allowed" means authorization passed (the answer is not 401/403 or a redirect to the
sign-in page); the request may still be refused for its content (400/404/409), which is fine.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from reviewer import auth
from service.domain.models import Case
from tests.console import sign_in
from tests.factories import api_client, make_reviewer, make_world

ANON = "anonymous"
ROLES = ("reviewer", "approver", "auditor", "finance", "admin")
EVERYONE = {ANON, *ROLES}
SIGNED_IN = set(ROLES)
CASE_READERS = {"reviewer", "approver", "auditor"}
REWARD_READERS = {"reviewer", "approver", "finance", "auditor"}

MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/"): SIGNED_IN,  # the sign-in page for everyone else
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("POST", "/api/prelogin"): EVERYONE,
    ("POST", "/logout"): EVERYONE,
    ("GET", "/invite/{token}"): EVERYONE,
    ("POST", "/invite/{token}"): EVERYONE,
    ("GET", "/invite/{token}/totp"): EVERYONE,
    ("POST", "/invite/{token}/totp"): EVERYONE,
    ("GET", "/account"): SIGNED_IN,
    ("POST", "/account/sessions/revoke-all"): SIGNED_IN,
    ("POST", "/account/sessions/{session_id}/revoke"): SIGNED_IN,
    ("GET", "/api/me/key"): SIGNED_IN,
    ("POST", "/api/account/password"): SIGNED_IN,
    # Protocol v2: every account has a key pair, so every account may add its X-Wing one.
    ("POST", "/api/account/xwing-key"): SIGNED_IN,
    ("POST", "/account/notifications"): SIGNED_IN,
    ("GET", "/cases"): SIGNED_IN,
    ("GET", "/cases/{case_id}"): CASE_READERS,
    ("POST", "/cases/{case_id}/actions/{action}"): {"reviewer", "approver"},
    ("POST", "/cases/{case_id}/identity"): {"reviewer"},
    ("GET", "/cases/{case_id}/files/{file_id}/chunks/{index:int}"): CASE_READERS,
    ("GET", "/cases/{case_id}/replies"): CASE_READERS,
    ("POST", "/cases/{case_id}/messages"): {"reviewer"},
    ("POST", "/cases/{case_id}/notes"): {"reviewer"},
    ("POST", "/cases/{case_id}/grants"): {"reviewer"},
    ("POST", "/cases/{case_id}/reslot"): {"reviewer"},
    ("GET", "/admin"): {"admin"},
    ("POST", "/admin/users/{user_id:int}/roles"): {"admin"},
    ("POST", "/admin/users/{user_id:int}/deactivate"): {"admin"},
    ("POST", "/admin/users/{user_id:int}/reactivate"): {"admin"},
    ("POST", "/admin/users/{user_id:int}/scope"): {"admin"},
    ("POST", "/admin/users/{user_id:int}/scope/{channel_id:int}/remove"): {"admin"},
    ("GET", "/admin/invitations"): {"admin"},
    ("POST", "/admin/invitations"): {"admin"},
    ("GET", "/admin/notifications"): {"admin"},
    ("POST", "/admin/notifications/defaults"): {"admin"},
    ("POST", "/admin/notifications/webhooks"): {"admin"},
    ("POST", "/admin/notifications/webhooks/{hook_id:int}/remove"): {"admin"},
    ("POST", "/admin/notifications/{row_id:int}/retry"): {"admin"},
    ("GET", "/admin/channels"): {"admin"},
    ("POST", "/admin/channels"): {"admin"},
    ("POST", "/admin/channels/{channel_id:int}/deactivate"): {"admin"},
    ("POST", "/admin/channels/{channel_id:int}/reactivate"): {"admin"},
    ("POST", "/admin/channels/{channel_id:int}/recipients"): {"admin"},
    ("POST", "/admin/channels/{channel_id:int}/recipients/{user_id:int}/remove"): {"admin"},
    # Rectification (issue 5): reviewers do the work, approvers write off, auditors read.
    ("GET", "/rectifications"): CASE_READERS,
    ("GET", "/rectifications/{record_id:int}"): CASE_READERS,
    ("POST", "/rectifications/{record_id:int}/actions/{action}"): {"reviewer", "approver"},
    ("POST", "/rectifications/{record_id:int}/files"): {"reviewer"},
    ("PUT", "/rectifications/{record_id:int}/files/{file_id}/chunks/{index:int}"): {"reviewer"},
    ("POST", "/rectifications/{record_id:int}/files/{file_id}/finish"): {"reviewer"},
    ("GET", "/cases/{case_id}/rectifications"): CASE_READERS,
    ("POST", "/cases/{case_id}/rectifications"): {"reviewer"},
    ("GET", "/ledger"): CASE_READERS,
    ("GET", "/ledger/export"): CASE_READERS,
    ("GET", "/stats"): CASE_READERS,
    ("GET", "/admin/board"): {"admin"},
    ("POST", "/admin/board/{channel_id:int}"): {"admin"},
    # Rewards and audit (issue 6): a reviewer proposes, a different approver decides,
    # finance pays, the auditor reads and exports, the admin manages policies.
    ("GET", "/rewards"): REWARD_READERS,
    ("GET", "/rewards/{reward_id}"): REWARD_READERS,
    ("POST", "/rewards/{reward_id}/approve"): {"approver"},
    ("POST", "/rewards/{reward_id}/reject"): {"approver"},
    ("POST", "/rewards/{reward_id}/claim"): {"finance"},
    ("POST", "/rewards/{reward_id}/verify-code"): {"finance"},
    ("POST", "/rewards/{reward_id}/pay"): {"finance"},
    ("POST", "/rewards/export"): {"auditor"},
    ("GET", "/rewards/exports/{export_id}/manifest.json"): {"auditor"},
    ("GET", "/cases/{case_id}/reward"): CASE_READERS,
    ("POST", "/cases/{case_id}/reward"): {"reviewer"},
    ("GET", "/audit"): {"auditor"},
    ("GET", "/audit/head.json"): {"auditor"},
    ("GET", "/audit/export.{fmt}"): {"auditor"},
    ("GET", "/audit/signing.pub"): {"auditor"},
    ("GET", "/reward-policies"): {"admin"},
    ("POST", "/reward-policies"): {"admin"},
    ("POST", "/reward-policies/{row_id:int}/activate"): {"admin"},
    ("POST", "/reward-policies/{row_id:int}/deactivate"): {"admin"},
    ("POST", "/reward-policies/{row_id:int}/preview"): {"admin"},
    # Posters (issue 15): printed by the administrator of the channels.
    ("GET", "/admin/channels/{channel_id:int}/poster"): {"admin"},
    ("GET", "/admin/channels/{channel_id:int}/poster/file"): {"admin"},
}


def console_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    console = next(r.app for r in app.routes if getattr(r, "path", "") == "/console")
    found = []
    for route in console.routes:
        for method in sorted(route.methods or []):
            if method != "HEAD":
                found.append((method, route.path))
    return found


def test_every_console_route_is_in_the_matrix(app) -> None:  # type: ignore[no-untyped-def]
    missing = [route for route in console_routes(app) if route not in MATRIX]
    assert not missing, f"decide who may use these console routes: {missing}"
    stale = [route for route in MATRIX if route not in console_routes(app)]
    assert not stale, f"routes in the matrix that no longer exist: {stale}"


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], path)


@pytest.fixture
def people(session, settings, client):  # type: ignore[no-untyped-def]
    world = make_world(session, settings, reviewers=1)
    reviewer = world.reviewers[0].user
    users = {"reviewer": reviewer}
    for role in ("approver", "auditor", "finance", "admin"):
        person = make_reviewer(session, f"{role}-user", world.channel, roles=role).user
        users[role] = person
    session.commit()
    api_client(client).submit("acme", {"v": 1, "unit": "某厂", "description": "x"})
    case = session.scalar(select(Case))
    values = {"token": "not-a-token", "session_id": "0" * 64, "case_id": case.id,
              "action": "accept", "file_id": "0" * 32, "index": "0", "fmt": "csv",
              "user_id": str(reviewer.id), "channel_id": str(world.channel.id),
              "record_id": "999999", "reward_id": "999999", "export_id": "999999",
              "row_id": "999999", "hook_id": "999999"}
    return users, values


@pytest.mark.parametrize("role", [ANON, *ROLES])
def test_matrix(role: str, people, client: TestClient, session, settings) -> None:  # type: ignore[no-untyped-def]
    users, values = people
    if role == ANON:
        client.get("/console/login")
        presession = client.cookies.get(auth.presession_cookie(settings))
        csrf = auth.csrf_token_for(str(settings.secret_key), "anon:" + presession)
    else:
        csrf = sign_in(client, session, settings, users[role])
    failures = []
    for (method, path), allowed in MATRIX.items():
        if (method, path) in {("POST", "/logout"), ("POST", "/account/sessions/revoke-all")}:
            continue  # would end this test's own session; covered in the account tests
        url = "/console" + _fill(path, values)
        if "/deactivate" in path and "users" in path:
            url = "/console" + _fill(path, {**values, "user_id": "999999"})
        response = client.request(method, url, headers={"X-CSRF-Token": csrf,
                                                        "Accept": "application/json"},
                                  follow_redirects=False)
        turned_away = response.status_code in (401, 403) or (
            response.status_code == 303 and "/console/login" in response.headers.get("location", ""))
        if (role in allowed) == turned_away:
            failures.append((method, path, role, response.status_code))
    assert not failures, failures
