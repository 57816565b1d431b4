"""Ed25519 signing and the recovery secret text."""

from __future__ import annotations

import base64
import hashlib

import pytest

import crypto


def test_sign_verify() -> None:
    private, public = crypto.generate_signing_key()
    sig = crypto.sign(private, b"manifest")
    assert len(sig) == 64
    assert crypto.verify_signature(public, b"manifest", sig)
    assert not crypto.verify_signature(public, b"manifesT", sig)
    assert not crypto.verify_signature(public, b"manifest", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not crypto.verify_signature(public[:31], b"manifest", sig)
    assert not crypto.verify_signature(public, b"manifest", sig[:63])
    assert crypto.generate_signing_key(rng=lambda n: bytes(n)) == crypto.generate_signing_key(
        rng=lambda n: bytes(n)
    )


def test_recovery_text_round_trip() -> None:
    raw = bytes(range(32))
    text = crypto.encode_recovery_secret(raw)
    groups = text.split("-")
    assert len(groups) == 11 and all(len(g) == 5 for g in groups)
    compact = text.replace("-", "")
    assert base64.b32decode(compact + "=") == raw + hashlib.sha256(raw).digest()[:2]
    assert crypto.decode_recovery_secret(text) == raw
    assert crypto.decode_recovery_secret(text.lower().replace("-", " ")) == raw
    assert crypto.decode_recovery_secret(compact) == raw


def test_recovery_text_rejects_damage() -> None:
    text = crypto.encode_recovery_secret(bytes(range(32)))
    first = "B" if text[0] != "B" else "C"
    bad_last = text[:-1] + ("B" if text[-1] != "B" else "C")  # non-zero trailing bits or checksum
    unicode_upper = text.replace("S", "ſ", 1) if "S" in text else text + "ß"
    for bad in [
        first + text[1:],
        text[:-1],
        text + "A",
        text.replace("A", "1"),
        bad_last,
        "",
        unicode_upper,
    ]:
        with pytest.raises(ValueError):
            crypto.decode_recovery_secret(bad)
