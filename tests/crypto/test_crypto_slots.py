"""Key slots, key ids and fingerprints."""

from __future__ import annotations

import hashlib
import os

import pytest

import crypto
from crypto import OpenError


def test_keypair_and_key_id() -> None:
    private, public = crypto.generate_keypair()
    assert len(private) == len(public) == 32
    assert crypto.public_key(private) == public
    assert crypto.key_id(public) == hashlib.sha256(public).digest()[:16]


def test_injected_rng_is_used() -> None:
    assert crypto.new_key(rng=lambda n: b"\x07" * n) == b"\x07" * 32
    assert crypto.new_id(rng=lambda n: b"\x01" * n) == b"\x01" * 16
    with pytest.raises(ValueError):
        crypto.new_key(rng=lambda n: b"short")


def test_keyset_fingerprint_is_order_independent() -> None:
    ids = [os.urandom(16) for _ in range(4)]
    fp = crypto.keyset_fingerprint(ids)
    assert fp == crypto.keyset_fingerprint(list(reversed(ids)))
    assert fp == hashlib.sha256(b"chuishao/v1/keyset\x00" + b"".join(sorted(ids))).digest()
    assert crypto.keyset_fingerprint(ids[:3]) != fp
    with pytest.raises(ValueError):
        crypto.keyset_fingerprint([ids[0], ids[0]])
    with pytest.raises(ValueError):
        crypto.keyset_fingerprint([b"short"])
    text = crypto.format_fingerprint(fp)
    assert text.replace(" ", "") == fp.hex()[:16] and len(text.split(" ")) == 4


@pytest.mark.parametrize("purpose", ["case", "internal"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_slot_round_trip(purpose: str, deterministic: bool) -> None:
    private, public = crypto.generate_keypair()
    key, case_id = crypto.new_key(), crypto.new_id()
    eph = os.urandom(32) if deterministic else None
    slot = crypto.seal_key(key, public, case_id, purpose, ephemeral=eph)
    assert len(slot) == 80
    assert crypto.open_key(slot, private, case_id, purpose) == key


def test_deterministic_slot_is_reproducible() -> None:
    _, public = crypto.generate_keypair()
    key, case_id, eph = crypto.new_key(), crypto.new_id(), os.urandom(32)
    slot = crypto.seal_key(key, public, case_id, ephemeral=eph)
    assert slot == crypto.seal_key(key, public, case_id, ephemeral=eph)
    assert slot[:32] == crypto.public_key(eph)
    assert crypto.seal_key(key, public, case_id, rng=lambda n: eph) == slot


def test_slot_wrong_context_fails() -> None:
    private, public = crypto.generate_keypair()
    other, _ = crypto.generate_keypair()
    key, case_id = crypto.new_key(), crypto.new_id()
    slot = crypto.seal_key(key, public, case_id)
    for args in [
        (slot, private, case_id, "internal"),
        (slot, private, crypto.new_id(), "case"),
        (slot, other, case_id, "case"),
        (slot[:79], private, case_id, "case"),
        (slot + b"\x00", private, case_id, "case"),
        (slot, private, case_id, "note"),
        (slot, private[:31], case_id, "case"),
        (slot, private, case_id[:15], "case"),
    ]:
        with pytest.raises(OpenError) as info:
            crypto.open_key(*args)
        assert str(info.value) == str(OpenError())
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_seal_key_rejects_bad_input() -> None:
    _, public = crypto.generate_keypair()
    with pytest.raises(ValueError):
        crypto.seal_key(b"short", public, crypto.new_id())
    with pytest.raises(ValueError):
        crypto.seal_key(crypto.new_key(), public, crypto.new_id(), "receipt")
    with pytest.raises(ValueError):
        crypto.seal_key(crypto.new_key(), public, b"\x00" * 15)
