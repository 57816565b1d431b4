"""Anonymous refusals cannot grow the audit trail (review: 89 entries a second by CSRF).

A request refused for its CSRF token by nobody signed in used to append one audit entry, so
anyone could write ~7.7 million entries a day. Now such refusals are counted per hour and
kind: the figure this test holds is one row, however many requests.
"""

from __future__ import annotations

from sqlalchemy import func, select

from service.domain.models import AuditEntry, RefusalCount
from tests.console import sign_in
from tests.factories import make_reviewer
from tests.reviewer import test_accounts

committed_client = test_accounts.committed_client
ATTACK = 300


def test_csrf_flood_writes_one_counter_row(committed_client, committed_database,  # type: ignore[no-untyped-def]
                                           settings) -> None:
    client = committed_client
    for index in range(ATTACK):
        path = "/console/login" if index % 2 else "/console/logout"
        assert client.post(path, data={"x": "1"}).status_code == 403
    with committed_database.session() as session:
        # Before: 300 audit entries (one per request). Now: none, and one counter row.
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0
        rows = list(session.scalars(select(RefusalCount)))
        assert [(r.kind, r.count) for r in rows] == [("csrf", ATTACK)]
        assert rows[0].bucket.minute == 0 and rows[0].bucket.second == 0


def test_a_signed_in_users_refusal_is_still_audited(committed_client, committed_database,  # type: ignore[no-untyped-def]
                                                     settings) -> None:
    with committed_database.session() as session:
        user = make_reviewer(session, "zhou").user
        session.commit()
        csrf = sign_in(committed_client, session, settings, user)
    assert csrf
    assert committed_client.post("/console/logout", data={"x": "1"}).status_code == 403
    with committed_database.session() as session:
        entries = list(session.scalars(select(AuditEntry)))
        assert [(e.action, e.outcome, e.actor) for e in entries] == [("csrf", "refused", "zhou")]
        assert session.scalar(select(func.count()).select_from(RefusalCount)) == 0
