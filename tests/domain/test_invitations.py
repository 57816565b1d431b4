from __future__ import annotations

import datetime as dt

import pytest
from starlette.testclient import TestClient

from service.domain import invitations
from service.domain.models import utcnow


def test_invitation_page_accepts_valid_token_only(client: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    _, token = invitations.create_invitation(session, roles=["admin"], hours=1)
    past = utcnow() - dt.timedelta(hours=5)
    _, expired = invitations.create_invitation(session, roles=["reviewer"], hours=1, now=past)
    session.commit()
    ok = client.get(f"/console/invite/{token}")
    assert ok.status_code == 200 and "admin" in ok.text
    bad = client.get("/console/invite/not-a-real-token")
    old = client.get(f"/console/invite/{expired}")
    # Unknown and expired look exactly the same.
    assert bad.status_code == old.status_code == 404
    assert "邀请链接无效或已过期" in bad.text
    assert bad.text.replace("not-a-real-token", "T") == old.text.replace(expired, "T")


def test_invitation_refuses_unknown_role(session) -> None:  # type: ignore[no-untyped-def]
    from service.platform.errors import InvalidInput

    with pytest.raises(InvalidInput):
        invitations.create_invitation(session, roles=["root"], hours=1)
    with pytest.raises(InvalidInput):
        invitations.create_invitation(session, roles=["admin"], hours=0)
