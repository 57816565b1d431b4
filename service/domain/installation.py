"""First-time initialisation: installation salt, signing key, offline recovery key (both parts).

The signing key's public half is also written to ``signing.pub``, a file for the auditor to
keep: manifests and signed audit heads are checked against that copy, never against the
public key stored in the database (whoever can write the database can replace it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import crypto
from service.domain.models import Installation, utcnow
from service.platform.settings import Settings


class AlreadyInitialised(RuntimeError):
    pass


class AlreadyPostQuantum(RuntimeError):
    pass


@dataclass(frozen=True)
class Initialised:
    installation: Installation
    recovery_secret: str  # shown once to the operator, never stored
    recovery_xwing_secret: str  # the X-Wing part (protocol v2), likewise


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
    public_key_path(settings).write_text(public_key_file_text(signing_public), encoding="utf-8")
    installation = Installation(
        id=1, protocol="v1", salt=os.urandom(32),
        signing_public_key=signing_public,
        recovery_public_key=recovery_public,
        recovery_key_id=crypto.key_id(recovery_public).hex(),
        created_at=utcnow(),
    )
    xwing_secret = _set_recovery_xwing(installation)
    session.add(installation)
    session.flush()
    return Initialised(installation, crypto.encode_recovery_secret(recovery_private),
                       xwing_secret)


def add_recovery_xwing(session: Session) -> str:
    """Give an installation made before protocol v2 the recovery key's X-Wing part; returns
    its secret (shown once). Refused when it has one: a second would strand v2 slots."""
    installation = get_installation(session)
    if installation is None:
        raise LookupError("this installation is not initialised")
    if installation.recovery_xwing_public_key is not None:
        raise AlreadyPostQuantum("the recovery key has an X-Wing part already")
    secret = _set_recovery_xwing(installation)
    session.flush()
    return secret


def _set_recovery_xwing(installation: Installation) -> str:
    # An independent seed, not derived from the X25519 part (PROTOCOL section 17.5).
    seed, public = crypto.generate_xwing_keypair()
    installation.recovery_xwing_public_key = public
    installation.recovery_xwing_key_id = crypto.key_id(public).hex()
    return crypto.encode_recovery_secret(seed, "xwing")


_SECRET_CHECK_LABEL = b"chuishao/secret-key-check/1"


class SecretKeyMismatch(RuntimeError):
    pass


def secret_key_check(secret_key: str) -> str:
    # A check value, not the key: it tells keys apart and gives nothing that signs.
    return hmac.new(secret_key.encode(), _SECRET_CHECK_LABEL, hashlib.sha256).hexdigest()


def pin_secret_key(session: Session, secret_key: str) -> None:
    """Refuse a process whose secret key is not the installation's.

    Sessions, CSRF tokens, stamps and follow-up capabilities are signed with the secret key;
    an instance with a key of its own (say a second machine that generated one) would refuse
    everything the others signed. The first instance to start records the check value; a
    compare-and-set, so two first starts at once cannot both record theirs."""
    installation = get_installation(session)
    if installation is None:
        return
    check = secret_key_check(secret_key)
    if installation.secret_key_check is None:
        session.execute(update(Installation)
                        .where(Installation.id == 1, Installation.secret_key_check.is_(None))
                        .values(secret_key_check=check))
        session.flush()
        session.refresh(installation)
    if not hmac.compare_digest(installation.secret_key_check or "", check):
        raise SecretKeyMismatch(
            "refused to start: this instance's secret key is not the one the installation's "
            "other instances use. Give every instance the same CHUISHAO_SECRET_KEY (or the "
            "same secret.key file); if the key was replaced on purpose on every machine, run "
            "`chuishao secret-key adopt` once (docs/OPERATIONS.md)")


def adopt_secret_key(session: Session, secret_key: str) -> bool:
    """Make this key the installation's (after replacing it everywhere); False if it was."""
    installation = get_installation(session)
    if installation is None:
        raise LookupError("this installation is not initialised")
    check = secret_key_check(secret_key)
    if installation.secret_key_check == check:
        return False
    installation.secret_key_check = check
    session.flush()
    return True


def load_signing_key(settings: Settings) -> bytes:
    return settings.signing_key_path.read_bytes()


def signing_public_key(settings: Settings) -> bytes:
    """The public key of the key file the service signs with (not the database's copy)."""
    return crypto.signing_public_key(load_signing_key(settings))


def public_key_path(settings: Settings) -> Path:
    return settings.signing_key_path.with_name("signing.pub")


def public_key_file_text(public: bytes) -> str:
    """The auditor's key file: one line for the key, a comment with its fingerprint."""
    return (f"# Chuishao installation signing key (public), fingerprint "
            f"{crypto.signing_fingerprint(public)}\n"
            f"ed25519 {crypto.b64u_encode(public)}\n")


def write_public_key_file(settings: Settings, path: Path | None = None) -> tuple[Path, bytes]:
    public = signing_public_key(settings)
    path = path or public_key_path(settings)
    path.write_text(public_key_file_text(public), encoding="utf-8")
    return path, public


_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


def parse_public_key(text: str) -> bytes:
    """A public key as 64 hex characters or base64url (what ``--public-key`` takes)."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if _HEX_KEY.match(text) else crypto.b64u_decode(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError("a public key is 32 bytes, as 64 hex characters or base64url")
    return key


def read_key_file(data: bytes) -> bytes:
    """The public key in a key file: ``signing.pub`` as written at ``init``, or the
    installation's own ``signing.key`` (32 raw bytes), whose public half is derived."""
    if len(data) == 32:  # a text key file is never this short
        return crypto.signing_public_key(data)
    try:
        lines = [line.strip() for line in data.decode("utf-8").splitlines()]
    except UnicodeDecodeError:
        raise ValueError("neither a signing.pub nor a signing.key file") from None
    words = [line for line in lines if line and not line.startswith("#")]
    if len(words) != 1:
        raise ValueError("neither a signing.pub nor a signing.key file")
    value = words[0].removeprefix("ed25519").strip()
    return parse_public_key(value)


def canonical_json(document: dict[str, Any]) -> bytes:
    """What a manifest's or signed head's signature covers: every field but the signature."""
    body = {k: v for k, v in document.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def pinned_signature_ok(document: dict[str, Any], pinned_key: bytes | None) -> str:
    """"" when the document is signed by the pinned key, else what is wrong.

    ``pinned_key`` None means the caller chose, explicitly, to trust the document's own key.
    """
    try:
        public = crypto.b64u_decode(str(document["public_key"]))
        signature = crypto.b64u_decode(str(document["signature"]))
    except (KeyError, ValueError):
        return "it carries no readable key or signature"
    if pinned_key is not None and public != pinned_key:
        shown = crypto.signing_fingerprint(public) if len(public) == 32 else "(malformed)"
        return (f"signed with key {shown}, not the pinned key "
                f"{crypto.signing_fingerprint(pinned_key)}")
    if not crypto.verify_signature(public, canonical_json(document), signature):
        return "its signature does not match: it was changed after it was signed"
    return ""
