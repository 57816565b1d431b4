"""The published HPKE vectors for KEM 0x647A (MLKEM768-X25519), from cryptography-vectors."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

XWING_KEM_ID = 0x647A


def xwing_vectors() -> list[dict[str, Any]]:
    """Every 0x647A base-mode vector of HPKE/hpke-pq-test-vectors.json."""
    text = (resources.files("cryptography_vectors") / "HPKE" / "hpke-pq-test-vectors.json").read_text()
    vectors = [v for v in json.loads(text) if v["kem_id"] == XWING_KEM_ID and v["mode"] == 0]
    assert vectors, "no 0x647A vectors in cryptography-vectors"
    return vectors


def hkdf_sha256_vector() -> dict[str, Any]:
    """The one with KDF HKDF-SHA256, the KDF of suite v2 (its AEAD is ChaCha20-Poly1305)."""
    return next(v for v in xwing_vectors() if v["kdf_id"] == 1)
