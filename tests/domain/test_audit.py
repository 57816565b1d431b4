from __future__ import annotations

from sqlalchemy import update

from service.domain import audit
from service.domain.models import AuditEntry
from tests.factories import make_reviewer


def test_chain_appends_and_verifies(session) -> None:  # type: ignore[no-untyped-def]
    alice = make_reviewer(session, "alice").user
    for i in range(5):
        audit.append(session, "case.view", actor=alice, target=f"case-{i}")
    audit.append(session, "login", outcome="refused", details={"reason": "totp"})
    report = audit.verify_chain(session)
    assert report.ok and report.count == 6
    assert report.head == audit.head(session)[1]


def test_any_change_is_detected(session) -> None:  # type: ignore[no-untyped-def]
    alice = make_reviewer(session, "alice").user
    for i in range(4):
        audit.append(session, "case.view", actor=alice, target=f"case-{i}")
    session.execute(update(AuditEntry).where(AuditEntry.id == 2).values(target="case-X"))
    session.expire_all()
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == 2 and report.count == 1


def test_removal_is_detected(session) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        audit.append(session, "x", target=str(i))
    session.query(AuditEntry).filter(AuditEntry.id == 2).delete()
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == 3


def test_refusal_survives_request_rollback(database, session) -> None:  # type: ignore[no-untyped-def]
    audit.record_refusal(database, "login", actor="mallory", details={"reason": "password"})
    entries = session.query(AuditEntry).all()
    assert [(e.action, e.outcome, e.details["claimed_actor"]) for e in entries] == [
        ("login", "refused", "mallory")]
