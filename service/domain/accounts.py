"""Console accounts: input, sign-in, console sessions, password change, users and roles.

The password never reaches the server. The browser derives ``auth_secret`` and ``kek`` from it
(docs/PROTOCOL.md section 9); the server keeps scrypt(auth_secret), the public key and the
private key wrapped with ``kek``. Nothing stored here opens a report.

An account is made from an invitation (service/domain/invitations.py); its second factor is
service/domain/totp.py; what it receives and sees, service/domain/recipients.py; its X-Wing
pair (protocol v2), service/domain/xwing_keys.py.

Plain functions over a SQLAlchemy ``Session``; the views decide transactions and responses.
Longer than 500 lines because input, sign-in, sessions and password change work on the one
account row and share the failure counting; apart, they would import each other.
"""

from __future__ import annotations

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

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, pow, recipients, refusals, totp
from service.domain.models import ROLES, ConsoleSession, SignInFailure, User, utcnow
from service.platform import offload
from service.platform.db import Database, run_after_request
from service.platform.errors import ChuishaoError, Forbidden, InvalidInput, NotFound
from service.platform.i18n import N_
from service.platform.settings import Settings

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MAX_DISPLAY_NAME = 100
SALT_SIZE = 16
# Failed sign-ins are counted per claimed name in this many keyed buckets: the table stays
# small however many names are made up, and a made-up name looks like a real one.
SIGN_IN_BUCKETS = 1 << 16
# Stands in for a missing account's TOTP secret so every attempt does the same work.
_DUMMY_TOTP_SECRET = totp.new_secret()


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


# ---------------------------------------------------------------------------- input


def normalize_username(text: object) -> str:
    """The canonical form of a username, or "" for anything that cannot be one (so that it
    is looked up like an unknown user and never reaches the database as odd text such as a
    NUL or a lone surrogate)."""
    if not isinstance(text, str):
        return ""
    name = unicodedata.normalize("NFKC", text).strip().lower()[:64]
    return name if USERNAME.fullmatch(name) else ""


def b64_field(value: object, size: int) -> bytes:
    """A base64url field of exactly ``size`` bytes, or InvalidInput."""
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
        wrapped = b64_field(data.get("wrapped_private_key"), 77)
        if wrapped[0] != 0x01:
            raise InvalidInput()
        return cls(
            username=username,
            display_name=_clean_display_name(data.get("display_name")),
            user_salt=b64_field(data.get("user_salt"), SALT_SIZE),
            auth_secret=b64_field(data.get("auth_secret"), 32),
            public_key=b64_field(data.get("public_key"), 32),
            wrapped_private_key=wrapped,
        )


@dataclass(frozen=True)
class NewPassword:
    old_auth_secret: bytes
    new_user_salt: bytes
    new_auth_secret: bytes
    new_wrapped_private_key: bytes
    # The X-Wing seed wrapped with the new kek: required exactly when the account has one.
    new_wrapped_xwing_seed: bytes | None = None

    @classmethod
    def from_json(cls, data: Any) -> NewPassword:
        if not isinstance(data, dict):
            raise InvalidInput()
        wrapped = b64_field(data.get("new_wrapped_private_key"), 77)
        if wrapped[0] != 0x01:
            raise InvalidInput()
        xwing = None
        if data.get("new_wrapped_xwing_seed") is not None:
            xwing = b64_field(data.get("new_wrapped_xwing_seed"), crypto.XWING_WRAPPED_SIZE)
            if xwing[0] != crypto.XWING_WRAP_VERSION:
                raise InvalidInput()
        return cls(
            old_auth_secret=b64_field(data.get("old_auth_secret"), 32),
            new_user_salt=b64_field(data.get("new_user_salt"), SALT_SIZE),
            new_auth_secret=b64_field(data.get("new_auth_secret"), 32),
            new_wrapped_private_key=wrapped,
            new_wrapped_xwing_seed=xwing,
        )


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
        return b64_field(auth_secret, 32)
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
    matched = totp.matching_steps(totp_secret, code, now)

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
    # A seed left wrapped with the old kek would be lost with the old password, and with it
    # every v2 slot of this account; one for an account without a pair is nonsense.
    if (new.new_wrapped_xwing_seed is None) != (user.xwing_key_id is None):
        raise InvalidInput(N_("Your post-quantum key must be wrapped again with the new "
                              "password. Reload the page and try again."), code="xwing_rewrap")
    if not crypto.verify_auth_secret(new.old_auth_secret, user.auth_hash):
        return False
    user.user_salt = new.new_user_salt
    user.auth_hash = crypto.hash_auth_secret(new.new_auth_secret, n=settings.scrypt_n)
    user.wrapped_private_key = new.new_wrapped_private_key
    if new.new_wrapped_xwing_seed is not None:
        user.wrapped_xwing_seed = new.new_wrapped_xwing_seed
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
    if not recipients.receives_reports(user):
        recipients.drop_recipient_rows(session, actor, user, "role")


def set_active(session: Session, actor: User, user: User, active: bool) -> None:
    require_admin_target(actor, user)
    user.active = active
    ended = 0 if active else revoke_others(session, user.id, None)
    audit.append(session, "admin.reactivate" if active else "admin.deactivate", actor=actor,
                 target=f"user:{user.id}",
                 details={"username": user.username, "sessions_ended": ended})
    if not active:
        recipients.drop_recipient_rows(session, actor, user, "deactivated")


def require_admin_target(actor: User, user: User) -> None:
    # An administrator cannot lock themselves out (nor leave the installation without an
    # administrator): another administrator must do it.
    if actor.id == user.id:
        raise Forbidden(N_("You cannot change your own account here."))
