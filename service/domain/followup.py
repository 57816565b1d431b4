"""The reporter's way back in: a receipt-derived lookup secret, a short session, a feed.

The server stores only SHA-256(lookup_secret). A wrong receipt and an unknown case get the
same answer. The feed holds ciphertext (opened in the reporter's browser, or by the server for
the one no-JavaScript request) and plain-language events that never name a person.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service.domain import intake, notify, quota, sealing
from service.domain.models import (
    Case,
    CaseEvent,
    KeySlot,
    SealedItem,
    StoredFile,
    floor_time,
    utcnow,
)
from service.platform import localtime
from service.platform.errors import ChuishaoError, Malformed, TooLarge
from service.platform.i18n import N_
from service.platform.settings import Settings

# Kinds the reporter's case key opens and the reporter may see. Internal notes never.
# Not the identity: the reporter knows what they gave, and a receipt found by someone else
# should not hand it out (nor reveal a stand-in, see service/domain/intake.py).
REPORTER_VISIBLE = ("report", "file-meta", "message", "reply")
TOKEN_SALT = "chuishao.followup"  # noqa: S105 - an itsdangerous salt, not a secret


# A typed receipt that is not one (crypto.normalize_receipt): said the same way with and
# without JavaScript; a mistyped digit is told apart so the reporter looks for it.
RECEIPT_FORMAT = N_("A receipt has 21 digits (an older receipt has 20).")
RECEIPT_MISTYPED = N_("A digit of this receipt is mistyped, or two digits are swapped. "
                      "Check it against the receipt you wrote down.")


class ReceiptUnknown(ChuishaoError):
    status = 404
    code = "receipt_unknown"
    message = N_("No report matches this receipt. Check the digits and try again: a receipt "
                 "has 21 digits (an older one has 20).")


class SessionExpired(ChuishaoError):
    status = 401
    code = "followup_expired"
    message = N_("Your follow-up session has ended. Enter your receipt again.")


def find_case_by_secret(session: Session, lookup_secret: bytes) -> Case:
    digest = hashlib.sha256(lookup_secret).hexdigest()
    case = session.scalar(select(Case).where(Case.lookup_hash == digest))
    # compare_digest keeps the final check constant-time; the index lookup itself is a
    # hash of a 256-bit secret, so timing reveals nothing useful.
    if case is None or not case.ready or not hmac.compare_digest(case.lookup_hash, digest):
        raise ReceiptUnknown()
    return case


def issue_token(secret_key: str, case_id: str) -> str:
    # A random part, so two sessions opened in the same second are two quotas.
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT).dumps(
        {"case": case_id, "s": secrets.token_urlsafe(12)})


def case_from_token(session: Session, secret_key: str, token: str | None,
                    max_age: int) -> Case:
    if not token or len(token) > 500:
        raise SessionExpired()
    try:
        data = URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        raise SessionExpired() from None
    case_id = data.get("case") if isinstance(data, dict) else None
    case = session.get(Case, case_id) if isinstance(case_id, str) else None
    if case is None or not case.ready:
        raise SessionExpired()
    return case


def reporter_slot(session: Session, case: Case) -> KeySlot | None:
    return session.scalar(select(KeySlot).where(
        KeySlot.case_id == case.id, KeySlot.holder == "reporter", KeySlot.purpose == "case"))


SUBMISSION_KINDS = ("report", "identity", "file-meta")


def conversation_order(case: Case, items: list[SealedItem], settings: Settings
                       ) -> list[SealedItem]:
    """A case's items in the order shown to reporter and reviewers alike.

    Nothing stored says whether a reporter's item came before or after a reviewer's item of
    the same period (that would date it finer than the granularity), so a fixed rule orders
    them within a period: first the report and the files of the period the case was made
    (the report opens the case), then the reviewers' items, then the reporter's replies and
    later files. Each author's own items keep their order.
    """
    step = settings.time_granularity_seconds
    opened = floor_time(case.created_at, step)

    def key(item: SealedItem) -> tuple[dt.datetime, int, int, str]:
        period = floor_time(item.created_at, step)
        if item.author != "reporter":
            rank = 1
        elif period <= opened and item.kind in SUBMISSION_KINDS:
            rank = 0
        else:
            rank = 2
        return period, rank, item.position, item.id

    return sorted(items, key=key)


# Events a reporter's action makes; all others are made by reviewers (or the system for them).
REPORTER_EVENTS = ("reporter_activity", "reward_claimed")


def event_order(events: list[CaseEvent], settings: Settings) -> list[CaseEvent]:
    """A case's events in the same fixed order as its items: within a period, the case's
    receipt first, then what reviewers did (to the microsecond, in their order), then what
    the reporter did (known only to the period, so never placed among the reviewers')."""
    step = settings.time_granularity_seconds

    def key(event: CaseEvent) -> tuple[dt.datetime, int, dt.datetime, int]:
        rank = 0 if event.kind == "received" else 2 if event.kind in REPORTER_EVENTS else 1
        return floor_time(event.created_at, step), rank, event.created_at, event.id

    return sorted(events, key=key)


def visible_items(session: Session, case: Case, settings: Settings) -> list[SealedItem]:
    # Unfinished uploads are invisible; reviewers' evidence (site photos that may show staff)
    # is for the console, the reporter reads plain-language progress instead.
    incomplete_meta = select(StoredFile.meta_item_id).where(
        StoredFile.case_id == case.id,
        (StoredFile.complete.is_(False)) | (StoredFile.author != "reporter"))
    return conversation_order(case, list(session.scalars(
        select(SealedItem).where(SealedItem.case_id == case.id,
                                 SealedItem.kind.in_(REPORTER_VISIBLE),
                                 SealedItem.id.not_in(incomplete_meta)))), settings)


def visible_events(session: Session, settings: Settings, case: Case) -> list[CaseEvent]:
    return event_order(list(session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id,
                                CaseEvent.visible_to_reporter.is_(True)))), settings)


def feed_json(session: Session, settings: Settings, case: Case) -> dict[str, Any]:
    slot = reporter_slot(session, case)
    files = [f for f in intake.files_of(session, case) if f.complete and f.author == "reporter"]
    return {
        "case_id": case.id,
        "status": case.status,
        # Dates and times in the installation's zone (ISO 8601 with its offset).
        "created": localtime.local(case.created_at).date().isoformat(),
        "sealed_on_server": case.sealed_on_server,
        "slot": crypto.b64u_encode(slot.slot) if slot else None,
        # Which key opens it: the receipt's X25519 key (v1) or its X-Wing seed (v2).
        "slot_suite": slot.suite if slot else None,
        "items": [{"id": item.id, "kind": item.kind, "author": item.author,
                   # Rounded like every stored time of the reporter's (API.md §7), in the
                   # installation's zone.
                   "created": localtime.iso(intake.coarse_time(settings, item.created_at)),
                   "blob": crypto.b64u_encode(item.blob)}
                  for item in visible_items(session, case, settings)],
        "files": [{"id": f.id, "meta_item_id": f.meta_item_id, "stored_size": f.stored_size,
                   "chunk_count": f.chunk_count, "author": f.author} for f in files],
        "events": [{"kind": e.kind, "created": localtime.local(e.created_at).date().isoformat(),
                    "data": e.data} for e in visible_events(session, settings, case)],
    }


def note_reporter_activity(session: Session, settings: Settings, case: Case) -> None:
    # Coarsened like every other time the reporter causes, so it cannot be matched to a visit.
    # Never moved back: a reviewer's exact time already in this period stays, since replacing
    # it by the period's start would show the reporter acted after that reviewer.
    stamp = intake.coarse_time(settings)
    if case.updated_at < stamp:
        case.updated_at = stamp
    session.add(CaseEvent(case_id=case.id, kind="reporter_activity", visible_to_reporter=False,
                          data={}, created_at=stamp))
    session.flush()
    notify.reporter_activity(session, settings, case, stamp)


def add_reply(session: Session, settings: Settings, case: Case, data: Any) -> SealedItem:
    if not isinstance(data, dict) or data.get("kind") != "reply":
        raise Malformed("reply")
    item_id, blob = intake.new_item(session, data)
    item = SealedItem(id=item_id, case_id=case.id, kind="reply", author="reporter", blob=blob,
                      created_at=intake.coarse_time(settings))
    session.add(item)
    note_reporter_activity(session, settings, case)
    quota.check_case(session, settings, case.id)
    return item


def check_file_room(session: Session, settings: Settings, case: Case, adding: int = 1) -> None:
    if len(intake.files_of(session, case)) + adding > settings.max_files * 3:
        raise TooLarge(N_("At most {count} files can be attached."),
                       count=settings.max_files * 3)


def check_reply_room(session: Session, settings: Settings, case: Case, *, text: bool,
                     file_sizes: list[int]) -> None:
    """A reply sealed on the server, before its files are stripped: refused at once when the
    case has no room for it. Files count at the size they were sent (stripping only shrinks
    them), even one the reporter chose to leave out; each brings its file-meta item. The
    checks after the rows are written still run."""
    check_file_room(session, settings, case, adding=len(file_sizes))
    quota.check_case(session, settings, case.id, items=len(file_sizes) + int(text),
                     file_bytes=sum(sealing.stored_layout(size)[0] for size in file_sizes))


def add_file(session: Session, settings: Settings, case: Case, data: Any) -> StoredFile:
    """Register an evidence file sent after intake; it stays hidden until complete."""
    check_file_room(session, settings, case)
    now = utcnow()
    file = intake.register_file(session, settings, case, data, author="reporter",
                                created_at=intake.coarse_time(settings, now), now=now)
    quota.check_case(session, settings, case.id)
    return file
