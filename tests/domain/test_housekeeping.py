from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

import crypto
from service.domain import housekeeping, intake, pow
from service.domain.models import Case, SpentStamp, utcnow
from service.domain.sealing import PlainFile, seal_submission
from tests.factories import make_world


def test_purge_discards_stale_drafts_and_stamps(database, session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    channel = {"id": "acme", "recipients": [
        {"key_id": r.user.key_id, "public_key": crypto.b64u_encode(r.user.public_key)}
        for r in world.reviewers]}
    from service.domain.installation import get_installation

    installation = get_installation(session)
    channel["recipients"].append({"key_id": installation.recovery_key_id,
                                  "public_key": crypto.b64u_encode(installation.recovery_public_key)})
    sealed = seal_submission(channel, installation.salt, settings.receipt_iterations,
                             {"v": 1}, None, [PlainFile("a", "x", 3, lambda: [b"abc"])])
    envelope = intake.parse_envelope(sealed.envelope, settings)
    past = utcnow() - dt.timedelta(hours=settings.draft_hours + 1)
    intake.create_submission(session, settings, envelope, now=past)
    pow.spend(session, "ab" * 32, past, granularity_seconds=settings.time_granularity_seconds)
    session.commit()
    assert housekeeping.purge_once(database) == (1, 1)
    assert session.scalar(select(func.count()).select_from(Case)) == 0
    assert session.scalar(select(func.count()).select_from(SpentStamp)) == 0
