"""The console's second factor: RFC 6238 codes, the secret's text form and its QR code."""

from __future__ import annotations

import datetime as dt
import hmac
import os
import re
import unicodedata
from urllib.parse import quote

import segno
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

import crypto
from service.domain import qr
from service.platform.errors import ChuishaoError
from service.platform.i18n import N_

SECRET_SIZE = 20
DIGITS = 6
PERIOD = 30
# Accept the previous and the next code too: phones' clocks drift.
WINDOW = 1
ISSUER = "Chuishao"


class WrongCode(ChuishaoError):
    status = 400
    code = "wrong_code"
    message = N_("This code is not correct. Check that your phone's clock is right and enter "
                 "the newest code.")


def new_secret() -> bytes:
    return os.urandom(SECRET_SIZE)


def current_step(now: dt.datetime) -> int:
    return int(now.timestamp()) // PERIOD


def _totp(secret: bytes) -> TOTP:
    # RFC 6238 as every authenticator app implements it: HMAC-SHA1 (no collision concern).
    return TOTP(secret, DIGITS, SHA1(), PERIOD)  # noqa: S303


def code_at(secret: bytes, step: int) -> str:
    """The code for one time step (tests and the enrolment page's own checks)."""
    return _totp(secret).generate(step * PERIOD).decode("ascii")


def _normalize_code(code: object) -> bytes:
    if not isinstance(code, str):
        return b""
    text = re.sub(r"\s", "", unicodedata.normalize("NFKC", code))
    return text.encode("ascii") if re.fullmatch(r"[0-9]{6}", text) else b""


def matching_steps(secret: bytes, code: object, now: dt.datetime) -> list[int]:
    """The time steps within the window whose code equals ``code``.

    Every step of the window is computed and compared in constant time, whatever matches.
    """
    given = _normalize_code(code) or b"\x00" * DIGITS
    totp = _totp(secret)
    current = current_step(now)
    matched = []
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.generate(step * PERIOD), given):
            matched.append(step)
    return matched


def secret_text(secret: bytes) -> str:
    """Base32 without padding, as authenticator apps expect it (20 bytes -> 32 characters)."""
    return crypto.b32_encode(secret)


def uri(username: str, secret: bytes) -> str:
    label = quote(f"{ISSUER}:{username}", safe=":@")
    return (f"otpauth://totp/{label}?secret={secret_text(secret)}&issuer={ISSUER}"
            f"&algorithm=SHA1&digits={DIGITS}&period={PERIOD}")


def qr_svg_path(text: str) -> tuple[int, str]:
    """(size in modules, SVG path data of the dark modules), or (0, "") if ``text`` does not
    fit a QR symbol. The page draws it inline: no script, no image request, nothing the
    content security policy has to allow."""
    try:
        size, runs = qr.runs(text)
    except segno.DataOverflowError:
        return 0, ""
    return size, "".join(f"M{c} {r}h{n}v1h-{n}z" for r, c, n in runs)
