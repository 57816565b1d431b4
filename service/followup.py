"""The reporter's way back in: a receipt-derived lookup secret, a short session, a feed.

The server stores only SHA-256(lookup_secret). A wrong receipt and an unknown case get the
same answer. The feed holds ciphertext (opened in the reporter's browser, or by the server for
the one no-JavaScript request) and plain-language events that never name a person.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service import intake, notify, quota
from service.errors import ChuishaoError, InvalidInput, TooLarge
from service.i18n import N_
from service.models import Case, CaseEvent, KeySlot, SealedItem, StoredFile, utcnow
from service.settings import Settings

# Kinds the reporter's case key opens and the reporter may see. Internal notes never.
# Not the identity: the reporter knows what they gave, and a receipt found by someone else
# should not hand it out (nor reveal a stand-in, see service/intake.py).
REPORTER_VISIBLE = ("report", "file-meta", "message", "reply")
TOKEN_SALT = "chuishao.followup"  # noqa: S105 - an itsdangerous salt, not a secret


class ReceiptUnknown(ChuishaoError):
    status = 404
    code = "receipt_unknown"
    message = N_("No report matches this receipt. Check the 20 digits and try again.")


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


def visible_items(session: Session, case: Case) -> list[SealedItem]:
    # Unfinished uploads are invisible; reviewers' evidence (site photos that may show staff)
    # is for the console, the reporter reads plain-language progress instead.
    incomplete_meta = select(StoredFile.meta_item_id).where(
        StoredFile.case_id == case.id,
        (StoredFile.complete.is_(False)) | (StoredFile.author != "reporter"))
    return list(session.scalars(
        select(SealedItem).where(SealedItem.case_id == case.id,
                                 SealedItem.kind.in_(REPORTER_VISIBLE),
                                 SealedItem.id.not_in(incomplete_meta))
        .order_by(SealedItem.position, SealedItem.id)))


def visible_events(session: Session, case: Case) -> list[CaseEvent]:
    return list(session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id,
                                CaseEvent.visible_to_reporter.is_(True))
        .order_by(CaseEvent.created_at, CaseEvent.id)))


def feed_json(session: Session, case: Case) -> dict[str, Any]:
    slot = reporter_slot(session, case)
    files = [f for f in intake.files_of(session, case) if f.complete and f.author == "reporter"]
    return {
        "case_id": case.id,
        "status": case.status,
        "created": case.created_at.date().isoformat(),
        "sealed_on_server": case.sealed_on_server,
        "slot": crypto.b64u_encode(slot.slot) if slot else None,
        "items": [{"id": item.id, "kind": item.kind, "author": item.author,
                   "created": item.created_at.isoformat(),
                   "blob": crypto.b64u_encode(item.blob)}
                  for item in visible_items(session, case)],
        "files": [{"id": f.id, "meta_item_id": f.meta_item_id, "stored_size": f.stored_size,
                   "chunk_count": f.chunk_count, "author": f.author} for f in files],
        "events": [{"kind": e.kind, "created": e.created_at.date().isoformat(),
                    "data": e.data} for e in visible_events(session, case)],
    }


def note_reporter_activity(session: Session, settings: Settings, case: Case) -> None:
    # Coarsened like every other time the reporter causes, so it cannot be matched to a visit.
    case.updated_at = intake.coarse_time(settings)
    session.add(CaseEvent(case_id=case.id, kind="reporter_activity", visible_to_reporter=False,
                          data={}, created_at=case.updated_at))
    session.flush()
    notify.reporter_activity(session, settings, case, case.updated_at)


def add_reply(session: Session, settings: Settings, case: Case, data: Any) -> SealedItem:
    if not isinstance(data, dict) or data.get("kind") != "reply":
        raise InvalidInput(N_("The encrypted data is malformed ({what})."), what="reply")
    item_id = intake.parse_id(data.get("id"), "item id")
    blob = intake.parse_b64(data.get("blob"), "item")
    intake.check_item_blob(blob)
    if session.get(SealedItem, item_id) is not None:
        raise InvalidInput(N_("This message was already sent."), code="duplicate_item")
    item = SealedItem(id=item_id, case_id=case.id, kind="reply", author="reporter", blob=blob,
                      created_at=intake.coarse_time(settings))
    session.add(item)
    note_reporter_activity(session, settings, case)
    quota.check_case(session, settings, case.id)
    return item


def add_file(session: Session, settings: Settings, case: Case, data: Any) -> StoredFile:
    """Register an evidence file sent after intake; it stays hidden until complete."""
    if len(intake.files_of(session, case)) >= settings.max_files * 3:
        raise TooLarge(N_("At most {count} files can be attached."),
                       count=settings.max_files * 3)
    now = utcnow()
    file = intake.register_file(session, settings, case, data, author="reporter",
                                created_at=intake.coarse_time(settings, now), now=now)
    quota.check_case(session, settings, case.id)
    return file
