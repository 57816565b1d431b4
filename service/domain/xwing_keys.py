"""A console account's X-Wing key pair (protocol v2, docs/PROTOCOL.md 17.5).

The browser makes the pair and wraps the seed with the password's kek (the same kek as the
X25519 key), at account creation where it has the hybrid, or at a later sign-in or unlock. The
server checks what it can (sizes, the wrap's version byte, that the key id is the public
key's) and keeps one pair per account: a second would strand every v2 slot sealed to the first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import crypto
from service.domain import audit
from service.domain.accounts import b64_field
from service.domain.models import User
from service.platform.errors import ChuishaoError, InvalidInput
from service.platform.i18n import N_


@dataclass(frozen=True)
class XWingKey:
    """An account's X-Wing pair as the browser sends it (PROTOCOL 17.5): the public key, its
    key id and the seed wrapped with the password's kek (which the server cannot check)."""

    public_key: bytes
    key_id: str
    wrapped_seed: bytes

    FIELDS = ("xwing_public_key", "xwing_key_id", "wrapped_xwing_seed")

    @classmethod
    def from_json(cls, data: Any) -> XWingKey:
        if not isinstance(data, dict):
            raise InvalidInput()
        public = b64_field(data.get("xwing_public_key"), crypto.XWING_PUBLIC_SIZE)
        wrapped = b64_field(data.get("wrapped_xwing_seed"), crypto.XWING_WRAPPED_SIZE)
        if wrapped[0] != crypto.XWING_WRAP_VERSION:
            raise InvalidInput()
        key_id = crypto.key_id(public).hex()
        # The id the browser bound into the wrap's aad must be this public key's.
        if data.get("xwing_key_id") != key_id:
            raise InvalidInput()
        return cls(public, key_id, wrapped)

    @classmethod
    def optional(cls, data: dict[str, Any]) -> XWingKey | None:
        """None when the browser sent none of the fields (no hybrid: the account stays
        classical); any of them makes all three required."""
        if all(data.get(name) is None for name in cls.FIELDS):
            return None
        return cls.from_json(data)


class HasXWingKey(ChuishaoError):
    # A second pair would strand every v2 slot sealed to the first.
    status = 409
    code = "xwing_key_exists"
    message = N_("This account already has a post-quantum key.")


def add_xwing_key(session: Session, user: User, key: XWingKey,
                  now: dt.datetime | None = None) -> None:
    """Give an account made before v2 (or in a browser without the hybrid) its X-Wing pair,
    once: a conditional UPDATE, so two tabs signing in at once cannot both set one."""
    if session.scalar(select(User.id).where(User.xwing_key_id == key.key_id)) is not None:
        raise InvalidInput()
    result = session.execute(
        update(User).where(User.id == user.id, User.xwing_key_id.is_(None))
        .values(xwing_public_key=key.public_key, xwing_key_id=key.key_id,
                wrapped_xwing_seed=key.wrapped_seed)
        .execution_options(synchronize_session=False))
    if not getattr(result, "rowcount", 0):
        raise HasXWingKey()
    session.refresh(user)
    audit.append(session, "account.add_pq", actor=user, target=f"user:{user.id}",
                 details={"xwing_key_id": key.key_id}, now=now)
