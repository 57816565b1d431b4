"""The private RFC 9180 implementation against RFC 9180 Appendix A and cryptography's HPKE."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from crypto import _hpke

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "hpke-rfc9180-base.json").read_text()
)["vectors"]
VECTOR_IDS = [v["suite"] for v in VECTORS]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_both_rfc_vectors_present() -> None:
    assert sorted(int(v["kem_id"]) for v in VECTORS) == [0x10, 0x20]
    assert all(v["mode"] == "0" for v in VECTORS)


@pytest.mark.parametrize("vec", VECTORS, ids=VECTOR_IDS)
def test_rfc9180_key_schedule(vec: dict) -> None:
    suite = _hpke.Suite(int(vec["kem_id"]), int(vec["kdf_id"]), int(vec["aead_id"]))
    kem = suite.kem
    sk_e, pk_e = kem.derive_key_pair(h(vec["ikmE"]))
    sk_r, pk_r = kem.derive_key_pair(h(vec["ikmR"]))
    assert (sk_e, pk_e) == (h(vec["skEm"]), h(vec["pkEm"]))
    assert (sk_r, pk_r) == (h(vec["skRm"]), h(vec["pkRm"]))

    enc, sender = suite.setup_base_s(pk_r, h(vec["info"]), sk_e)
    receiver = suite.setup_base_r(enc, sk_r, h(vec["info"]))
    assert enc == h(vec["enc"])
    for ctx in (sender, receiver):
        s = ctx.schedule
        assert s.shared_secret == h(vec["shared_secret"])
        assert s.key_schedule_context == h(vec["key_schedule_context"])
        assert s.secret == h(vec["secret"])
        assert s.key == h(vec["key"])
        assert s.base_nonce == h(vec["base_nonce"])
        assert s.exporter_secret == h(vec["exporter_secret"])


@pytest.mark.parametrize("vec", VECTORS, ids=VECTOR_IDS)
def test_rfc9180_encryptions_in_sequence(vec: dict) -> None:
    """Run both contexts through seq 0..256, checking each listed encryption (incl. 255, 256)."""
    suite = _hpke.Suite(int(vec["kem_id"]), int(vec["kdf_id"]), int(vec["aead_id"]))
    info = h(vec["info"])
    _, sender = suite.setup_base_s(h(vec["pkRm"]), info, h(vec["skEm"]))
    receiver = suite.setup_base_r(h(vec["enc"]), h(vec["skRm"]), info)
    listed = {int(e["sequence_number"]): e for e in vec["encryptions"]}
    assert len(listed) == 6 and {255, 256} <= set(listed)
    checked = 0
    for seq in range(max(listed) + 1):
        assert sender.seq == receiver.seq == seq
        if seq in listed:
            e = listed[seq]
            assert sender.compute_nonce(seq) == h(e["nonce"])
            ct = sender.seal(h(e["aad"]), h(e["pt"]))
            assert ct == h(e["ct"])
            assert receiver.open(h(e["aad"]), ct) == h(e["pt"])
            checked += 1
        else:
            ct = sender.seal(b"skip", b"")
            assert receiver.open(b"skip", ct) == b""
    assert checked == 6


def test_open_failure_does_not_advance_sequence() -> None:
    sk_r, pk_r = _hpke.DHKem(_hpke.KEM_X25519_HKDF_SHA256).derive_key_pair(b"r" * 32)
    suite = _hpke.X25519_SHA256_AES256GCM
    enc, sender = suite.setup_base_s(pk_r, b"info", os.urandom(32))
    receiver = suite.setup_base_r(enc, sk_r, b"info")
    ct = sender.seal(b"", b"hello")
    with pytest.raises(Exception):  # noqa: B017 - InvalidTag from cryptography
        receiver.open(b"other aad", ct)
    assert receiver.seq == 0
    assert receiver.open(b"", ct) == b"hello"


_CRYPTOGRAPHY = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


@pytest.mark.parametrize("size", [0, 1, 32, 1000])
def test_private_seal_opens_with_cryptography(size: int) -> None:
    sk_r = x25519.X25519PrivateKey.generate()
    pk_r = sk_r.public_key().public_bytes_raw()
    pt, info = os.urandom(size), os.urandom(20)
    sealed = _hpke.X25519_SHA256_AES256GCM.seal(pk_r, info, b"", pt, os.urandom(32))
    assert _CRYPTOGRAPHY.decrypt(sealed, sk_r, info) == pt


@pytest.mark.parametrize("size", [0, 1, 32, 1000])
def test_cryptography_seal_opens_with_private(size: int) -> None:
    sk_r = x25519.X25519PrivateKey.generate()
    pt, info = os.urandom(size), os.urandom(20)
    sealed = _CRYPTOGRAPHY.encrypt(pt, sk_r.public_key(), info)
    assert _hpke.X25519_SHA256_AES256GCM.open(sk_r.private_bytes_raw(), info, b"", sealed) == pt


def test_unsupported_algorithms_rejected() -> None:
    with pytest.raises(ValueError):
        _hpke.Suite(0x0011, 1, 1)
    with pytest.raises(ValueError):
        _hpke.Suite(0x0020, 2, 1)
    with pytest.raises(ValueError):
        _hpke.Suite(0x0020, 1, 0x0004)  # 3 (ChaCha20-Poly1305) serves the X-Wing vectors
