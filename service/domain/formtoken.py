"""One-time tokens for the no-JavaScript report form: a repeat post files nothing.

The form page carries a signed token (a random nonce and the issue time, rounded down to the
installation's time granularity). A report is filed only if its token is recorded as spent in
the same transaction, in the table of spent proof-of-work stamps and the same way: under its
SHA-256, with an expiry rounded up to the granularity, forgotten by housekeeping once the
token could no longer be used. A reload, a second tap or a post replayed from history meets
the spent token and is answered "already sent", never with a second case. Nothing about the
receipt is kept: the page that answered the first post was the only one to show it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service.domain import pow
from service.domain.models import SpentStamp, floor_time, utcnow
from service.platform import tokens
from service.platform.errors import InvalidInput
from service.platform.i18n import N_

SALT = "chuishao.form-token"
FIELD = "form_token"
# Long enough for a form kept open all day on a phone; a later post is refused, filled in again.
MAX_AGE = dt.timedelta(days=3)
MAX_LENGTH = 200


class FormTokenInvalid(InvalidInput):
    code = "form_token"
    message = N_("This form was open too long or is not from this site. Nothing was sent. "
                 "Check what you entered below and send again.")


class AlreadySent(Exception):
    """The token was spent: this form's report was filed already."""


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT,
                             signer_kwargs={"digest_method": hashlib.sha256})


def issue(secret_key: str, granularity_seconds: int, now: dt.datetime | None = None) -> str:
    issued = floor_time(now or utcnow(), granularity_seconds)
    return _serializer(secret_key).dumps([secrets.token_urlsafe(16), int(issued.timestamp())])


def check(secret_key: str, token: object, granularity_seconds: int,
          now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """A valid token's digest and the time it may be forgotten; FormTokenInvalid otherwise."""
    moment = now or utcnow()
    if not isinstance(token, str) or not 0 < len(token) <= MAX_LENGTH or not token.isascii():
        raise FormTokenInvalid()
    try:
        payload = _serializer(secret_key).loads(token)
    except BadData:
        raise FormTokenInvalid() from None
    if (not isinstance(payload, list) or len(payload) != 2 or not isinstance(payload[0], str)
            or type(payload[1]) is not int):
        raise FormTokenInvalid()
    try:
        issued = dt.datetime.fromtimestamp(payload[1], dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise FormTokenInvalid() from None
    # Issued rounded down, so it may be up to one granularity step "early"; never in the future.
    if issued - moment > pow.CLOCK_SKEW or moment - issued > MAX_AGE + dt.timedelta(
            seconds=granularity_seconds):
        raise FormTokenInvalid()
    expires = issued + MAX_AGE + dt.timedelta(seconds=granularity_seconds)
    return tokens.digest(token), expires


def is_spent(session: Session, digest: str) -> bool:
    return session.scalar(select(SpentStamp.digest).where(SpentStamp.digest == digest)) is not None


def spend(session: Session, digest: str, expires_at: dt.datetime, *,
          granularity_seconds: int) -> None:
    """Record the token as spent in this transaction; AlreadySent if it was.

    On PostgreSQL a concurrent post of the same token waits here for the first one's
    transaction and fails once it commits; on SQLite writers are serialized anyway.
    """
    try:
        pow.spend(session, digest, expires_at, granularity_seconds=granularity_seconds)
    except pow.PowInvalid:
        raise AlreadySent() from None


# ------------------------------------------------------------------ the receipt page (no-JS)

# The report's POST answers 303 to a GET page, so Back, Forward and reload never post the
# report again. The receipt reaches that page in a cookie sealed under a key only the server
# holds (never in a URL, never stored on the server), kept until the reporter says they
# wrote it down or RECEIPT_MINUTES pass: a reload shows the same receipt, not a new case.
RECEIPT_COOKIE = "receipt_page"
RECEIPT_PATH = "/report/sent"
RECEIPT_MINUTES = 30
# A cookie holds about 4 KB: file names are shortened for this page only.
_NAME_CHARS = 60
_MAX_NAMES = 20


def _page_key(secret_key: str) -> bytes:
    return crypto.token_key(secret_key.encode(), "no-js-receipt-page")


def _names(names: list[str]) -> list[str]:
    return [name[:_NAME_CHARS] for name in names[:_MAX_NAMES]]


def seal_page(secret_key: str, page: dict[str, Any], now: dt.datetime | None = None) -> str:
    """The receipt page's content for the cookie: the receipt, how it was sealed, names."""
    body = {"receipt": str(page["receipt"]), "sealed_on_server": str(page["sealed_on_server"]),
            "unclean": _names(list(page.get("unclean", []))),
            "left_out": _names(list(page.get("left_out", []))),
            "removed": [[name[:_NAME_CHARS], list(labels)]
                        for name, labels in list(page.get("removed", []))[:_MAX_NAMES]],
            "expires": int((now or utcnow()).timestamp()) + RECEIPT_MINUTES * 60}
    return crypto.seal_token(_page_key(secret_key), RECEIPT_COOKIE.encode(),
                             json.dumps(body, ensure_ascii=False).encode())


def open_page(secret_key: str, value: str | None,
              now: dt.datetime | None = None) -> dict[str, Any] | None:
    if not value or len(value) > 8000:
        return None
    try:
        body = json.loads(crypto.open_token(_page_key(secret_key), RECEIPT_COOKIE.encode(),
                                            value))
    except (crypto.OpenError, ValueError):
        return None
    if not isinstance(body, dict) or int(body.get("expires", 0)) < (now or utcnow()).timestamp():
        return None
    return body
