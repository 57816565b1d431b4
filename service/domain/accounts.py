"""Console accounts: creation from invitations, TOTP, sign-in, password change, administration.

The password never reaches the server. The browser derives ``auth_secret`` and ``kek`` from it
(docs/PROTOCOL.md section 9); the server keeps scrypt(auth_secret), the public key and the
private key wrapped with ``kek``. Nothing stored here opens a report.

Plain functions over a SQLAlchemy ``Session``; the views decide transactions and responses.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import os
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, intake, pow, refusals
from service.domain.models import (
    ROLES,
    Channel,
    ChannelRecipient,
    ChannelScope,
    ConsoleSession,
    Invitation,
    SignInFailure,
    User,
    utcnow,
)
from service.platform import offload
from service.platform.db import Database, run_after_request
from service.platform.errors import ChuishaoError, Forbidden, InvalidInput, NotFound
from service.platform.i18n import N_
from service.platform.settings import Settings

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MAX_DISPLAY_NAME = 100
SALT_SIZE = 16
TOTP_SECRET_SIZE = 20
TOTP_DIGITS = 6
TOTP_PERIOD = 30
# Accept the previous and the next code too: phones' clocks drift.
TOTP_WINDOW = 1
# Failed sign-ins are counted per claimed name in this many keyed buckets: the table stays
# small however many names are made up, and a made-up name looks like a real one.
SIGN_IN_BUCKETS = 1 << 16
ISSUER = "Chuishao"
RECIPIENT_ONLY = N_("Only an active reviewer can receive a channel's reports.")
# Stands in for a missing account's TOTP secret so every attempt does the same work.
_DUMMY_TOTP_SECRET = os.urandom(TOTP_SECRET_SIZE)


class LoginFailed(ChuishaoError):
    # One answer for every refusal (unknown user, wrong password, wrong or replayed code):
    # a caller learns nothing about which accounts exist.
    status = 401
    code = "login_failed"
    message = N_("Wrong username, password or code. After several failed attempts the "
                 "anti-abuse check before signing in takes longer.")


class WrongPassword(ChuishaoError):
    status = 403
    code = "wrong_password"
    message = N_("The current password is not correct.")


class WrongCode(ChuishaoError):
    status = 400
    code = "wrong_code"
    message = N_("This code is not correct. Check that your phone's clock is right and enter "
                 "the newest code.")


# ---------------------------------------------------------------------------- input


def normalize_username(text: object) -> str:
    """The canonical form of a username, or "" for anything that cannot be one (so that it
    is looked up like an unknown user and never reaches the database as odd text such as a
    NUL or a lone surrogate)."""
    if not isinstance(text, str):
        return ""
    name = unicodedata.normalize("NFKC", text).strip().lower()[:64]
    return name if USERNAME.fullmatch(name) else ""


def _b64(value: object, size: int) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput()
    try:
        data = crypto.b64u_decode(value)
    except (ValueError, TypeError):
        raise InvalidInput() from None
    if len(data) != size:
        raise InvalidInput()
    return data


def _clean_display_name(value: object) -> str:
    if not isinstance(value, str):
        return ""
    text = unicodedata.normalize("NFC", value)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()
    if len(text) > MAX_DISPLAY_NAME:
        raise InvalidInput(N_("The display name is too long."))
    return text


@dataclass(frozen=True)
class NewAccount:
    username: str
    display_name: str
    user_salt: bytes
    auth_secret: bytes
    public_key: bytes
    wrapped_private_key: bytes

    @classmethod
    def from_json(cls, data: Any) -> NewAccount:
        if not isinstance(data, dict):
            raise InvalidInput()
        username = normalize_username(data.get("username"))
        if not USERNAME.fullmatch(username):
            raise InvalidInput(N_("A username has 2 to 32 characters: lower-case letters, digits, "
                                  "dots, dashes and underscores, starting with a letter or "
                                  "digit."))
        wrapped = _b64(data.get("wrapped_private_key"), 77)
        if wrapped[0] != 0x01:
            raise InvalidInput()
        return cls(
            username=username,
            display_name=_clean_display_name(data.get("display_name")),
            user_salt=_b64(data.get("user_salt"), SALT_SIZE),
            auth_secret=_b64(data.get("auth_secret"), 32),
            public_key=_b64(data.get("public_key"), 32),
            wrapped_private_key=wrapped,
        )


@dataclass(frozen=True)
class NewPassword:
    old_auth_secret: bytes
    new_user_salt: bytes
    new_auth_secret: bytes
    new_wrapped_private_key: bytes

    @classmethod
    def from_json(cls, data: Any) -> NewPassword:
        if not isinstance(data, dict):
            raise InvalidInput()
        wrapped = _b64(data.get("new_wrapped_private_key"), 77)
        if wrapped[0] != 0x01:
            raise InvalidInput()
        return cls(
            old_auth_secret=_b64(data.get("old_auth_secret"), 32),
            new_user_salt=_b64(data.get("new_user_salt"), SALT_SIZE),
            new_auth_secret=_b64(data.get("new_auth_secret"), 32),
            new_wrapped_private_key=wrapped,
        )


# ---------------------------------------------------------------------------- TOTP


def totp_step(now: dt.datetime) -> int:
    return int(now.timestamp()) // TOTP_PERIOD


def _totp(secret: bytes) -> TOTP:
    # RFC 6238 as every authenticator app implements it: HMAC-SHA1 (no collision concern).
    return TOTP(secret, TOTP_DIGITS, SHA1(), TOTP_PERIOD)  # noqa: S303


def totp_code(secret: bytes, step: int) -> str:
    """The code for one time step (tests and the enrolment page's own checks)."""
    return _totp(secret).generate(step * TOTP_PERIOD).decode("ascii")


def _normalize_code(code: object) -> bytes:
    if not isinstance(code, str):
        return b""
    text = re.sub(r"\s", "", unicodedata.normalize("NFKC", code))
    return text.encode("ascii") if re.fullmatch(r"[0-9]{6}", text) else b""


def totp_matches(secret: bytes, code: object, now: dt.datetime) -> list[int]:
    """The time steps within the window whose code equals ``code``.

    Every step of the window is computed and compared in constant time, whatever matches.
    """
    given = _normalize_code(code) or b"\x00" * TOTP_DIGITS
    totp = _totp(secret)
    current = totp_step(now)
    matched = []
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate(step * TOTP_PERIOD), given):
            matched.append(step)
    return matched


def totp_secret_text(secret: bytes) -> str:
    """Base32 without padding, as authenticator apps expect it (20 bytes -> 32 characters)."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def totp_uri(username: str, secret: bytes) -> str:
    label = quote(f"{ISSUER}:{username}", safe=":@")
    return (f"otpauth://totp/{label}?secret={totp_secret_text(secret)}&issuer={ISSUER}"
            f"&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_PERIOD}")


# ---------------------------------------------------------------------------- invitations


def pending_user(session: Session, invitation: Invitation) -> User | None:
    """The account created from ``invitation`` that has not confirmed its first code yet."""
    if invitation.used_by is None:
        return None
    user = session.get(User, invitation.used_by)
    return user if user is not None and not user.totp_confirmed else None


def create_account(session: Session, settings: Settings, invitation: Invitation,
                   account: NewAccount, now: dt.datetime | None = None) -> User:
    """Store the new account (unusable until its first TOTP code is confirmed).

    Sending the form again for the same invitation (e.g. after losing the enrolment page)
    replaces the pending account rather than adding a second one.
    """
    now = now or utcnow()
    user = pending_user(session, invitation)
    taken = session.scalar(select(User).where(User.username == account.username))
    if taken is not None and taken is not user:
        raise InvalidInput(N_("This username is taken. Choose another one."))
    key_id = crypto.key_id(account.public_key).hex()
    clash = session.scalar(select(User).where(User.key_id == key_id))
    if clash is not None and clash is not user:
        raise InvalidInput()
    if user is None:
        user = User(created_at=now, active=True)
        session.add(user)
    user.username = account.username
    user.display_name = account.display_name
    user.roles = invitation.roles
    user.user_salt = account.user_salt
    user.auth_hash = crypto.hash_auth_secret(account.auth_secret, n=settings.scrypt_n)
    user.public_key = account.public_key
    user.key_id = key_id
    user.wrapped_private_key = account.wrapped_private_key
    user.totp_secret = os.urandom(TOTP_SECRET_SIZE)
    user.totp_confirmed = False
    user.totp_last_step = 0
    user.failed_logins = 0
    user.throttled_until = None
    user.password_changed_at = now
    session.flush()
    invitation.used_by = user.id
    session.flush()
    return user


def enrolment_proof(secret_key: str, invitation: Invitation, user: User) -> str:
    """Binds the TOTP enrolment page to the browser that created the account.

    It changes whenever the account is created again, so an old proof stops working.
    """
    message = f"chuishao.enrol\x00{invitation.id}\x00{user.id}\x00{user.auth_hash}".encode()
    return base64.urlsafe_b64encode(
        hmac.new(secret_key.encode(), message, hashlib.sha256).digest()).rstrip(b"=").decode()


def check_enrolment_proof(secret_key: str, invitation: Invitation, user: User,
                          given: str | None) -> bool:
    expected = enrolment_proof(secret_key, invitation, user)
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def confirm_totp(session: Session, invitation: Invitation, user: User, code: object,
                 now: dt.datetime | None = None) -> None:
    """First code right: the account becomes usable and the invitation is spent."""
    now = now or utcnow()
    assert user.totp_secret is not None
    matched = totp_matches(user.totp_secret, code, now)
    if not matched:
        raise WrongCode()
    user.totp_confirmed = True
    user.totp_last_step = max(matched)
    invitation.used_at = now
    invitation.used_by = user.id
    receives = invitation.channel_id is not None and receives_reports(user)
    if receives and invitation.channel_id is not None:
        add_recipient_row(session, invitation.channel_id, user.id, now)
    elif invitation.channel_id is not None:
        # Made before recipients followed roles: such an account gets scope, never keys.
        add_scope_row(session, invitation.channel_id, user.id, now)
    scope = [int(part) for part in invitation.scope.split() if part.isdigit()]
    for channel_id in scope:
        if session.get(Channel, channel_id) is not None:
            add_scope_row(session, channel_id, user.id, now)
    audit.append(session, "account.create", actor=user, target=f"invitation:{invitation.id}",
                 details={"roles": user.roles, "channel_id": invitation.channel_id,
                          "receives": receives, "scope": scope, "key_id": user.key_id},
                 now=now)


# ---------------------------------------------------------------------------- sign-in


def fake_salt(secret_key: str, username: str) -> bytes:
    # Deterministic, so asking twice about an unknown name gives the same answer as a real
    # account would; keyed, so nobody can tell it from a real random salt.
    mac = hmac.new(secret_key.encode(), b"chuishao.prelogin-salt\x00" + username.encode(),
                   hashlib.sha256)
    return mac.digest()[:SALT_SIZE]


def prelogin(session: Session, settings: Settings, secret_key: str,
             username: object, now: dt.datetime | None = None) -> dict[str, Any]:
    """Salt and iterations for the password, and the sign-in's proof-of-work challenge."""
    name = normalize_username(username)
    user = session.scalar(select(User).where(User.username == name)) if name else None
    salt = user.user_salt if user is not None else fake_salt(secret_key, name)
    failures = recent_failures(session, settings, secret_key, name, now)
    challenge = pow.ProofOfWork(secret_key, login_difficulty(settings, failures.count)).issue()
    return {"salt": crypto.b64u_encode(salt), "iterations": settings.password_iterations,
            "pow": challenge}


# ---------------------------------------------------------------------------- failures
# Sign-in never pauses an account (a pause let ~4 requests an hour keep its owner out for
# good). Failures make the next attempt's stamp dearer instead: the attacker pays for every
# guess, and the owner, who pays once, always gets in.


@dataclass(frozen=True)
class RecentFailures:
    count: int
    last_at: dt.datetime | None


def failure_bucket(secret_key: str, username: str) -> str:
    mac = hmac.new(secret_key.encode(), b"chuishao.sign-in-failures\x00" + username.encode(),
                   hashlib.sha256).digest()
    return f"{int.from_bytes(mac[:4], 'big') % SIGN_IN_BUCKETS:04x}"


def recent_failures(session: Session, settings: Settings, secret_key: str, username: str,
                    now: dt.datetime | None = None) -> RecentFailures:
    now = now or utcnow()
    row = session.get(SignInFailure, failure_bucket(secret_key, username))
    window = dt.timedelta(hours=settings.sign_in_failure_hours)
    if row is None or row.last_at <= now - window:
        return RecentFailures(0, None)
    return RecentFailures(row.count, row.last_at)


def login_difficulty(settings: Settings, failures: int) -> int:
    """Base bits, plus one per recent failure beyond the free ones, up to a ceiling: every
    failure doubles the next attempt's work, and the owner's wait stays bounded."""
    extra = min(settings.login_pow_max_extra, max(0, failures - settings.login_pow_free_failures))
    return settings.login_pow_difficulty + extra


def note_failure(session: Session, settings: Settings, secret_key: str, username: str,
                 now: dt.datetime | None = None) -> int:
    """Count one more failure for ``username`` (real or not); returns the recent count."""
    now = now or utcnow()
    key = failure_bucket(secret_key, username)
    cutoff = now - dt.timedelta(hours=settings.sign_in_failure_hours)
    for _attempt in range(4):
        # One statement, so two failures at once both count; an old count starts over.
        changed = session.execute(
            update(SignInFailure).where(SignInFailure.name_hash == key)
            .values(count=case((SignInFailure.last_at <= cutoff, 1),
                               else_=SignInFailure.count + 1), last_at=now)
            .execution_options(synchronize_session=False))
        if int(getattr(changed, "rowcount", 0) or 0):
            return int(session.scalar(select(SignInFailure.count)
                                      .where(SignInFailure.name_hash == key)) or 0)
        try:
            with session.begin_nested():
                session.execute(insert(SignInFailure).values(name_hash=key, count=1,
                                                             last_at=now))
            return 1
        except IntegrityError:
            continue
    raise RuntimeError("sign-in failure counter is too busy")


def forget_failures(session: Session, settings: Settings, secret_key: str, username: str,
                    now: dt.datetime | None = None) -> RecentFailures:
    """After a successful sign-in: what the owner should be told, then a clean slate."""
    seen = recent_failures(session, settings, secret_key, username, now)
    session.execute(delete(SignInFailure)
                    .where(SignInFailure.name_hash == failure_bucket(secret_key, username)))
    return seen


def failures_by_user(session: Session, settings: Settings, secret_key: str,
                     users: Iterable[User], now: dt.datetime | None = None
                     ) -> dict[int, RecentFailures]:
    """For the administrators' list: recent failed sign-ins per account."""
    return {user.id: recent_failures(session, settings, secret_key, user.username, now)
            for user in users}


_DUMMY_LOCK = threading.Lock()


def _dummy_hash(n: int) -> str:
    # One value per process: a sign-in's scrypt is computed before the database gate and
    # looked up again in the view by (secret, hash), so the dummy must never differ.
    with _DUMMY_LOCK:
        return _make_dummy_hash(n)


@functools.lru_cache(maxsize=4)
def _make_dummy_hash(n: int) -> str:
    return crypto.hash_auth_secret(os.urandom(32), n=n)


def _login_state(user: User | None, now: dt.datetime) -> tuple[bool, bool]:
    """(usable, throttled) of an account for a sign-in attempt at ``now``."""
    usable = user is not None and user.active and user.totp_confirmed
    throttled = bool(usable and user is not None and user.throttled_until is not None
                     and user.throttled_until > now)
    return usable, throttled


def login_hash(user: User | None, settings: Settings, now: dt.datetime) -> str:
    """The stored hash a sign-in attempt is checked against: the account's own, or a dummy
    one (same cost) when the account is unknown, unusable or paused."""
    usable, throttled = _login_state(user, now)
    if usable and not throttled and user is not None:
        return user.auth_hash
    return _dummy_hash(settings.scrypt_n)


def login_secret(auth_secret: object) -> bytes:
    try:
        return _b64(auth_secret, 32)
    except InvalidInput:
        return b""


async def prepare_login(database: Database, settings: Settings, username: object,
                        auth_secret: object) -> None:
    """The attempt's scrypt, in the password lane and before the request takes its database
    gate: a flood of sign-ins (made-up names need no stamp) then holds no write lock and
    uses one thread, not the event loop. ``check_login`` finds the result. A cheap refusal
    the view makes before the scrypt (a missing stamp, say) belongs here too, before it, or
    the flood still fills the lane."""
    name = normalize_username(username)
    now = utcnow()

    def read(session: Session) -> str:
        user = session.scalar(select(User).where(User.username == name)) if name else None
        return login_hash(user, settings, now)

    stored = await database.read(read)
    await offload.run("password", crypto.verify_auth_secret, login_secret(auth_secret),
                      stored, remember=True)


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    reason: str  # "" when the attempt succeeded

    @property
    def ok(self) -> bool:
        return not self.reason


def check_login(session: Session, settings: Settings, username: object, auth_secret: object,
                code: object, now: dt.datetime | None = None) -> LoginResult:
    """Check one sign-in attempt. On success the code's time step is spent.

    The same work is done for every attempt (one scrypt, one window of TOTP codes), whether
    the account exists or the password is right, so timing tells nothing either. The caller
    has checked the attempt's proof-of-work stamp first.
    """
    now = now or utcnow()
    name = normalize_username(username)
    user = session.scalar(select(User).where(User.username == name)) if name else None
    secret = login_secret(auth_secret)
    usable, throttled = _login_state(user, now)
    checked = usable and not throttled
    stored = login_hash(user, settings, now)
    # Usually done already, off the event loop and before the database gate (prepare_login).
    secret_ok = offload.prepared(crypto.verify_auth_secret, secret, stored) and bool(secret)
    totp_secret = (user.totp_secret if checked and user is not None and user.totp_secret
                   else _DUMMY_TOTP_SECRET)
    matched = totp_matches(totp_secret, code, now)

    if user is None:
        return LoginResult(None, "unknown_user")
    if not user.active:
        return LoginResult(user, "inactive")
    if not user.totp_confirmed:
        return LoginResult(user, "not_enrolled")
    if not secret_ok:
        return LoginResult(user, "wrong_password")
    if not matched:
        return LoginResult(user, "wrong_code")
    fresh = [step for step in matched if step > user.totp_last_step]
    if not fresh:
        return LoginResult(user, "replayed_code")
    step = max(fresh)
    # Conditional update: two requests racing with one code cannot both win.
    result = session.execute(
        update(User).where(User.id == user.id, User.totp_last_step < step)
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False))
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return LoginResult(user, "replayed_code")
    session.refresh(user)
    return LoginResult(user, "")


def record_failure(database: Database, settings: Settings, secret_key: str, action: str, *,
                   user_id: int | None, claimed: str, reason: str,
                   now: dt.datetime | None = None) -> None:
    """The failure counter and the record of a refused attempt, in a transaction of their
    own: the request's transaction is rolled back with the refusal.

    Every refusal counts against the claimed name, whether an account has it or not (so the
    price of the next stamp does not tell). A refusal for a name without an account names
    nobody on the staff and is only counted (service/domain/refusals.py); one for an account is
    an audit entry.
    """
    now = now or utcnow()

    def write(session: Session) -> None:
        failures = note_failure(session, settings, secret_key, claimed, now)
        user = session.get(User, user_id) if user_id is not None else None
        if user is None:
            refusals.count(session, f"{action}.{reason}", now)
            return
        audit.append(session, action, actor=user, target=action, outcome="refused",
                     details={"reason": reason, "recent_failures": failures}, now=now)

    # After the request's own transaction: on SQLite it holds the write lock until then.
    run_after_request(database, write)


# ---------------------------------------------------------------------------- sessions


def own_sessions(session: Session, user: User, now: dt.datetime | None = None,
                 idle_minutes: int | None = None) -> list[ConsoleSession]:
    now = now or utcnow()
    rows = session.scalars(
        select(ConsoleSession)
        .where(ConsoleSession.user_id == user.id, ConsoleSession.revoked_at.is_(None),
               ConsoleSession.expires_at > now)
        .order_by(ConsoleSession.created_at.desc()))
    if idle_minutes is None:
        return list(rows)
    limit = dt.timedelta(minutes=idle_minutes)
    return [row for row in rows if row.last_seen_at + limit > now]


def revoke_own_session(session: Session, user: User, session_id: str,
                       now: dt.datetime | None = None) -> None:
    row = session.get(ConsoleSession, session_id) if len(session_id) == 64 else None
    if row is None or row.user_id != user.id:
        raise NotFound()
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
    audit.append(session, "session.revoke", actor=user, target=f"session:{session_id[:12]}")


def revoke_others(session: Session, user_id: int, keep: str | None,
                  now: dt.datetime | None = None) -> int:
    query = update(ConsoleSession).where(ConsoleSession.user_id == user_id,
                                         ConsoleSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(ConsoleSession.id != keep)
    result = session.execute(query.values(revoked_at=now or utcnow())
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------- password


def change_password(session: Session, settings: Settings, user: User, new: NewPassword,
                    keep_session: str | None, now: dt.datetime | None = None) -> bool:
    """Replace salt, hash and wrapped key; the user's other sessions end.

    Returns False (and changes nothing) when the current password is wrong; the caller
    records the refusal (it counts like a failed sign-in).
    """
    now = now or utcnow()
    if not crypto.verify_auth_secret(new.old_auth_secret, user.auth_hash):
        return False
    user.user_salt = new.new_user_salt
    user.auth_hash = crypto.hash_auth_secret(new.new_auth_secret, n=settings.scrypt_n)
    user.wrapped_private_key = new.new_wrapped_private_key
    user.password_changed_at = now
    ended = revoke_others(session, user.id, keep_session, now)
    audit.append(session, "password.change", actor=user, target=f"user:{user.id}",
                 details={"sessions_ended": ended}, now=now)
    return True


# ---------------------------------------------------------------------------- administration


def parse_roles(values: Iterable[str]) -> list[str]:
    roles = sorted({value for value in values if value})
    if not roles or any(role not in ROLES for role in roles):
        raise InvalidInput(N_("Choose at least one known role."))
    return roles


@dataclass(frozen=True)
class UserRow:
    user: User
    receives: list[Channel]  # channels whose new reports are sealed to this user's key
    scope: list[Channel]  # channels whose plaintext records this user may see

    @property
    def may_receive(self) -> bool:
        return receives_reports(self.user)


def receives_reports(user: User) -> bool:
    """Whether new reports may be sealed to ``user``: an active, enrolled reviewer only."""
    return bool(user.totp_confirmed) and intake.sealed_to(user)


def list_users(session: Session) -> list[UserRow]:
    users = list(session.scalars(select(User).order_by(User.username)))
    receives: dict[int, list[Channel]] = {}
    for user_id, channel in session.execute(
            select(ChannelRecipient.user_id, Channel)
            .join(Channel, Channel.id == ChannelRecipient.channel_id).order_by(Channel.id)):
        receives.setdefault(user_id, []).append(channel)
    scope: dict[int, list[Channel]] = {}
    for user_id, channel in session.execute(
            select(ChannelScope.user_id, Channel)
            .join(Channel, Channel.id == ChannelScope.channel_id).order_by(Channel.id)):
        scope.setdefault(user_id, []).append(channel)
    # What intake really does: a leftover row of someone it does not seal to is not shown as
    # receiving.
    return [UserRow(user, receives.get(user.id, []) if intake.sealed_to(user) else [],
                    scope.get(user.id, [])) for user in users]


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound()
    return user


def set_roles(session: Session, actor: User, user: User, roles: list[str]) -> None:
    require_admin_target(actor, user)
    joined = " ".join(parse_roles(roles))
    before = user.roles
    user.roles = joined
    audit.append(session, "admin.roles", actor=actor, target=f"user:{user.id}",
                 details={"username": user.username, "before": before, "after": joined})
    if not receives_reports(user):
        drop_recipient_rows(session, actor, user, "role")


def set_active(session: Session, actor: User, user: User, active: bool) -> None:
    require_admin_target(actor, user)
    user.active = active
    ended = 0 if active else revoke_others(session, user.id, None)
    audit.append(session, "admin.reactivate" if active else "admin.deactivate", actor=actor,
                 target=f"user:{user.id}",
                 details={"username": user.username, "sessions_ended": ended})
    if not active:
        drop_recipient_rows(session, actor, user, "deactivated")


def drop_recipient_rows(session: Session, actor: User | None, user: User, reason: str,
                        now: dt.datetime | None = None) -> list[int]:
    """``user`` may no longer receive new reports: every recipient row goes, in the caller's
    transaction, one audit entry each. The channels stay in the user's scope (plaintext
    records, no keys), so an auditor who was a reviewer keeps their work; the admin sees it
    and may take it away. Cases already received stay readable with the slots held."""
    now = now or utcnow()
    rows = list(session.scalars(select(ChannelRecipient)
                                .where(ChannelRecipient.user_id == user.id)
                                .order_by(ChannelRecipient.channel_id)))
    for row in rows:
        channel_id = row.channel_id
        session.delete(row)
        session.flush()
        add_scope_row(session, channel_id, user.id, now)
        audit.append(session, "admin.recipient.remove", actor=actor,
                     target=f"channel:{channel_id}", now=now,
                     details={"username": user.username, "key_id": user.key_id,
                              "reason": reason, "kept_in_scope": True})
    return [row.channel_id for row in rows]


def get_channel(session: Session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise NotFound()
    return channel


@dataclass(frozen=True)
class ChannelRow:
    channel: Channel
    recipients: list[User]  # new reports are sealed to these keys
    scope_only: list[User]  # see the channel's records, receive no reports


def channel_rows(session: Session) -> list[ChannelRow]:
    channels = list(session.scalars(select(Channel).order_by(Channel.kind, Channel.id)))
    recipients: dict[int, list[User]] = {}
    scope: dict[int, list[User]] = {}
    for channel_id, user in session.execute(
            select(ChannelRecipient.channel_id, User)
            .join(User, User.id == ChannelRecipient.user_id).order_by(User.username)):
        # As intake sees it: a leftover row of someone it does not seal to receives nothing.
        (recipients if intake.sealed_to(user) else scope).setdefault(channel_id, []).append(user)
    for channel_id, user in session.execute(
            select(ChannelScope.channel_id, User)
            .join(User, User.id == ChannelScope.user_id).order_by(User.username)):
        if user not in recipients.get(channel_id, []) + scope.get(channel_id, []):
            scope.setdefault(channel_id, []).append(user)
    return [ChannelRow(channel, recipients.get(channel.id, []), scope.get(channel.id, []))
            for channel in channels]


def add_recipient_row(session: Session, channel_id: int, user_id: int,
                      now: dt.datetime | None = None) -> bool:
    if session.get(ChannelRecipient, (channel_id, user_id)) is not None:
        return False
    session.add(ChannelRecipient(channel_id=channel_id, user_id=user_id,
                                 created_at=now or utcnow()))
    session.flush()
    return True


def add_scope_row(session: Session, channel_id: int, user_id: int,
                  now: dt.datetime | None = None) -> bool:
    if session.get(ChannelScope, (channel_id, user_id)) is not None:
        return False
    session.add(ChannelScope(channel_id=channel_id, user_id=user_id,
                             created_at=now or utcnow()))
    session.flush()
    return True


def add_scope(session: Session, actor: User, user: User, channel: Channel) -> None:
    """Let ``user`` see and act on ``channel``'s plaintext records (any role; no keys)."""
    added = add_scope_row(session, channel.id, user.id)
    audit.append(session, "admin.scope.add", actor=actor, target=f"user:{user.id}",
                 details={"username": user.username, "channel_id": channel.id,
                          "slug": channel.slug, "added": added})


def remove_scope_row(session: Session, channel_id: int, user_id: int) -> bool:
    row = session.get(ChannelScope, (channel_id, user_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def remove_scope(session: Session, actor: User, user: User, channel: Channel) -> None:
    if not remove_scope_row(session, channel.id, user.id):
        raise NotFound()
    audit.append(session, "admin.scope.remove", actor=actor, target=f"user:{user.id}",
                 details={"username": user.username, "channel_id": channel.id,
                          "slug": channel.slug})


def add_recipient(session: Session, actor: User, channel: Channel, user: User) -> None:
    # Only a usable reviewer account can receive key slots: its key pair is confirmed.
    if not receives_reports(user):
        raise InvalidInput(RECIPIENT_ONLY)
    added = add_recipient_row(session, channel.id, user.id)
    audit.append(session, "admin.recipient.add", actor=actor, target=f"channel:{channel.id}",
                 details={"username": user.username, "key_id": user.key_id, "added": added})


def remove_recipient(session: Session, actor: User, channel: Channel, user: User) -> None:
    row = session.get(ChannelRecipient, (channel.id, user.id))
    if row is None:
        raise NotFound()
    session.delete(row)
    session.flush()
    audit.append(session, "admin.recipient.remove", actor=actor, target=f"channel:{channel.id}",
                 details={"username": user.username, "key_id": user.key_id})


def set_channel_active(session: Session, actor: User, channel: Channel, active: bool) -> None:
    channel.active = active
    audit.append(session, "admin.channel.reactivate" if active else "admin.channel.deactivate",
                 actor=actor, target=f"channel:{channel.id}", details={"slug": channel.slug})


def open_invitations(session: Session, now: dt.datetime | None = None) -> list[Invitation]:
    now = now or utcnow()
    return list(session.scalars(select(Invitation)
                                .where(Invitation.used_at.is_(None), Invitation.expires_at > now)
                                .order_by(Invitation.created_at.desc())))


def require_admin_target(actor: User, user: User) -> None:
    # An administrator cannot lock themselves out (nor leave the installation without an
    # administrator): another administrator must do it.
    if actor.id == user.id:
        raise Forbidden(N_("You cannot change your own account here."))


# ---------------------------------------------------------------------------- QR code
# The enrolment page draws the otpauth:// link as a QR code on the server (an inline SVG),
# so the page needs neither third-party JavaScript nor a new dependency. Byte mode, error
# correction level M, versions 1 to 10 (up to 213 bytes), ISO/IEC 18004.

# version -> (EC codewords per block, [(blocks, data codewords per block), ...]) at level M
_QR_BLOCKS = {
    1: (10, [(1, 16)]), 2: (16, [(1, 28)]), 3: (26, [(1, 44)]), 4: (18, [(2, 32)]),
    5: (24, [(2, 43)]), 6: (16, [(4, 27)]), 7: (18, [(4, 31)]),
    8: (22, [(2, 38), (2, 39)]), 9: (22, [(3, 36), (2, 37)]), 10: (26, [(4, 43), (1, 44)]),
}
_QR_ALIGN = {1: [], 2: [6, 18], 3: [6, 22], 4: [6, 26], 5: [6, 30], 6: [6, 34],
             7: [6, 22, 38], 8: [6, 24, 42], 9: [6, 26, 46], 10: [6, 28, 50]}


def _qr_mask(choice: int, r: int, c: int) -> bool:
    """The eight data-mask conditions (True means: flip this module)."""
    if choice == 0:
        return (r + c) % 2 == 0
    if choice == 1:
        return r % 2 == 0
    if choice == 2:
        return c % 3 == 0
    if choice == 3:
        return (r + c) % 3 == 0
    if choice == 4:
        return (r // 2 + c // 3) % 2 == 0
    if choice == 5:
        return (r * c) % 2 + (r * c) % 3 == 0
    if choice == 6:
        return ((r * c) % 2 + (r * c) % 3) % 2 == 0
    return ((r + c) % 2 + (r * c) % 3) % 2 == 0


def _gf_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    value = 1
    for i in range(255):
        exp[i] = value
        log[value] = i
        value <<= 1
        if value & 0x100:
            value ^= 0x11D
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return exp, log


_GF_EXP, _GF_LOG = _gf_tables()


def _gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _GF_EXP[_GF_LOG[a] + _GF_LOG[b]]


def _rs_remainder(data: list[int], degree: int) -> list[int]:
    generator = [1]
    for i in range(degree):
        nxt = [0] * (len(generator) + 1)
        for j, coef in enumerate(generator):
            nxt[j] ^= coef
            nxt[j + 1] ^= _gf_mul(coef, _GF_EXP[i])
        generator = nxt
    remainder = [0] * degree
    for byte in data:
        factor = byte ^ remainder[0]
        remainder = remainder[1:] + [0]
        for j in range(degree):
            remainder[j] ^= _gf_mul(generator[j + 1], factor)
    return remainder


def _bch(value: int, poly: int, bits: int) -> int:
    shifted = value << bits
    top = poly.bit_length() - 1
    for shift in range(shifted.bit_length() - 1, top - 1, -1):
        if shifted >> shift & 1:
            shifted ^= poly << (shift - top)
    return (value << bits) | shifted


def _qr_codewords(data: bytes, version: int) -> list[int]:
    ec, groups = _QR_BLOCKS[version]
    capacity = sum(count * size for count, size in groups)
    bits = [0, 1, 0, 0]  # byte mode
    count_bits = 8 if version < 10 else 16
    bits += [len(data) >> i & 1 for i in range(count_bits - 1, -1, -1)]
    for byte in data:
        bits += [byte >> i & 1 for i in range(7, -1, -1)]
    bits += [0] * min(4, capacity * 8 - len(bits))
    bits += [0] * (-len(bits) % 8)
    words = [int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8)]
    pad = [0xEC, 0x11]
    words += [pad[i % 2] for i in range(capacity - len(words))]
    blocks, position = [], 0
    for count, size in groups:
        for _ in range(count):
            blocks.append(words[position:position + size])
            position += size
    out = [block[i] for i in range(max(map(len, blocks))) for block in blocks if i < len(block)]
    ecc = [_rs_remainder(block, ec) for block in blocks]
    out += [block[i] for i in range(ec) for block in ecc]
    return out


def _qr_penalty(grid: list[list[bool]]) -> int:
    size = len(grid)
    score = 0
    lines = grid + [list(col) for col in zip(*grid, strict=True)]
    for line in lines:
        run, last = 0, None
        for cell in line:
            run = run + 1 if cell == last else 1
            last = cell
            if run == 5:
                score += 3
            elif run > 5:
                score += 1
        text = "".join("1" if cell else "0" for cell in line)
        for pattern in ("10111010000", "00001011101"):
            score += 40 * sum(1 for i in range(len(text) - 10) if text[i:i + 11] == pattern)
    for r in range(size - 1):
        for c in range(size - 1):
            if grid[r][c] == grid[r][c + 1] == grid[r + 1][c] == grid[r + 1][c + 1]:
                score += 3
    dark = sum(map(sum, grid))
    score += 10 * (abs(dark * 20 - size * size * 10) // (size * size))
    return score


def qr_matrix(text: str, mask: int | None = None) -> list[list[bool]]:
    data = text.encode("utf-8")
    version = next((v for v, (_ec, groups) in _QR_BLOCKS.items()
                    if 4 + (8 if v < 10 else 16) + 8 * len(data)
                    <= 8 * sum(count * size for count, size in groups)), None)
    if version is None:
        raise ValueError("too long for a QR code up to version 10")
    size = 17 + 4 * version
    grid = [[False] * size for _ in range(size)]
    reserved = [[False] * size for _ in range(size)]

    def put(r: int, c: int, dark: bool) -> None:
        grid[r][c] = dark
        reserved[r][c] = True

    for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):
        for r in range(-1, 8):
            for c in range(-1, 8):
                rr, cc = top + r, left + c
                if 0 <= rr < size and 0 <= cc < size:
                    ring = max(abs(r - 3), abs(c - 3))
                    put(rr, cc, ring != 2 and ring != 4)
    for i in range(8, size - 8):
        put(6, i, i % 2 == 0)
        put(i, 6, i % 2 == 0)
    centres = _QR_ALIGN[version]
    last = len(centres) - 1
    for i, r in enumerate(centres):
        for j, c in enumerate(centres):
            if (i, j) in ((0, 0), (0, last), (last, 0)):
                continue  # those corners hold the finder patterns
            for dr in range(-2, 3):
                for dc in range(-2, 3):
                    put(r + dr, c + dc, max(abs(dr), abs(dc)) != 1)
    put(size - 8, 8, True)  # the dark module
    for i in range(9):  # format areas, filled in later
        for r, c in ((8, i), (i, 8)):
            reserved[r][c] = True
    for i in range(8):
        reserved[8][size - 1 - i] = True
        reserved[size - 1 - i][8] = True
    version_bits = _bch(version, 0x1F25, 12) if version >= 7 else 0
    if version >= 7:
        for i in range(18):
            dark = bool(version_bits >> i & 1)
            put(size - 11 + i % 3, i // 3, dark)
            put(i // 3, size - 11 + i % 3, dark)

    bits = [word >> i & 1 for word in _qr_codewords(data, version) for i in range(7, -1, -1)]
    position = 0
    column = size - 1
    upward = True
    while column > 0:
        if column == 6:
            column -= 1
        rows = range(size - 1, -1, -1) if upward else range(size)
        for r in rows:
            for c in (column, column - 1):
                if not reserved[r][c]:
                    grid[r][c] = bool(bits[position]) if position < len(bits) else False
                    position += 1
        upward = not upward
        column -= 2

    def masked(choice: int) -> list[list[bool]]:
        out = [row[:] for row in grid]
        for r in range(size):
            for c in range(size):
                if not reserved[r][c] and _qr_mask(choice, r, c):
                    out[r][c] = not out[r][c]
        fmt = _bch(choice, 0x537, 10) ^ 0x5412  # level M is 0b00
        for i in range(15):
            dark = bool(fmt >> i & 1)
            # around the top-left finder (skipping the timing pattern at row and column 6)
            if i < 6:
                out[i][8] = dark
            elif i < 8:
                out[i + 1][8] = dark
            elif i == 8:
                out[8][7] = dark
            else:
                out[8][14 - i] = dark
            # split between the other two finders
            if i < 8:
                out[8][size - 1 - i] = dark
            else:
                out[size - 15 + i][8] = dark
        return out

    if mask is not None:
        return masked(mask)
    candidates = [masked(choice) for choice in range(8)]
    return min(candidates, key=_qr_penalty)


def qr_svg_paths(text: str) -> tuple[int, str]:
    """(size in modules, SVG path data with one unit square per dark module)."""
    try:
        grid = qr_matrix(text)
    except ValueError:
        return 0, ""
    parts = [f"M{c} {r}h1v1h-1z" for r, row in enumerate(grid) for c, dark in enumerate(row)
             if dark]
    return len(grid), "".join(parts)
