"""Suite v2's KEM against the published HPKE vectors for MLKEM768-X25519 (KEM 0x647A).

The vectors use ChaCha20-Poly1305 (AEAD 0x0003); suite v2 uses AES-256-GCM. What they pin for
us is the X-Wing KEM (seed expansion, public key, encapsulation, decapsulation, shared secret)
and the RFC 9180 key schedule with KEM 0x647A and HKDF-SHA256, which suite v2 uses unchanged;
the AEAD is the one of suite v1, already pinned by the RFC 9180 vectors.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke
from kyber_py.ml_kem import ML_KEM_768

from crypto import _hpke, _xwing
from tests.hpke_pq import hkdf_sha256_vector, xwing_vectors

h = bytes.fromhex


def mlkem_encaps(ek: bytes, m: bytes) -> tuple[bytes, bytes]:
    ss, ct = ML_KEM_768._encaps_internal(ek, m)
    return bytes(ss), bytes(ct)


@pytest.mark.parametrize("v", xwing_vectors(), ids=lambda v: f"kdf{v['kdf_id']}-aead{v['aead_id']}")
def test_key_pair_and_decapsulation_with_the_vector_private_key(v: dict[str, Any]) -> None:
    seed = h(v["skRm"])
    assert h(v["ikmR"]) and len(seed) == _xwing.SEED_SIZE
    assert _xwing.public_key(seed) == h(v["pkRm"])
    assert len(h(v["enc"])) == _xwing.ENC_SIZE
    assert _xwing.decap(h(v["enc"]), seed) == h(v["shared_secret"])


def test_deterministic_encapsulation_reproduces_enc_and_shared_secret() -> None:
    v = hkdf_sha256_vector()
    ss, enc = _xwing.encap_derand(h(v["pkRm"]), h(v["ikmE"]), mlkem_encaps)
    assert enc == h(v["enc"])
    assert ss == h(v["shared_secret"])


def test_every_key_schedule_value_and_every_encryption() -> None:
    v = hkdf_sha256_vector()
    assert (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x647A, 1, 3)
    suite = _hpke.Suite(v["kem_id"], v["kdf_id"], v["aead_id"], mlkem_encaps)
    assert suite.suite_id == h(v["suite_id"])
    enc, sender = suite.setup_base_s(h(v["pkRm"]), h(v["info"]), h(v["ikmE"]))
    receiver = suite.setup_base_r(h(v["enc"]), h(v["skRm"]), h(v["info"]))
    assert enc == h(v["enc"])
    for ctx in (sender, receiver):
        s = ctx.schedule
        assert s.shared_secret == h(v["shared_secret"])
        assert s.key == h(v["key"])
        assert s.base_nonce == h(v["base_nonce"])
        assert s.exporter_secret == h(v["exporter_secret"])
    assert len(v["encryptions"]) == 10
    for i, e in enumerate(v["encryptions"]):
        assert sender.compute_nonce(i) == h(e["nonce"])
        assert sender.seal(h(e["aad"]), h(e["pt"])) == h(e["ct"])
        assert receiver.open(h(e["aad"]), h(e["ct"])) == h(e["pt"])


def test_cryptography_hpke_opens_the_vector_with_the_vector_private_key() -> None:
    """The production library, given the private key built from the vector's seed."""
    v = hkdf_sha256_vector()
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256,
                       hpke.AEAD.CHACHA20_POLY1305)
    first = v["encryptions"][0]
    pt = rust_openssl.hpke._decrypt_with_aad(
        suite, h(v["enc"]) + h(first["ct"]), _xwing.private_key(h(v["skRm"])),
        info=h(v["info"]), aad=h(first["aad"]),
    )
    assert pt == h(first["pt"])


def test_cryptography_and_the_written_out_schedule_agree_for_suite_v2() -> None:
    """cryptography seals with AES-256-GCM; the written-out code opens it, and back."""
    v = hkdf_sha256_vector()
    seed, info = h(v["skRm"]), b"chuishao/v1/case-key\x00" + bytes(16)
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    blob = suite.encrypt(b"k" * 32, _xwing.load_public(h(v["pkRm"])), info)
    assert _hpke.XWING_SHA256_AES256GCM.open(seed, info, b"", blob) == b"k" * 32
    ours = _hpke.Suite(0x647A, 1, 2, mlkem_encaps).seal(h(v["pkRm"]), info, b"", b"q" * 32,
                                                       h(v["ikmE"]))
    assert suite.decrypt(ours, _xwing.private_key(seed), info) == b"q" * 32
