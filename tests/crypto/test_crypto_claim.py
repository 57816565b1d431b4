"""Claim codes and claim-key slots (docs/PROTOCOL.md, reward claims) against the vectors."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import crypto
from crypto._encoding import b64u_decode as d

V: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "protocol-v1.json").read_text(encoding="utf-8"))
C = V["claim"]


def test_code_is_the_truncated_hmac_in_base32() -> None:
    secret, reward_id = d(C["lookup_secret"]), d(C["reward_id"])
    assert d(C["lookup_secret"]) == d(V["receipt"]["lookup_secret"])
    assert d(C["hmac_input"]) == b"chuishao/v1/claim\x00" + reward_id
    mac = hmac.new(secret, d(C["hmac_input"]), hashlib.sha256).digest()
    assert mac == d(C["hmac"])
    import base64

    assert base64.b32encode(mac[:10]).decode() == C["code"]
    assert crypto.derive_claim_code(secret, reward_id) == C["code"]
    assert crypto.format_claim_code(C["code"]) == C["display"]
    assert crypto.claim_code_hash(C["code"]) == d(C["code_hash"])
    assert hashlib.sha256(C["code"].encode()).hexdigest() == C["code_hash_hex"]


def test_typed_variants_normalize_and_bad_ones_are_refused() -> None:
    for text in C["inputs_that_normalize_to_it"]:
        assert crypto.normalize_claim_code(text) == C["code"]
        assert crypto.claim_code_hash(text) == d(C["code_hash"])
    for text in C["invalid_codes"]:
        with pytest.raises(ValueError):
            crypto.normalize_claim_code(text)
    # A receipt is never mistaken for a claim code (20 digits, other length and alphabet).
    with pytest.raises(ValueError):
        crypto.normalize_claim_code(V["receipt"]["receipt"])
    with pytest.raises(TypeError):
        crypto.normalize_claim_code(b"QQ6KA6LGOOF6BU42")  # type: ignore[arg-type]


def test_code_depends_on_reward_and_secret() -> None:
    secret, reward_id = d(C["lookup_secret"]), d(C["reward_id"])
    other = bytes(16)
    assert crypto.derive_claim_code(secret, other) != C["code"]
    assert crypto.derive_claim_code(bytes(32), reward_id) != C["code"]
    with pytest.raises(ValueError):
        crypto.derive_claim_code(secret[:31], reward_id)
    with pytest.raises(ValueError):
        crypto.derive_claim_code(secret, reward_id[:15])


def test_slots_reproduce_and_open() -> None:
    reward_id, key = d(C["reward_id"]), d(C["claim_key"])
    for slot in C["slots"]:
        sealed = crypto.seal_claim_key(key, d(slot["recipient_public"]), reward_id,
                                       ephemeral=d(slot["ephemeral_private"]))
        assert sealed == d(slot["slot"])
        assert d(slot["info"]) == b"chuishao/v1/claim-key\x00" + reward_id
        assert crypto.open_claim_key(sealed, d(slot["recipient_private"]), reward_id) == key
    # Random ephemeral (cryptography's HPKE) opens the same way.
    finance = C["keys"]["finance-a"]
    fresh = crypto.seal_claim_key(key, d(finance["public"]), reward_id)
    assert crypto.open_claim_key(fresh, d(finance["private"]), reward_id) == key


def test_negative_slots_and_confusion_with_case_slots() -> None:
    for case in C["negative"]:
        with pytest.raises(crypto.OpenError):
            crypto.open_claim_key(d(case["slot"]), d(case["private"]), d(case["reward_id"]))
    reward_id, key = d(C["reward_id"]), d(C["claim_key"])
    finance = C["keys"]["finance-a"]
    slot = crypto.seal_claim_key(key, d(finance["public"]), reward_id)
    # A claim slot is not a case slot for an id of the same bytes, and vice versa.
    with pytest.raises(crypto.OpenError):
        crypto.open_key(slot, d(finance["private"]), reward_id)
    case_slot = crypto.seal_key(key, d(finance["public"]), reward_id)
    with pytest.raises(crypto.OpenError):
        crypto.open_claim_key(case_slot, d(finance["private"]), reward_id)
    with pytest.raises(crypto.OpenError):
        crypto.open_claim_key(slot[:-1], d(finance["private"]), reward_id)


def test_claim_item_is_an_ordinary_item_under_the_claim_key() -> None:
    item = C["item"]
    opened = crypto.open_item(d(item["key"]), d(C["reward_id"]), d(item["item_id"]), "claim",
                              d(item["wire"]))
    assert opened == item["object"]
    with pytest.raises(crypto.OpenError):
        crypto.open_item(d(item["key"]), d(V["case"]["case_id"]), d(item["item_id"]), "claim",
                         d(item["wire"]))


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=16, max_size=16))
def test_every_code_formats_and_parses(secret: bytes, reward_id: bytes) -> None:
    code = crypto.derive_claim_code(secret, reward_id)
    assert len(code) == 16
    assert crypto.normalize_claim_code(crypto.format_claim_code(code).lower()) == code
