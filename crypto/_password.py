"""Reviewer passwords: the authentication secret, the key-encryption key, wrapped keys."""

from __future__ import annotations

import hmac
import re
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ._encoding import Rng, b64u_decode, b64u_encode, random_bytes, require_bytes
from ._errors import OpenError
from ._keys import key_id as _key_id
from ._keys import public_key
from ._xwing import public_key as _xwing_public

ITERATIONS = 600_000
VERSION = 0x01
NONCE_SIZE = 12
# PKCS#8 DER header of an X25519 private key (RFC 8410); the raw 32 bytes follow.
PKCS8_X25519_PREFIX = bytes.fromhex("302e020100300506032b656e04220420")
WRAPPED_SIZE = 1 + NONCE_SIZE + len(PKCS8_X25519_PREFIX) + 32 + 16  # 77

_SALT_LABEL = b"chuishao/v1/password\x00"
_WRAP_AAD_LABEL = b"chuishao/v1/wrapped-key\x00"
# Suite v2: the reviewer's X-Wing seed, wrapped by the same kek as the X25519 key.
XWING_WRAP_VERSION = 0x02
XWING_WRAPPED_SIZE = 1 + NONCE_SIZE + 32 + 16  # 61
_XWING_WRAP_AAD_LABEL = b"chuishao/v2/wrapped-xwing\x00"
_SCRYPT_SALT_SIZE = 16
_SCRYPT_HASH_SIZE = 32
# Bounds on stored parameters, so a corrupted or hostile row cannot exhaust memory.
_SCRYPT_MAX_LOG2_N = 20
_SCRYPT_MAX_R = 32
_SCRYPT_MAX_P = 16
_STORED_RE = re.compile(
    r"scrypt\$([1-9][0-9]{0,7})\$([1-9][0-9]{0,2})\$([1-9][0-9]{0,2})"
    r"\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)"
)


@dataclass(frozen=True)
class PasswordKeys:
    auth_secret: bytes  # master[0:32]; sent to the server, which keeps only scrypt of it
    kek: bytes  # master[32:64]; wraps the reviewer's private key, never leaves the browser


def derive_password(password: str, user_salt: bytes, iterations: int = ITERATIONS) -> PasswordKeys:
    """master = PBKDF2-HMAC-SHA256(NFC(password), "chuishao/v1/password" 0x00 salt, it, 64)."""
    if not isinstance(password, str):
        raise TypeError("password must be str")
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    salt = _SALT_LABEL + require_bytes(user_salt, 16, "user_salt")
    master = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=64, salt=salt, iterations=iterations
    ).derive(secret)
    return PasswordKeys(auth_secret=master[:32], kek=master[32:])


def _wrap_aad(key_id: bytes) -> bytes:
    return _WRAP_AAD_LABEL + require_bytes(key_id, 16, "key_id")


def wrap_private_key(kek: bytes, private: bytes, key_id: bytes, *, rng: Rng | None = None) -> bytes:
    """0x01 || nonce(12) || AES-256-GCM(kek, nonce, PKCS#8(private), aad with key_id)."""
    private = require_bytes(private, 32, "private key")
    aad = _wrap_aad(key_id)
    if not hmac.compare_digest(_key_id(public_key(private)), key_id):
        raise ValueError("key_id does not belong to this private key")
    nonce = random_bytes(NONCE_SIZE, rng)
    ct = AESGCM(require_bytes(kek, 32, "kek")).encrypt(nonce, PKCS8_X25519_PREFIX + private, aad)
    return bytes([VERSION]) + nonce + ct


def unwrap_private_key(kek: bytes, blob: bytes, key_id: bytes) -> bytes:
    """Inverse of wrap_private_key; returns the raw 32-byte private key."""
    try:
        aad = _wrap_aad(key_id)
        blob = bytes(blob)
        if len(blob) != WRAPPED_SIZE or blob[0] != VERSION:
            raise OpenError()
        aead = AESGCM(require_bytes(kek, 32, "kek"))
        pkcs8 = aead.decrypt(blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :], aad)
        if pkcs8[: len(PKCS8_X25519_PREFIX)] != PKCS8_X25519_PREFIX:
            raise OpenError()
        private = pkcs8[len(PKCS8_X25519_PREFIX) :]
        # The aad already binds key_id; this also catches a wrapper that used a wrong id.
        if not hmac.compare_digest(_key_id(public_key(private)), key_id):
            raise OpenError()
    except Exception:
        raise OpenError() from None
    return private


def _check_scrypt_params(n: int, r: int, p: int) -> None:
    if n < 2 or n & (n - 1) or n > 1 << _SCRYPT_MAX_LOG2_N:
        raise ValueError("scrypt n must be a power of two in [2, 2**20]")
    if not 1 <= r <= _SCRYPT_MAX_R or not 1 <= p <= _SCRYPT_MAX_P:
        raise ValueError("scrypt r or p out of range")


def hash_auth_secret(
    secret: bytes, n: int = 2**15, r: int = 8, p: int = 1, *, rng: Rng | None = None
) -> str:
    """scrypt(secret) stored as "scrypt$n$r$p$salt_b64u$hash_b64u" (salt 16, hash 32 bytes)."""
    _check_scrypt_params(n, r, p)
    salt = random_bytes(_SCRYPT_SALT_SIZE, rng)
    digest = Scrypt(salt=salt, length=_SCRYPT_HASH_SIZE, n=n, r=r, p=p).derive(bytes(secret))
    return f"scrypt${n}${r}${p}${b64u_encode(salt)}${b64u_encode(digest)}"


def verify_auth_secret(secret: bytes, stored: str) -> bool:
    """Constant-time check of secret against a stored scrypt string; False if malformed."""
    match = _STORED_RE.fullmatch(stored) if isinstance(stored, str) else None
    if match is None:
        return False
    try:
        n, r, p = (int(match.group(i)) for i in (1, 2, 3))
        _check_scrypt_params(n, r, p)
        salt = b64u_decode(match.group(4))
        expected = b64u_decode(match.group(5))
        if len(salt) != _SCRYPT_SALT_SIZE or len(expected) != _SCRYPT_HASH_SIZE:
            return False
        actual = Scrypt(salt=salt, length=_SCRYPT_HASH_SIZE, n=n, r=r, p=p).derive(bytes(secret))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _xwing_wrap_aad(key_id: bytes) -> bytes:
    return _XWING_WRAP_AAD_LABEL + require_bytes(key_id, 16, "key_id")


def wrap_xwing_seed(kek: bytes, seed: bytes, key_id: bytes, *, rng: Rng | None = None) -> bytes:
    """0x02 || nonce(12) || AES-256-GCM(kek, nonce, seed32, "chuishao/v2/wrapped-xwing" 0 id)."""
    seed = require_bytes(seed, 32, "X-Wing seed")
    aad = _xwing_wrap_aad(key_id)
    if not hmac.compare_digest(_key_id(_xwing_public(seed)), key_id):
        raise ValueError("key_id does not belong to this X-Wing seed")
    nonce = random_bytes(NONCE_SIZE, rng)
    ct = AESGCM(require_bytes(kek, 32, "kek")).encrypt(nonce, seed, aad)
    return bytes([XWING_WRAP_VERSION]) + nonce + ct


def unwrap_xwing_seed(kek: bytes, blob: bytes, key_id: bytes) -> bytes:
    """Inverse of wrap_xwing_seed; returns the 32-byte X-Wing seed."""
    try:
        aad = _xwing_wrap_aad(key_id)
        blob = bytes(blob)
        if len(blob) != XWING_WRAPPED_SIZE or blob[0] != XWING_WRAP_VERSION:
            raise OpenError()
        aead = AESGCM(require_bytes(kek, 32, "kek"))
        seed = aead.decrypt(blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :], aad)
        if not hmac.compare_digest(_key_id(_xwing_public(seed)), key_id):
            raise OpenError()
    except Exception:
        raise OpenError() from None
    return seed
