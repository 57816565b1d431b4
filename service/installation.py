"""First-time initialisation: installation salt, signing key, offline recovery key."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import crypto
from service.models import Installation, utcnow
from service.settings import Settings


class AlreadyInitialised(RuntimeError):
    pass


@dataclass(frozen=True)
class Initialised:
    installation: Installation
    recovery_secret: str  # shown once to the operator, never stored


def get_installation(session: Session) -> Installation | None:
    return session.scalar(select(Installation).where(Installation.id == 1))


def initialise(session: Session, settings: Settings) -> Initialised:
    if get_installation(session) is not None:
        raise AlreadyInitialised("this installation is initialised already")
    signing_private, signing_public = crypto.generate_signing_key()
    recovery_private, recovery_public = crypto.generate_keypair()
    path = settings.signing_key_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # The signing key stays beside the database, readable by the service user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(signing_private)
    installation = Installation(
        id=1, protocol="v1", salt=os.urandom(32),
        signing_public_key=signing_public,
        recovery_public_key=recovery_public,
        recovery_key_id=crypto.key_id(recovery_public).hex(),
        created_at=utcnow(),
    )
    session.add(installation)
    session.flush()
    return Initialised(installation, crypto.encode_recovery_secret(recovery_private))


def load_signing_key(settings: Settings) -> bytes:
    return settings.signing_key_path.read_bytes()
