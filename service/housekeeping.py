"""Periodic clean-up: unfinished uploads are discarded whole, spent stamps forgotten."""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread

from service import intake, pow
from service.db import Database
from service.models import utcnow

log = logging.getLogger("chuishao.housekeeping")


def purge_once(database: Database) -> tuple[int, int]:
    with database.session() as session:
        drafts = intake.purge_expired(session)
        stamps = pow.purge_spent(session, utcnow())
    return drafts, stamps


async def run_forever(database: Database, interval_seconds: float) -> None:
    while True:
        try:
            drafts, stamps = await anyio.to_thread.run_sync(purge_once, database)
            if drafts or stamps:
                log.info("discarded %d unfinished uploads, forgot %d stamps", drafts, stamps)
        except Exception:
            # A failed round is retried next time; the service keeps serving.
            log.exception("housekeeping failed")
        await anyio.sleep(interval_seconds)
