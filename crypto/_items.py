"""Sealed items: padded UTF-8 JSON objects under a per-kind subkey of a case key."""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._encoding import Rng, random_bytes, require_bytes
from ._errors import OpenError

VERSION = 0x01
NONCE_SIZE = 12
TAG_SIZE = 16
MIN_PADDED = 256  # every item plaintext is at least this long, so short texts look alike

_KIND_RE = re.compile(r"[a-z0-9-]{1,32}")
_SUBKEY_LABEL = b"chuishao/v1/item/"
_AAD_LABEL = b"chuishao/v1/item\x00"


def padme(n: int) -> int:
    """PADMÉ length for n bytes: at most ~12 % overhead, leaks O(log log n) bits of size."""
    if n < 0:
        raise ValueError("length must be non-negative")
    if n < 2:
        return n
    e = n.bit_length() - 1  # floor(log2 n)
    s = e.bit_length()  # floor(log2 e) + 1
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def check_kind(kind: str) -> bytes:
    if not isinstance(kind, str) or _KIND_RE.fullmatch(kind) is None:
        raise ValueError("kind must match [a-z0-9-]{1,32}")
    return kind.encode("ascii")


def item_subkey(key: bytes, kind: str) -> bytes:
    """HKDF-SHA256(ikm=key, salt=empty, info="chuishao/v1/item/" kind, L=32)."""
    info = _SUBKEY_LABEL + check_kind(kind)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        require_bytes(key, 32, "key")
    )


def item_aad(case_id: bytes, item_id: bytes, kind: str) -> bytes:
    return (
        _AAD_LABEL
        + require_bytes(case_id, 16, "case_id")
        + require_bytes(item_id, 16, "item_id")
        + check_kind(kind)
    )


def encode_json(obj: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, insertion order, like JavaScript's JSON.stringify."""
    if not isinstance(obj, dict):
        raise TypeError("obj must be a dict")
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")  # lone surrogates raise UnicodeEncodeError (a ValueError)


def pad(data: bytes, minimum: int) -> bytes:
    """data || 0x80 || zeros up to padme(max(len(data) + 1, minimum))."""
    total = padme(max(len(data) + 1, minimum))
    return data + b"\x80" + bytes(total - len(data) - 1)


def unpad(padded: bytes, minimum: int) -> bytes:
    """Inverse of pad; raises OpenError unless padded is exactly pad(result, minimum)."""
    body = padded.rstrip(b"\x00")
    if not body or body[-1] != 0x80:
        raise OpenError()
    data = body[:-1]
    if len(padded) != padme(max(len(data) + 1, minimum)):
        raise OpenError()
    return data


def _reject_constant(_: str) -> None:
    raise ValueError("NaN and Infinity are not JSON")


def seal_item(
    key: bytes,
    case_id: bytes,
    item_id: bytes,
    kind: str,
    obj: dict[str, Any],
    *,
    rng: Rng | None = None,
) -> bytes:
    """0x01 || nonce(12) || AES-256-GCM(subkey, nonce, padded JSON, aad)."""
    subkey = item_subkey(key, kind)
    aad = item_aad(case_id, item_id, kind)
    plaintext = pad(encode_json(obj), MIN_PADDED)
    nonce = random_bytes(NONCE_SIZE, rng)
    return bytes([VERSION]) + nonce + AESGCM(subkey).encrypt(nonce, plaintext, aad)


def open_item(key: bytes, case_id: bytes, item_id: bytes, kind: str, blob: bytes) -> dict[str, Any]:
    """Open a sealed item; the JSON must be an object."""
    try:
        subkey = item_subkey(key, kind)
        aad = item_aad(case_id, item_id, kind)
        blob = bytes(blob)
        if len(blob) < 1 + NONCE_SIZE + MIN_PADDED + TAG_SIZE or blob[0] != VERSION:
            raise OpenError()
        nonce = blob[1 : 1 + NONCE_SIZE]
        plaintext = AESGCM(subkey).decrypt(nonce, blob[1 + NONCE_SIZE :], aad)
        text = unpad(plaintext, MIN_PADDED).decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant)
    except Exception:
        # Covers InvalidTag, bad UTF-8, bad JSON, deep nesting and bad arguments alike.
        raise OpenError() from None
    if not isinstance(obj, dict):
        raise OpenError()
    return obj
