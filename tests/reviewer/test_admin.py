"""Administration over HTTP: only admins get in, every action lands in the audit trail."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.routing import Route
from starlette.testclient import TestClient

from reviewer import auth
from reviewer.views import admin
from service.app import create_app
from service.domain import channels
from service.domain.models import (
    ROLES,
    AuditEntry,
    Channel,
    ChannelRecipient,
    ConsoleSession,
    Invitation,
    User,
)
from service.platform import tokens
from tests.conftest import BASE_URL
from tests.console import sign_in
from tests.factories import make_reviewer

LINK = re.compile(r'<code id="invitation-link">([^<]+)</code>')


def _paths() -> list[tuple[str, str]]:
    """Every admin route with concrete ids filled in."""
    found = []
    for route in admin.ROUTES:
        assert isinstance(route, Route)
        path = "/console" + route.path.replace("{user_id:int}", "1").replace(
            "{channel_id:int}", "1")
        for method in sorted(route.methods or []):
            if method != "HEAD":
                found.append((method, path))
    return found


def _admin(session, name: str = "root"):  # type: ignore[no-untyped-def]
    user = make_reviewer(session, name, roles="admin").user
    user.totp_confirmed = True
    session.commit()
    return user


def _reviewer(session, name: str):  # type: ignore[no-untyped-def]
    user = make_reviewer(session, name, roles="reviewer").user
    user.totp_confirmed = True
    session.commit()
    return user


def _actions(session) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(e.action, e.outcome) for e in session.scalars(select(AuditEntry))]


def test_every_admin_route_needs_the_admin_role(settings, committed_database) -> None:  # type: ignore[no-untyped-def]
    session = committed_database.sessionmaker()
    clerk = make_reviewer(session, "clerk", roles="reviewer approver auditor").user
    session.commit()
    app = create_app(settings, database=committed_database)
    paths = _paths()
    assert len(paths) == 14
    with TestClient(app, base_url=BASE_URL) as client:
        # Anonymous: pages send to the sign-in form, state changes are refused.
        for method, path in paths:
            if method == "GET":
                response = client.get(path, follow_redirects=False)
                assert response.status_code == 303, path
                assert response.headers["location"] == "/console/login"
            else:
                page = client.get("/console/login")
                csrf = re.search(r'name="csrf-token" content="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
                response = client.post(path, headers={"X-CSRF-Token": csrf,
                                                      "Accept": "application/json"})
                assert response.status_code == 401, path
        csrf = sign_in(client, session, settings, clerk)
        for method, path in paths:
            response = client.request(method, path, headers={"X-CSRF-Token": csrf})
            assert response.status_code == 403, (method, path)
    session.expire_all()
    refusals = [e for e in session.scalars(select(AuditEntry))
                if e.action == "forbidden" and e.outcome == "refused"]
    assert len(refusals) == len(paths)
    assert all(e.actor == "clerk" for e in refusals)
    session.close()


@pytest.fixture
def admin_client(settings, session, client):  # type: ignore[no-untyped-def]
    root = _admin(session)
    csrf = sign_in(client, session, settings, root)
    return client, csrf, root


def test_invitation_link_is_shown_once(admin_client, session) -> None:  # type: ignore[no-untyped-def]
    client, csrf, root = admin_client
    channel = channels.add_channel(session, slug="plant", kind="enterprise", name_zh="一号厂")
    session.commit()
    page = client.get("/console/admin/invitations")
    assert page.status_code == 200 and 'id="invite-create"' in page.text
    made = client.post("/console/admin/invitations", data={
        "csrf_token": csrf, "roles": ["reviewer", "approver"], "channel": str(channel.id),
        "hours": "24"})
    assert made.status_code == 200
    link = LINK.search(made.text).group(1)  # type: ignore[union-attr]
    assert link.startswith(f"{BASE_URL}/console/invite/")
    token = link.rsplit("/", 1)[1]
    stored = session.scalar(select(Invitation))
    assert stored.roles == "approver reviewer" and stored.channel_id == channel.id
    assert token not in stored.token_hash
    # Not shown again; the link itself works.
    again = client.get("/console/admin/invitations")
    # The roles and the channel by their names in the page's language, not as codes.
    row = again.text[again.text.index('id="open-invitations"'):]
    assert token not in again.text and "审批人员、受理人员" in row and "一号厂" in row
    assert "approver reviewer" not in row
    assert client.get(f"/console/invite/{token}").status_code == 200
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "admin.invite"))
    assert entry.actor_id == root.id and token not in str(entry.details)

    # A channel needs a reviewer; roles must be known; hours sensible.
    for bad in ({"roles": ["auditor"], "channel": str(channel.id), "hours": "2"},
                {"roles": ["wizard"], "hours": "2"}, {"roles": [], "hours": "2"},
                {"roles": ["reviewer"], "hours": "0"}, {"roles": ["reviewer"], "hours": "x"},
                {"roles": ["reviewer"], "channel": "999", "hours": "2"}):
        response = client.post("/console/admin/invitations", data={"csrf_token": csrf, **bad})
        assert response.status_code in (400, 404), bad
        # Refused in place: the reason above the form, the form as it was typed.
        assert 'id="invite-error"' in response.text and 'id="invite-create"' in response.text
        for role in bad["roles"]:
            if role in ROLES:
                assert f'value="{role}" checked' in response.text, bad
    kept = client.post("/console/admin/invitations", data={
        "csrf_token": csrf, "roles": ["auditor"], "channel": str(channel.id),
        "scope": [str(channel.id)], "hours": "5"})
    assert f'<option value="{channel.id}" selected>' in kept.text
    assert f'name="scope" value="{channel.id}" checked' in kept.text
    assert 'value="5"' in kept.text and 'value="reviewer" checked' not in kept.text


def test_roles_and_deactivation(admin_client, session, settings) -> None:  # type: ignore[no-untyped-def]
    client, csrf, root = admin_client
    mei = _reviewer(session, "mei")
    token = auth.start_session(session, settings, mei)
    session.commit()
    page = client.get("/console/admin")
    assert page.status_code == 200 and f'id="user-{mei.id}"' in page.text

    changed = client.post(f"/console/admin/users/{mei.id}/roles",
                          data={"csrf_token": csrf, "roles": ["reviewer", "approver"]},
                          follow_redirects=False)
    assert changed.status_code == 303
    session.expire_all()
    assert session.get(User, mei.id).roles == "approver reviewer"
    # Saving confirms beside the row, in the page's language.
    shown = client.get(changed.headers["location"])
    assert 'id="roles-saved"' in shown.text and "角色已保存：审批人员、受理人员。" in shown.text
    english = client.get(changed.headers["location"], headers={"Accept-Language": "en"})
    assert "Roles saved: Approver, Reviewer." in english.text
    refused = client.post(f"/console/admin/users/{mei.id}/roles",
                          data={"csrf_token": csrf, "roles": ["boss"]})
    assert refused.status_code == 400
    row = refused.text[refused.text.index(f'id="user-{mei.id}"'):]
    assert 'id="roles-error"' in row.split("</tr>")[0]

    off = client.post(f"/console/admin/users/{mei.id}/deactivate", data={"csrf_token": csrf},
                      follow_redirects=False)
    assert off.status_code == 303
    session.expire_all()
    assert not session.get(User, mei.id).active
    assert session.get(ConsoleSession, tokens.digest(token)).revoked_at is not None
    assert auth.load_session(session, settings, token) is None
    on = client.post(f"/console/admin/users/{mei.id}/reactivate", data={"csrf_token": csrf},
                     follow_redirects=False)
    assert on.status_code == 303
    session.expire_all()
    assert session.get(User, mei.id).active
    assert auth.load_session(session, settings, token) is None  # ended sessions stay ended

    # No administrator can lock themselves out.
    for path in (f"/console/admin/users/{root.id}/deactivate",
                 f"/console/admin/users/{root.id}/roles"):
        assert client.post(path, data={"csrf_token": csrf, "roles": ["reviewer"]}
                           ).status_code == 403
    assert client.post("/console/admin/users/9999/deactivate",
                       data={"csrf_token": csrf}).status_code == 404
    actions = _actions(session)
    for name in ("admin.roles", "admin.deactivate", "admin.reactivate"):
        assert (name, "ok") in actions


def test_channels_and_recipients(admin_client, session) -> None:  # type: ignore[no-untyped-def]
    client, csrf, root = admin_client
    nan = _reviewer(session, "nan")
    auditor = make_reviewer(session, "otto", roles="auditor").user
    auditor.totp_confirmed = True
    session.commit()
    page = client.get("/console/admin/channels")
    assert page.status_code == 200
    assert "只影响新的举报" in page.text  # adding a recipient affects only new cases

    added = client.post("/console/admin/channels", data={
        "csrf_token": csrf, "slug": "bureau-east", "kind": "bureau", "name_zh": "东区应急管理局",
        "name_en": "East district bureau"}, follow_redirects=False)
    assert added.status_code == 303
    channel = session.scalar(select(Channel).where(Channel.slug == "bureau-east"))
    assert channel is not None and channel.active
    refused = client.post("/console/admin/channels", data={
        "csrf_token": csrf, "slug": "Bad Slug", "kind": "bureau", "name_zh": "西区应急管理局"})
    assert refused.status_code == 400
    # Refused in place: the reason above the form, what was typed still in it; audited.
    assert 'id="channel-error"' in refused.text and 'value="Bad Slug"' in refused.text
    assert 'value="西区应急管理局"' in refused.text and 'value="bureau" selected' in refused.text
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "admin.channel.add",
                                                   AuditEntry.outcome == "refused"))

    base = f"/console/admin/channels/{channel.id}"
    assert client.post(f"{base}/recipients", data={"csrf_token": csrf, "user_id": str(nan.id)},
                       follow_redirects=False).status_code == 303
    assert session.get(ChannelRecipient, (channel.id, nan.id)) is not None
    assert "nan" in client.get("/console/admin/channels").text
    assert client.post(f"{base}/recipients", data={"csrf_token": csrf,
                                                   "user_id": str(auditor.id)}
                       ).status_code == 400
    assert client.post(f"{base}/recipients/{nan.id}/remove", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    session.expire_all()
    assert session.get(ChannelRecipient, (channel.id, nan.id)) is None
    assert client.post(f"{base}/recipients/{nan.id}/remove",
                       data={"csrf_token": csrf}).status_code == 404

    assert client.post(f"{base}/deactivate", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    session.expire_all()
    assert not session.get(Channel, channel.id).active
    assert client.post(f"{base}/reactivate", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    session.expire_all()
    assert session.get(Channel, channel.id).active
    actions = _actions(session)
    for name in ("admin.channel.add", "admin.recipient.add", "admin.recipient.remove",
                 "admin.channel.deactivate", "admin.channel.reactivate"):
        assert (name, "ok") in actions, name
    assert all(e.actor_id == root.id for e in session.scalars(
        select(AuditEntry).where(AuditEntry.action.startswith("admin."))))


def test_refused_admin_actions_are_audited(settings, committed_database) -> None:  # type: ignore[no-untyped-def]
    session = committed_database.sessionmaker()
    root = _admin(session)
    app = create_app(settings, database=committed_database)
    with TestClient(app, base_url=BASE_URL) as client:
        csrf = sign_in(client, session, settings, root)
        assert client.post(f"/console/admin/users/{root.id}/deactivate",
                           data={"csrf_token": csrf}).status_code == 403
        assert client.post("/console/admin/invitations",
                           data={"csrf_token": csrf, "roles": ["wizard"]}).status_code == 400
    session.expire_all()
    refused = [(e.action, e.details.get("reason")) for e in session.scalars(select(AuditEntry))
               if e.outcome == "refused"]
    session.close()
    assert ("admin.deactivate", "forbidden") in refused
    assert ("admin.invite", "invalid") in refused
