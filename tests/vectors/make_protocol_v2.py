"""Generate tests/vectors/protocol-v2.json: deterministic Chuishao protocol v2 test vectors.

Run from the repository root:  .venv/bin/python tests/vectors/make_protocol_v2.py
v2 changes key slots only (HPKE with MLKEM768-X25519, KEM 0x647A) and adds X-Wing keys for
reviewers, the recovery key and the receipt. Every random value is fixed here; the ML-KEM
encapsulation randomness is fed through kyber-py's FIPS 203 ML-KEM.Encaps_internal, because
neither cryptography nor WebCrypto can take it. The output is byte-for-byte reproducible;
tests/crypto/test_crypto_vectors_v2.py checks that and every value independently.
The specification these values follow is docs/PROTOCOL.md (suite v2).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519
from kyber_py.ml_kem import ML_KEM_768

import crypto
from crypto import _claim, _encoding, _hpke, _receipt, _slots, _xwing

OUTPUT = Path(__file__).with_name("protocol-v2.json")
ITERATIONS = 600_000


def b(data: bytes) -> str:
    return _encoding.b64u_encode(data)


def fixed(label: str, n: int) -> bytes:
    """A fixed 'random' value: SHA-256 in counter mode over a label (any n)."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"chuishao/v2/test-vector/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def mlkem_encaps(ek: bytes, m: bytes) -> tuple[bytes, bytes]:
    ss, ct = ML_KEM_768._encaps_internal(ek, m)
    return bytes(ss), bytes(ct)


def xwing_pair(seed: bytes) -> dict[str, Any]:
    e = _xwing.expand(seed)
    return {
        "seed": seed,
        "mlkem_seed": e.mlkem_seed,
        "x25519_private": e.x25519_private,
        "mlkem_public": e.mlkem_public,
        "x25519_public": e.x25519_public,
        "public": e.public,
        "key_id": crypto.key_id(e.public),
    }


def enc_pair(p: dict[str, Any]) -> dict[str, str]:
    return {k: b(v) for k, v in p.items()}


def hpke_fields(name: str, key: bytes, pk: bytes, info: bytes) -> tuple[bytes, dict[str, Any]]:
    """One deterministic v2 seal under ``info``: the slot and every intermediate value."""
    eseed = fixed(f"eseed/{name}", 64)
    ss_m, ct_m = mlkem_encaps(pk[:1184], eseed[:32])
    suite = _hpke.Suite(_hpke.KEM_MLKEM768_X25519, _hpke.KDF_HKDF_SHA256,
                        _hpke.AEAD_AES_256_GCM, mlkem_encaps)
    enc, ctx = suite.setup_base_s(pk, info, eseed)
    slot = enc + ctx.seal(b"", key)
    assert enc[:1088] == ct_m
    ek = x25519.X25519PrivateKey.from_private_bytes(eseed[32:])
    ss_x = ek.exchange(x25519.X25519PublicKey.from_public_bytes(pk[1184:]))
    s = ctx.schedule
    return slot, {
        "eseed": b(eseed),
        "mlkem_ciphertext": b(ct_m),
        "mlkem_shared_secret": b(ss_m),
        "x25519_ephemeral_public": b(enc[1088:]),
        "x25519_shared_secret": b(ss_x),
        "enc": b(enc),
        "shared_secret": b(s.shared_secret),
        "key_schedule_context": b(s.key_schedule_context),
        "secret": b(s.secret),
        "hpke_key": b(s.key),
        "base_nonce": b(s.base_nonce),
    }


def slot_vector(
    name: str, key: bytes, key_name: str, recipient: str, pair: dict[str, Any],
    case_id: bytes, purpose: str,
) -> dict[str, Any]:
    info = _slots.slot_info(case_id, purpose)
    pk = pair["public"]
    slot, fields = hpke_fields(name, key, pk, info)
    eseed = _encoding.b64u_decode(fields["eseed"])
    assert slot == crypto.seal_key_v2(key, pk, case_id, purpose, eseed=eseed,
                                      mlkem_encaps=mlkem_encaps)
    assert crypto.open_key_v2(slot, pair["seed"], case_id, purpose) == key
    return {
        "name": name,
        "purpose": purpose,
        "sealed_key": key_name,
        "key": b(key),
        "recipient": recipient,
        "recipient_public": b(pk),
        "recipient_seed": b(pair["seed"]),
        "recipient_key_id": b(pair["key_id"]),
        "case_id": b(case_id),
        "info": b(info),
        "aad": "",
        **fields,
        "slot": b(slot),
        "suite": crypto.SUITE_V2,
    }


def claim_slot_vector(name: str, key: bytes, recipient: str, pair: dict[str, Any],
                      reward_id: bytes) -> dict[str, Any]:
    info = _claim.claim_key_info(reward_id)
    pk = pair["public"]
    slot, fields = hpke_fields(name, key, pk, info)
    eseed = _encoding.b64u_decode(fields["eseed"])
    assert slot == crypto.seal_claim_key_v2(key, pk, reward_id, eseed=eseed,
                                            mlkem_encaps=mlkem_encaps)
    assert crypto.open_claim_key_v2(slot, pair["seed"], reward_id) == key
    return {
        "name": name,
        "recipient": recipient,
        "recipient_public": b(pk),
        "recipient_seed": b(pair["seed"]),
        "recipient_key_id": b(pair["key_id"]),
        "reward_id": b(reward_id),
        "info": b(info),
        "aad": "",
        **fields,
        "slot": b(slot),
        "suite": crypto.SUITE_V2,
    }


def claim_vector(recovery: dict[str, Any]) -> dict[str, Any]:
    """Claim-key slots v2 (PROTOCOL 15): to a finance officer's and the recovery X-Wing key,
    and slots that must not open."""
    reward_id = fixed("reward-id", 16)
    claim_key = fixed("claim-key", 32)
    finance = xwing_pair(fixed("finance-a/xwing", 32))
    slots = [claim_slot_vector("claim-to-finance-a", claim_key, "finance-a", finance, reward_id),
             claim_slot_vector("claim-to-recovery", claim_key, "recovery", recovery, reward_id)]
    raw = _encoding.b64u_decode(slots[0]["slot"])

    def flip(pos: int) -> str:
        out = bytearray(raw)
        out[pos] ^= 0x01
        return b(bytes(out))

    def bad(name: str, slot: str, **over: Any) -> dict[str, Any]:
        args = {"suite": crypto.SUITE_V2, "slot": slot, "private": b(finance["seed"]),
                "reward_id": b(reward_id)}
        args.update(over)
        return {"name": name, "op": "open_claim_slot", "expect": "OpenError", "args": args}

    # The same key sealed under a case slot's info for an id of the same bytes.
    case_slot = crypto.seal_key_v2(claim_key, finance["public"], reward_id, "case",
                                   eseed=fixed("eseed/claim-as-case", 64),
                                   mlkem_encaps=mlkem_encaps)
    negative = [
        bad("other-reward-id", slots[0]["slot"], reward_id=b(fixed("other-reward-id", 16))),
        bad("mlkem-ciphertext-byte", flip(0)),
        bad("x25519-ephemeral-byte", flip(1100)),
        bad("ciphertext-byte", flip(1120)),
        bad("tag-byte", flip(1167)),
        bad("truncated", b(raw[:-1])),
        bad("extended", b(raw + b"\x00")),
        bad("v1-length", b(raw[:80])),
        bad("wrong-recipient", slots[0]["slot"], private=b(recovery["seed"])),
        bad("case-slot-as-claim-slot", b(case_slot)),
        bad("v2-slot-under-v1-suite", slots[0]["slot"], suite=crypto.SUITE),
        bad("unknown-suite", slots[0]["slot"], suite="mlkem768x25519-hkdf-sha256-aes128gcm"),
    ]
    return {
        "reward_id": b(reward_id),
        "claim_key": b(claim_key),
        "info_label": "chuishao/v1/claim-key",
        "keys": {"finance-a": enc_pair(finance)},
        "slots": slots,
        "negative": negative,
    }


def build() -> dict[str, Any]:
    case_id = fixed("case-id", 16)
    case_key = fixed("case-key", 32)
    internal_key = fixed("internal-key", 32)
    reviewer_a = xwing_pair(fixed("reviewer-a/xwing", 32))
    recovery = xwing_pair(fixed("recovery/xwing", 32))
    # The same people's X25519 keys: a channel fingerprint covers both kinds.
    reviewer_a_x = crypto.public_key(fixed("reviewer-a/x25519", 32))
    recovery_x = crypto.public_key(fixed("recovery/x25519", 32))

    receipt = "31415926535897932384"
    installation_salt = fixed("installation-salt", 32)
    rk = crypto.derive_receipt(receipt, installation_salt, ITERATIONS)
    seed = rk.private + rk.lookup_secret
    assert _receipt.receipt_xwing_seed(seed) == rk.xwing_seed
    receipt_pair = xwing_pair(rk.xwing_seed)
    assert receipt_pair["public"] == rk.xwing_public

    classical_ids = [crypto.key_id(reviewer_a_x), crypto.key_id(recovery_x)]
    hybrid_ids = [reviewer_a["key_id"], recovery["key_id"]]
    all_ids = classical_ids + hybrid_ids
    slots = [
        slot_vector("case-to-reviewer-a", case_key, "case_key", "reviewer-a", reviewer_a,
                    case_id, "case"),
        slot_vector("case-to-recovery", case_key, "case_key", "recovery", recovery,
                    case_id, "case"),
        slot_vector("case-to-receipt", case_key, "case_key", "receipt", receipt_pair,
                    case_id, "case"),
        slot_vector("internal-to-reviewer-a", internal_key, "internal_key", "reviewer-a",
                    reviewer_a, case_id, "internal"),
    ]
    first = slots[0]
    slot0 = _encoding.b64u_decode(first["slot"])

    def flip(data: bytes, pos: int) -> str:
        out = bytearray(data)
        out[pos] ^= 0x01
        return b(bytes(out))

    def flip_hex(data: bytes, pos: int) -> str:
        out = bytearray(data)
        out[pos] ^= 0x01
        return bytes(out).hex()

    def open_case(name: str, slot: str, **over: Any) -> dict[str, Any]:
        args = {"slot": slot, "seed": first["recipient_seed"], "case_id": first["case_id"],
                "purpose": "case"}
        args.update(over)
        return {"name": name, "op": "open_key_v2", "expect": "OpenError", "args": args}

    other_case = b(fixed("other-case-id", 16))
    negative = [
        open_case("mlkem-ciphertext-byte", flip(slot0, 0)),
        open_case("x25519-ephemeral-byte", flip(slot0, 1100)),
        open_case("ciphertext-byte", flip(slot0, 1120)),
        open_case("tag-byte", flip(slot0, 1167)),
        open_case("truncated", b(slot0[:-1])),
        open_case("extended", b(slot0 + b"\x00")),
        open_case("v1-length", b(slot0[:80])),
        open_case("wrong-case-id", first["slot"], case_id=other_case),
        open_case("wrong-purpose", first["slot"], purpose="internal"),
        open_case("wrong-recipient", first["slot"], seed=b(recovery["seed"])),
        open_case("receipt-seed-for-reviewer-slot", first["slot"], seed=b(rk.xwing_seed)),
        {"name": "v2-slot-under-v1-suite", "op": "open_slot", "expect": "OpenError",
         "args": {"suite": crypto.SUITE, "slot": first["slot"], "private": first["recipient_seed"],
                  "case_id": first["case_id"], "purpose": "case"}},
        {"name": "unknown-suite", "op": "open_slot", "expect": "OpenError",
         "args": {"suite": "mlkem768x25519-hkdf-sha256-aes128gcm", "slot": first["slot"],
                  "private": first["recipient_seed"], "case_id": first["case_id"],
                  "purpose": "case"}},
    ]
    kek = fixed("kek/reviewer-a", 32)
    wrap_nonce = fixed("wrap-nonce/reviewer-a", 12)
    wrapped = crypto.wrap_xwing_seed(kek, reviewer_a["seed"], reviewer_a["key_id"],
                                     rng=lambda n: wrap_nonce[:n])
    wrap_aad = b"chuishao/v2/wrapped-xwing\x00" + reviewer_a["key_id"]

    def unwrap_case(name: str, blob: bytes, **over: Any) -> dict[str, Any]:
        args = {"kek": b(kek), "blob": b(blob), "key_id": b(reviewer_a["key_id"])}
        args.update(over)
        return {"name": name, "op": "unwrap_xwing_seed", "expect": "OpenError", "args": args}

    negative += [
        unwrap_case("wrapped-version", bytes([1]) + wrapped[1:]),
        unwrap_case("wrapped-nonce-byte", bytes.fromhex(flip_hex(wrapped, 1))),
        unwrap_case("wrapped-tag-byte", bytes.fromhex(flip_hex(wrapped, 60))),
        unwrap_case("wrapped-truncated", wrapped[:-1]),
        unwrap_case("wrapped-other-key-id", wrapped, key_id=b(recovery["key_id"])),
        unwrap_case("wrapped-other-kek", wrapped, kek=b(fixed("kek/other", 32))),
    ]
    recovery_text = crypto.encode_recovery_secret(recovery["seed"], "xwing")
    return {
        "description": "Chuishao protocol v2 (post-quantum hybrid key slots) test vectors; "
        "see docs/PROTOCOL.md. Binary values are base64url without padding.",
        "suite": crypto.SUITE_V2,
        "hpke": {"mode": 0, "kem_id": 0x647A, "kdf_id": 1, "aead_id": 2,
                 "suite_id": b(_hpke.XWING_SHA256_AES256GCM.suite_id)},
        "sizes": {"seed": 32, "public": 1216, "enc": 1120, "slot": crypto.SLOT_SIZE_V2},
        "case_id": b(case_id),
        "case_key": b(case_key),
        "internal_key": b(internal_key),
        "keys": {
            "reviewer-a": enc_pair(reviewer_a),
            "recovery": enc_pair(recovery),
            "reviewer-a-x25519": {"public": b(reviewer_a_x), "key_id": b(classical_ids[0])},
            "recovery-x25519": {"public": b(recovery_x), "key_id": b(classical_ids[1])},
        },
        "keyset": {
            "key_ids": [b(k) for k in all_ids],
            "hash_input": b(b"chuishao/v1/keyset\x00" + b"".join(sorted(all_ids))),
            "fingerprint": b(crypto.keyset_fingerprint(all_ids)),
            "fingerprint_short": crypto.format_fingerprint(crypto.keyset_fingerprint(all_ids)),
            "classical_only_fingerprint": b(crypto.keyset_fingerprint(classical_ids)),
        },
        "receipt": {
            "receipt": receipt,
            "installation_salt": b(installation_salt),
            "iterations": ITERATIONS,
            "seed": b(seed),
            "xwing_info": "chuishao/v2/receipt-xwing",
            "xwing_seed": b(rk.xwing_seed),
            "xwing": enc_pair(receipt_pair),
        },
        "wrapped_xwing": {"kek": b(kek), "seed": b(reviewer_a["seed"]),
                          "key_id": b(reviewer_a["key_id"]), "nonce": b(wrap_nonce),
                          "aad": b(wrap_aad), "wrapped": b(wrapped)},
        "recovery_xwing_text": recovery_text,
        "slots": slots,
        "negative": negative,
        "claim": claim_vector(recovery),
        "invalid_input": {
            # The X25519 part's text form where the X-Wing part is asked for.
            "recovery_xwing": [crypto.encode_recovery_secret(recovery["seed"], "x25519")],
        },
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")
