"""Private RFC 9180 (HPKE) base mode, written out step by step.

Production sealing uses cryptography's hpke.Suite. This module exists so that test vectors
can be deterministic (injected ephemeral key) and so that every intermediate value of the key
schedule can be checked against RFC 9180 Appendix A and published in our own vectors.
Supported: DHKEM(X25519, HKDF-SHA256), DHKEM(P-256, HKDF-SHA256), MLKEM768-X25519 (X-Wing,
protocol v2), HKDF-SHA256, AES-128-GCM, AES-256-GCM and (for the published X-Wing vectors)
ChaCha20-Poly1305, mode_base only.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from . import _xwing

MODE_BASE = 0x00
KEM_P256_HKDF_SHA256 = 0x0010
KEM_X25519_HKDF_SHA256 = 0x0020
KEM_MLKEM768_X25519 = 0x647A
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM = 0x0001
AEAD_AES_256_GCM = 0x0002
AEAD_CHACHA20_POLY1305 = 0x0003

_VERSION_LABEL = b"HPKE-v1"
_NH = 32  # SHA-256 output length
_NN = 12  # AES-GCM nonce length
_NT = 16  # AES-GCM tag length
_AEAD_NK = {AEAD_AES_128_GCM: 16, AEAD_AES_256_GCM: 32, AEAD_CHACHA20_POLY1305: 32}
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def i2osp(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big")


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    # HMAC pads an empty key with zeros, so salt b"" equals RFC 5869's default of HashLen zeros.
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    if not 0 <= length <= 255 * _NH:
        raise ValueError("HKDF-Expand length out of range")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hkdf_extract(salt, _VERSION_LABEL + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled_info = i2osp(length, 2) + _VERSION_LABEL + suite_id + label + info
    return hkdf_expand(prk, labeled_info, length)


@dataclass(frozen=True)
class DHKem:
    """DHKEM over X25519 or P-256 with HKDF-SHA256 (RFC 9180 section 4.1)."""

    kem_id: int

    def __post_init__(self) -> None:
        if self.kem_id not in (KEM_X25519_HKDF_SHA256, KEM_P256_HKDF_SHA256):
            raise ValueError("unsupported KEM")

    @property
    def suite_id(self) -> bytes:
        return b"KEM" + i2osp(self.kem_id, 2)

    @property
    def n_pk(self) -> int:
        return 32 if self.kem_id == KEM_X25519_HKDF_SHA256 else 65

    @property
    def n_enc(self) -> int:
        return self.n_pk

    def public_key(self, sk: bytes) -> bytes:
        """SerializePublicKey(pk(sk)): raw 32 bytes, or the uncompressed SEC1 point."""
        if self.kem_id == KEM_X25519_HKDF_SHA256:
            return x25519.X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()
        priv = ec.derive_private_key(int.from_bytes(sk, "big"), ec.SECP256R1())
        return priv.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair (RFC 9180 section 7.1.3): returns (sk, pk) serialized."""
        dkp_prk = labeled_extract(self.suite_id, b"", b"dkp_prk", ikm)
        if self.kem_id == KEM_X25519_HKDF_SHA256:
            sk = labeled_expand(self.suite_id, dkp_prk, b"sk", b"", 32)
            return sk, self.public_key(sk)
        for counter in range(256):
            candidate = labeled_expand(self.suite_id, dkp_prk, b"candidate", i2osp(counter, 1), 32)
            # bitmask 0xff for P-256: the whole first byte is kept.
            value = int.from_bytes(candidate, "big")
            if 0 < value < _P256_ORDER:
                return candidate, self.public_key(candidate)
        raise ValueError("DeriveKeyPairError")

    def dh(self, sk: bytes, pk: bytes) -> bytes:
        if self.kem_id == KEM_X25519_HKDF_SHA256:
            priv = x25519.X25519PrivateKey.from_private_bytes(sk)
            # cryptography rejects an all-zero result, as RFC 9180 section 7.1.4 requires.
            return priv.exchange(x25519.X25519PublicKey.from_public_bytes(pk))
        ec_priv = ec.derive_private_key(int.from_bytes(sk, "big"), ec.SECP256R1())
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pk)
        return ec_priv.exchange(ec.ECDH(), peer)

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        eae_prk = labeled_extract(self.suite_id, b"", b"eae_prk", dh)
        return labeled_expand(self.suite_id, eae_prk, b"shared_secret", kem_context, _NH)

    def encap(self, pk_r: bytes, sk_e: bytes) -> tuple[bytes, bytes]:
        """Encap with an injected ephemeral private key: returns (shared_secret, enc)."""
        enc = self.public_key(sk_e)
        dh = self.dh(sk_e, pk_r)
        return self._extract_and_expand(dh, enc + pk_r), enc

    def decap(self, enc: bytes, sk_r: bytes) -> bytes:
        if len(enc) != self.n_pk:
            raise ValueError("bad enc length")
        dh = self.dh(sk_r, enc)
        return self._extract_and_expand(dh, enc + self.public_key(sk_r))


@dataclass(frozen=True)
class XWingKem:
    """MLKEM768-X25519 as an HPKE KEM: its shared secret enters the key schedule as is.

    Encap needs ML-KEM's derandomized encapsulation, injected (vectors only); decap is
    deterministic and runs on cryptography's ML-KEM and X25519.
    """

    mlkem_encaps: _xwing.MlkemEncaps | None = None
    kem_id: int = KEM_MLKEM768_X25519
    n_enc: int = _xwing.ENC_SIZE

    def encap(self, pk_r: bytes, sk_e: bytes) -> tuple[bytes, bytes]:
        """sk_e is the 64-byte eseed m || sk_E; returns (shared_secret, enc)."""
        if self.mlkem_encaps is None:
            raise ValueError("deterministic X-Wing encapsulation needs mlkem_encaps")
        return _xwing.encap_derand(pk_r, sk_e, self.mlkem_encaps)

    def decap(self, enc: bytes, sk_r: bytes) -> bytes:
        return _xwing.decap(enc, sk_r)


@dataclass(frozen=True)
class KeySchedule:
    """Every intermediate value of KeySchedule (RFC 9180 section 5.1), kept for vectors."""

    shared_secret: bytes
    key_schedule_context: bytes
    secret: bytes
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes


class Context:
    """An encryption context with its sequence number (RFC 9180 section 5.2)."""

    def __init__(self, schedule: KeySchedule, aead_id: int = AEAD_AES_256_GCM) -> None:
        self.schedule = schedule
        self.seq = 0
        self._aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(schedule.key)
            if aead_id == AEAD_CHACHA20_POLY1305
            else AESGCM(schedule.key)
        )

    def compute_nonce(self, seq: int) -> bytes:
        seq_bytes = i2osp(seq, _NN)
        return bytes(a ^ b for a, b in zip(self.schedule.base_nonce, seq_bytes, strict=True))

    def _increment(self) -> None:
        if self.seq >= (1 << (8 * _NN)) - 1:
            raise ValueError("MessageLimitReachedError")
        self.seq += 1

    def seal(self, aad: bytes, pt: bytes) -> bytes:
        ct = self._aead.encrypt(self.compute_nonce(self.seq), pt, aad)
        self._increment()
        return ct

    def open(self, aad: bytes, ct: bytes) -> bytes:
        # InvalidTag propagates; the sequence number only advances on success (RFC 9180 5.2).
        pt = self._aead.decrypt(self.compute_nonce(self.seq), ct, aad)
        self._increment()
        return pt


@dataclass(frozen=True)
class Suite:
    kem_id: int
    kdf_id: int
    aead_id: int
    mlkem_encaps: _xwing.MlkemEncaps | None = None

    def __post_init__(self) -> None:
        if self.kdf_id != KDF_HKDF_SHA256 or self.aead_id not in _AEAD_NK:
            raise ValueError("unsupported suite")
        self.kem  # noqa: B018  (raises for an unsupported KEM)

    @property
    def kem(self) -> DHKem | XWingKem:
        if self.kem_id == KEM_MLKEM768_X25519:
            return XWingKem(self.mlkem_encaps)
        return DHKem(self.kem_id)

    @property
    def suite_id(self) -> bytes:
        return b"HPKE" + i2osp(self.kem_id, 2) + i2osp(self.kdf_id, 2) + i2osp(self.aead_id, 2)

    def key_schedule(self, shared_secret: bytes, info: bytes) -> KeySchedule:
        sid = self.suite_id
        psk_id_hash = labeled_extract(sid, b"", b"psk_id_hash", b"")
        info_hash = labeled_extract(sid, b"", b"info_hash", info)
        context = bytes([MODE_BASE]) + psk_id_hash + info_hash
        secret = labeled_extract(sid, shared_secret, b"secret", b"")
        return KeySchedule(
            shared_secret=shared_secret,
            key_schedule_context=context,
            secret=secret,
            key=labeled_expand(sid, secret, b"key", context, _AEAD_NK[self.aead_id]),
            base_nonce=labeled_expand(sid, secret, b"base_nonce", context, _NN),
            exporter_secret=labeled_expand(sid, secret, b"exp", context, _NH),
        )

    def setup_base_s(self, pk_r: bytes, info: bytes, sk_e: bytes) -> tuple[bytes, Context]:
        shared_secret, enc = self.kem.encap(pk_r, sk_e)
        return enc, Context(self.key_schedule(shared_secret, info), self.aead_id)

    def setup_base_r(self, enc: bytes, sk_r: bytes, info: bytes) -> Context:
        return Context(self.key_schedule(self.kem.decap(enc, sk_r), info), self.aead_id)

    def seal(self, pk_r: bytes, info: bytes, aad: bytes, pt: bytes, sk_e: bytes) -> bytes:
        """Single-shot seal; returns enc || ct like cryptography's Suite.encrypt."""
        enc, ctx = self.setup_base_s(pk_r, info, sk_e)
        return enc + ctx.seal(aad, pt)

    def open(self, sk_r: bytes, info: bytes, aad: bytes, enc_ct: bytes) -> bytes:
        n_enc = self.kem.n_enc
        if len(enc_ct) < n_enc + _NT:
            raise ValueError("ciphertext too short")
        ctx = self.setup_base_r(enc_ct[:n_enc], sk_r, info)
        return ctx.open(aad, enc_ct[n_enc:])


# The suites Chuishao uses for key slots: v1, and the post-quantum hybrid v2.
X25519_SHA256_AES256GCM = Suite(KEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_256_GCM)
XWING_SHA256_AES256GCM = Suite(KEM_MLKEM768_X25519, KDF_HKDF_SHA256, AEAD_AES_256_GCM)
