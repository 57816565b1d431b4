"""Server tokens: a value the server seals for itself and lets the browser carry back.

The no-JavaScript pages use two: the follow-up capability (a case key, so a reply can be
sealed without asking for the receipt again) and the receipt page's cookie. Only the server
can open them. Format (docs/PROTOCOL.md §18):

    token = base64url( 0x01 || nonce[12] || AES-256-GCM(key, nonce, body, aad) )
    key   = HKDF-SHA256(ikm = server secret, salt = none, info = "chuishao/" || purpose)
    aad   = 0x01 || context

Tokens without the version byte (v0: nonce || ciphertext, aad = context) are still opened,
so the tokens issued before the upgrade run out normally (they live minutes: the follow-up
and receipt-page lifetimes).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._encoding import Rng, b64u_decode, b64u_encode, random_bytes
from ._errors import OpenError

VERSION = 1
_NONCE = 12
_TAG = 16


def token_key(secret: bytes, purpose: str) -> bytes:
    """The AES key for one purpose, derived from the server's secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"chuishao/" + purpose.encode("ascii")).derive(secret)


def seal_token(key: bytes, context: bytes, body: bytes, *, rng: Rng | None = None) -> str:
    nonce = random_bytes(_NONCE, rng)
    version = bytes([VERSION])
    return b64u_encode(version + nonce + AESGCM(key).encrypt(nonce, body, version + context))


def open_token(key: bytes, context: bytes, token: str) -> bytes:
    """The body, or OpenError for anything else (wrong key or context, damage, junk)."""
    try:
        raw = b64u_decode(token)
    except (ValueError, TypeError):
        raise OpenError() from None
    aead = AESGCM(key)
    if len(raw) >= 1 + _NONCE + _TAG and raw[0] == VERSION:
        try:
            return aead.decrypt(raw[1:1 + _NONCE], raw[1 + _NONCE:], raw[:1] + context)
        except InvalidTag:
            pass  # may be a v0 token whose random nonce starts with 0x01
    if len(raw) >= _NONCE + _TAG:
        try:
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], context)
        except InvalidTag:
            pass
    raise OpenError()
