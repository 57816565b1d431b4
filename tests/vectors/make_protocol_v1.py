"""Generate tests/vectors/protocol-v1.json: deterministic Chuishao protocol v1 test vectors.

Run from the repository root:  .venv/bin/python tests/vectors/make_protocol_v1.py
Every random value (keys, ids, nonces, ephemeral keys, salts, receipt bytes) is fixed here, so
the output is byte-for-byte reproducible; tests/crypto/test_crypto_vectors.py checks that.
The specification these values follow is docs/PROTOCOL.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crypto
from crypto import _claim, _encoding, _files, _hpke, _items, _password, _receipt, _slots

OUTPUT = Path(__file__).with_name("protocol-v1.json")
ITERATIONS = 600_000  # the production PBKDF2 count for receipts and passwords
CONTENT_RULE = "byte i of the content is i mod 251"


def b(data: bytes) -> str:
    return _encoding.b64u_encode(data)


def fixed(label: str, n: int) -> bytes:
    """A fixed 'random' value: SHA-256 in counter mode over a label (any n)."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"chuishao/v1/test-vector/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def rng_of(data: bytes) -> Callable[[int], bytes]:
    """An rng that hands out `data` in order and fails if asked for more."""
    stream = bytearray(data)

    def rng(n: int) -> bytes:
        if n > len(stream):
            raise AssertionError("vector rng exhausted")
        out = bytes(stream[:n])
        del stream[:n]
        return out

    return rng


def file_content(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def keypair(label: str) -> dict[str, Any]:
    private = fixed(label, 32)
    public = crypto.public_key(private)
    return {"private": private, "public": public, "key_id": crypto.key_id(public)}


def enc_key(k: dict[str, Any]) -> dict[str, str]:
    return {"private": b(k["private"]), "public": b(k["public"]), "key_id": b(k["key_id"])}


def slot_vector(
    name: str, key: bytes, key_name: str, recipient: str, pair: dict[str, Any],
    case_id: bytes, purpose: str,
) -> dict[str, Any]:
    ephemeral = fixed(f"ephemeral/{name}", 32)
    info = _slots.slot_info(case_id, purpose)
    enc, ctx = _hpke.X25519_SHA256_AES256GCM.setup_base_s(pair["public"], info, ephemeral)
    slot = enc + ctx.seal(b"", key)
    assert slot == crypto.seal_key(key, pair["public"], case_id, purpose, ephemeral=ephemeral)
    assert crypto.open_key(slot, pair["private"], case_id, purpose) == key
    s = ctx.schedule
    return {
        "name": name,
        "purpose": purpose,
        "sealed_key": key_name,
        "key": b(key),
        "recipient": recipient,
        "recipient_public": b(pair["public"]),
        "recipient_private": b(pair["private"]),
        "recipient_key_id": b(pair["key_id"]),
        "case_id": b(case_id),
        "info": b(info),
        "aad": "",
        "ephemeral_private": b(ephemeral),
        "enc": b(enc),
        "shared_secret": b(s.shared_secret),
        "key_schedule_context": b(s.key_schedule_context),
        "secret": b(s.secret),
        "hpke_key": b(s.key),
        "base_nonce": b(s.base_nonce),
        "slot": b(slot),
        "suite": crypto.SUITE,
    }


def item_vector(
    name: str, key: bytes, key_name: str, case_id: bytes, kind: str, obj: dict[str, Any]
) -> dict[str, Any]:
    item_id = fixed(f"item-id/{name}", 16)
    nonce = fixed(f"item-nonce/{name}", 12)
    body = _items.encode_json(obj)
    padded = _items.pad(body, _items.MIN_PADDED)
    subkey = _items.item_subkey(key, kind)
    aad = _items.item_aad(case_id, item_id, kind)
    wire = crypto.seal_item(key, case_id, item_id, kind, obj, rng=rng_of(nonce))
    assert crypto.open_item(key, case_id, item_id, kind, wire) == obj
    return {
        "name": name,
        "key_name": key_name,
        "key": b(key),
        "case_id": b(case_id),
        "item_id": b(item_id),
        "item_id_hex": item_id.hex(),
        "kind": kind,
        "object": obj,
        "json_text": body.decode("utf-8"),
        "json_utf8": b(body),
        "json_length": len(body),
        "padded_length": len(padded),
        "padded": b(padded),
        "subkey_info": b(b"chuishao/v1/item/" + kind.encode()),
        "subkey": b(subkey),
        "aad": b(aad),
        "nonce": b(nonce),
        "ciphertext": b(wire[13:]),
        "wire": b(wire),
    }


def file_vector(name: str, file_key: bytes, case_id: bytes, size: int) -> dict[str, Any]:
    file_id = fixed(f"file-id/{name}", 16)
    prefix = fixed(f"file-prefix/{name}", 7)
    content = file_content(size)
    # Feed the source in odd pieces: the output must not depend on the input chunking.
    source = [content[i : i + 10_007] for i in range(0, size, 10_007)]
    stored = list(crypto.seal_file(file_key, prefix, case_id, file_id, source, size))
    assert b"".join(crypto.open_file(file_key, prefix, case_id, file_id, stored, size)) == content
    padded, count = _files.layout(size)
    stream = content + b"\x80" + bytes(padded - size - 1)
    chunks = []
    for index, chunk in enumerate(stored):
        plain = stream[index * crypto.CHUNK_SIZE : (index + 1) * crypto.CHUNK_SIZE]
        last = index == count - 1
        chunks.append(
            {
                "index": index,
                "last": last,
                "nonce": b(_files.chunk_nonce(prefix, index, last)),
                "plaintext_length": len(plain),
                "plaintext_sha256": b(hashlib.sha256(plain).digest()),
                "stored_length": len(chunk),
                "stored": b(chunk),
            }
        )
    out: dict[str, Any] = {
        "name": name,
        "file_key": b(file_key),
        "nonce_prefix": b(prefix),
        "case_id": b(case_id),
        "file_id": b(file_id),
        "size": size,
        "content_rule": CONTENT_RULE,
        "content_sha256": b(hashlib.sha256(content).digest()),
        "padded_length": padded,
        "chunk_count": count,
        "chunk_key": b(_files.chunk_key(file_key)),
        "aad": b(_files.file_aad(case_id, file_id)),
        "chunks": chunks,
    }
    if size <= 1024:
        out["content"] = b(content)
    return out


def raw_item(key: bytes, case_id: bytes, item_id: bytes, kind: str, padded: bytes) -> bytes:
    """An item whose plaintext is given as is, to publish padding and JSON failures."""
    nonce = fixed(f"raw-item/{padded[:8].hex()}/{len(padded)}", 12)
    subkey = _items.item_subkey(key, kind)
    aad = _items.item_aad(case_id, item_id, kind)
    return b"\x01" + nonce + _files.AESGCM(subkey).encrypt(nonce, padded, aad)


def claim_slot_vector(name: str, key: bytes, pair: dict[str, Any],
                      reward_id: bytes) -> dict[str, Any]:
    ephemeral = fixed(f"ephemeral/{name}", 32)
    info = _claim.claim_key_info(reward_id)
    enc, ctx = _hpke.X25519_SHA256_AES256GCM.setup_base_s(pair["public"], info, ephemeral)
    slot = enc + ctx.seal(b"", key)
    assert slot == crypto.seal_claim_key(key, pair["public"], reward_id, ephemeral=ephemeral)
    assert crypto.open_claim_key(slot, pair["private"], reward_id) == key
    return {"name": name, "recipient_public": b(pair["public"]),
            "recipient_private": b(pair["private"]), "recipient_key_id": b(pair["key_id"]),
            "info": b(info), "ephemeral_private": b(ephemeral), "enc": b(enc),
            "slot": b(slot)}


def claim_vector(lookup_secret: bytes, recovery: dict[str, Any],
                 reviewer: dict[str, Any]) -> dict[str, Any]:
    reward_id = fixed("reward-id", 16)
    mac_input = b"chuishao/v1/claim\x00" + reward_id
    mac_bytes = hmac.new(lookup_secret, mac_input, hashlib.sha256).digest()
    code = crypto.derive_claim_code(lookup_secret, reward_id)
    display = crypto.format_claim_code(code)
    finance = keypair("finance-a")
    claim_key = fixed("claim-key", 32)
    payload = {"v": 1, "method": "bank", "account": "6222 0200 1234 5678",
               "name": "", "contact": "", "note": "请转账到工资卡"}
    item = item_vector("claim", claim_key, "claim_key", reward_id, "claim", payload)
    wrong = crypto.seal_claim_key(claim_key, finance["public"], reward_id,
                                  ephemeral=fixed("ephemeral/claim-wrong", 32))
    return {
        "reward_id": b(reward_id),
        "reward_id_hex": reward_id.hex(),
        "lookup_secret": b(lookup_secret),
        "hmac_input": b(mac_input),
        "hmac": b(mac_bytes),
        "code": code,
        "display": display,
        "inputs_that_normalize_to_it": [display, display.lower(), display.replace("-", " "),
                                        code.translate({ord(c): ord(c) + 0xFEE0 for c in code})],
        "code_hash": b(crypto.claim_code_hash(code)),
        "code_hash_hex": crypto.claim_code_hash(code).hex(),
        "invalid_codes": ["", code[:15], code + "A", code[:15] + "1", code[:15] + "0",
                          code[:8] + "." + code[8:]],
        "claim_key": b(claim_key),
        "keys": {"finance-a": enc_key(finance)},
        "slots": [claim_slot_vector("claim-to-finance-a", claim_key, finance, reward_id),
                  claim_slot_vector("claim-to-recovery", claim_key, recovery, reward_id)],
        "item": item,
        # Must raise OpenError: the right slot opened with another key, or for another reward.
        "negative": [
            {"name": "claim slot opened with a reviewer's key", "slot": b(wrong),
             "private": b(reviewer["private"]), "reward_id": b(reward_id)},
            {"name": "claim slot opened for another reward", "slot": b(wrong),
             "private": b(finance["private"]), "reward_id": b(fixed("other-reward-id", 16))},
        ],
    }


def build() -> dict[str, Any]:
    case_id = fixed("case-id", 16)
    case_key = fixed("case-key", 32)
    internal_key = fixed("internal-key", 32)
    reviewer_a = keypair("reviewer-a")
    reviewer_b = keypair("reviewer-b")
    recovery = keypair("recovery")

    # Receipt: the random bytes include rejected values (>= 250) on purpose.
    receipt_bytes = bytes([251, 7, 255, 19]) + fixed("receipt-bytes", 28)
    receipt = crypto.new_receipt(rng=rng_of(receipt_bytes))
    installation_salt = fixed("installation-salt", 32)
    rk = crypto.derive_receipt(receipt, installation_salt, ITERATIONS)
    seed = rk.private + rk.lookup_secret
    receipt_pair = {"private": rk.private, "public": rk.public, "key_id": crypto.key_id(rk.public)}

    key_ids = [reviewer_a["key_id"], reviewer_b["key_id"], recovery["key_id"]]
    fingerprint = crypto.keyset_fingerprint(key_ids)

    slots = [
        slot_vector("case-to-reviewer-a", case_key, "case_key", "reviewer-a", reviewer_a,
                    case_id, "case"),
        slot_vector("case-to-reviewer-b", case_key, "case_key", "reviewer-b", reviewer_b,
                    case_id, "case"),
        slot_vector("case-to-recovery", case_key, "case_key", "recovery", recovery,
                    case_id, "case"),
        slot_vector("case-to-receipt", case_key, "case_key", "receipt", receipt_pair,
                    case_id, "case"),
        slot_vector("internal-to-reviewer-a", internal_key, "internal_key", "reviewer-a",
                    reviewer_a, case_id, "internal"),
        slot_vector("internal-to-recovery", internal_key, "internal_key", "recovery",
                    recovery, case_id, "internal"),
    ]

    files = [
        file_vector("three-chunks", fixed("file-key/three-chunks", 32), case_id,
                    2 * crypto.CHUNK_SIZE + 1000),
        file_vector("exactly-one-chunk-of-content", fixed("file-key/64k", 32), case_id,
                    crypto.CHUNK_SIZE),
        file_vector("small", fixed("file-key/small", 32), case_id, 100),
        file_vector("empty", fixed("file-key/empty", 32), case_id, 0),
    ]
    three = files[0]

    # JSON of exactly 271 bytes: with the 0x80 marker it fills padme(272) = 272 exactly.
    at_256 = {"text": "x" * (255 - len('{"text":""}'))}
    boundary = {"text": "x" * (271 - len('{"text":""}'))}
    assert len(_items.encode_json(boundary)) == 271 and crypto.padme(272) == 272
    over = {"text": "x" * (272 - len('{"text":""}'))}
    file_meta = {
        "name": "现场照片.jpg",
        "type": "image/jpeg",
        "size": three["size"],
        "key": three["file_key"],
        "prefix": three["nonce_prefix"],
    }
    items = [
        item_vector("empty-object", case_key, "case_key", case_id, "report", {}),
        item_vector(
            "report-zh-cn", case_key, "case_key", case_id, "report",
            {
                "title": "二号车间配电箱门长期未关闭",
                "text": "二号车间东侧配电箱门长期敞开，箱内线路裸露，雨天有积水。"
                "已向班组长反映两次，未整改。",
                "location": "二号车间东侧",
                "when": "2025-03-14",
            },
        ),
        item_vector("padme-boundary-256", case_key, "case_key", case_id, "message", at_256),
        item_vector("padme-boundary-272", case_key, "case_key", case_id, "message", boundary),
        item_vector("padme-boundary-plus-one", case_key, "case_key", case_id, "message", over),
        item_vector("reply", case_key, "case_key", case_id, "reply",
                    {"text": "已受理，请补充照片。", "from": "reviewer"}),
        item_vector("file-meta", case_key, "case_key", case_id, "file-meta", file_meta),
        item_vector("note-internal-key", internal_key, "internal_key", case_id, "note",
                    {"text": "内部备注：与 2025-0012 号案件重复。"}),
    ]
    report = items[1]
    note = next(i for i in items if i["kind"] == "note")

    # Reviewer password.
    password_input = unicodedata.normalize("NFD", "安全第一 Pässwörd-2025")
    user_salt = fixed("user-salt", 16)
    pk = crypto.derive_password(password_input, user_salt, ITERATIONS)
    wrap_nonce = fixed("wrap-nonce", 12)
    wrapped = crypto.wrap_private_key(pk.kek, reviewer_a["private"], reviewer_a["key_id"],
                                      rng=rng_of(wrap_nonce))
    assert crypto.unwrap_private_key(pk.kek, wrapped, reviewer_a["key_id"]) == reviewer_a["private"]
    scrypt_salt = fixed("scrypt-salt", 16)
    stored_hash = crypto.hash_auth_secret(pk.auth_secret, rng=rng_of(scrypt_salt))
    assert crypto.verify_auth_secret(pk.auth_secret, stored_hash)

    signing_private = fixed("signing-key", 32)
    _, signing_public = crypto.generate_signing_key(rng=rng_of(signing_private))
    message = json.dumps(
        {"file": "ledger-2025-03.xlsx", "sha256": b(hashlib.sha256(b"ledger").digest()),
         "chain_head": b(fixed("chain-head", 32)), "time": "2025-03-31T08:00:00+08:00"},
        separators=(",", ":"),
    ).encode()
    signature = crypto.sign(signing_private, message)
    assert crypto.verify_signature(signing_public, message, signature)

    recovery_text = crypto.encode_recovery_secret(recovery["private"])

    def tampered(data: bytes, pos: int) -> bytes:
        return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]

    slot_a = _encoding.b64u_decode(slots[0]["slot"])
    report_wire = _encoding.b64u_decode(report["wire"])
    report_item_id = _encoding.b64u_decode(report["item_id"])
    a_case = {"private": b(reviewer_a["private"]), "case_id": b(case_id)}
    report_args = {"key": b(case_key), "case_id": b(case_id), "item_id": report["item_id"],
                   "kind": "report"}
    raw_args = dict(report_args)

    def raw(padded: bytes) -> str:
        return b(raw_item(case_key, case_id, report_item_id, "report", padded))

    negative: list[dict[str, Any]] = [
        {"name": "slot: one ciphertext byte flipped", "op": "open_key",
         "args": {**a_case, "slot": b(tampered(slot_a, 50)), "purpose": "case"}},
        {"name": "slot: enc byte flipped", "op": "open_key",
         "args": {**a_case, "slot": b(tampered(slot_a, 3)), "purpose": "case"}},
        {"name": "slot: case slot opened as internal", "op": "open_key",
         "args": {**a_case, "slot": b(slot_a), "purpose": "internal"}},
        {"name": "slot: wrong case_id", "op": "open_key",
         "args": {**a_case, "slot": b(slot_a), "purpose": "case",
                  "case_id": b(fixed("other-case", 16))}},
        {"name": "slot: truncated to 79 bytes", "op": "open_key",
         "args": {**a_case, "slot": b(slot_a[:79]), "purpose": "case"}},
        {"name": "slot: wrong recipient", "op": "open_key",
         "args": {**a_case, "slot": b(slot_a), "purpose": "case",
                  "private": b(reviewer_b["private"])}},
        {"name": "item: one ciphertext byte flipped", "op": "open_item",
         "args": {**report_args, "blob": b(tampered(report_wire, 100))}},
        {"name": "item: tag byte flipped", "op": "open_item",
         "args": {**report_args, "blob": b(tampered(report_wire, len(report_wire) - 1))}},
        {"name": "item: nonce byte flipped", "op": "open_item",
         "args": {**report_args, "blob": b(tampered(report_wire, 5))}},
        {"name": "item: wrong kind", "op": "open_item",
         "args": {**report_args, "kind": "message", "blob": report["wire"]}},
        {"name": "item: wrong item_id", "op": "open_item",
         "args": {**report_args, "item_id": b(fixed("other-item", 16)), "blob": report["wire"]}},
        {"name": "item: wrong case_id", "op": "open_item",
         "args": {**report_args, "case_id": b(fixed("other-case", 16)), "blob": report["wire"]}},
        {"name": "item: version byte 0x02", "op": "open_item",
         "args": {**report_args, "blob": b(b"\x02" + report_wire[1:])}},
        {"name": "item: truncated (last byte dropped)", "op": "open_item",
         "args": {**report_args, "blob": b(report_wire[:-1])}},
        {"name": "item: internal-key note opened with the case key", "op": "open_item",
         "args": {"key": b(case_key), "case_id": b(case_id), "item_id": note["item_id"],
                  "kind": "note", "blob": note["wire"]}},
        {"name": "item padding: no 0x80 marker", "op": "open_item",
         "args": {**raw_args, "blob": raw(b"{}" + bytes(254))}},
        {"name": "item padding: length 264 is not padme(max(3,256))", "op": "open_item",
         "args": {**raw_args, "blob": raw(b"{}\x80" + bytes(261))}},
        {"name": "item padding: non-zero byte after the marker", "op": "open_item",
         "args": {**raw_args, "blob": raw(b"{}\x80\x01" + bytes(252))}},
        {"name": "item: JSON array instead of object", "op": "open_item",
         "args": {**raw_args, "blob": raw(b"[]\x80" + bytes(253))}},
        {"name": "item: invalid UTF-8", "op": "open_item",
         "args": {**raw_args, "blob": raw(b'{"a":"\xff"}\x80' + bytes(245))}},
        {"name": "wrapped key: one byte flipped", "op": "unwrap_private_key",
         "args": {"kek": b(pk.kek), "blob": b(tampered(wrapped, 30)),
                  "key_id": b(reviewer_a["key_id"])}},
        {"name": "wrapped key: wrong key_id", "op": "unwrap_private_key",
         "args": {"kek": b(pk.kek), "blob": b(wrapped), "key_id": b(reviewer_b["key_id"])}},
    ]
    for name, indices, extra in [
        ("file: truncated stream (final chunk missing)", [0, 1], {}),
        ("file: chunks reordered", [1, 0, 2], {}),
        ("file: middle chunk dropped", [0, 2], {}),
        ("file: chunk duplicated", [0, 1, 1, 2], {}),
        ("file: extra chunk after the last", [0, 1, 2, 0], {}),
        ("file: one stored byte flipped", [0, 1, 2], {"tamper": {"chunk": 1, "offset": 1000,
                                                                 "xor": 1}}),
        ("file: final tag byte flipped", [0, 1, 2], {"tamper": {"chunk": 2, "offset": -1,
                                                                "xor": 128}}),
        ("file: size one byte larger", [0, 1, 2], {"size": three["size"] + 1}),
        ("file: size one byte smaller", [0, 1, 2], {"size": three["size"] - 1}),
        ("file: wrong file_id", [0, 1, 2], {"file_id": b(fixed("other-file", 16))}),
        ("file: wrong case_id", [0, 1, 2], {"case_id": b(fixed("other-case", 16))}),
    ]:
        negative.append({"name": name, "op": "open_file", "file": "three-chunks",
                         "chunk_indices": indices, **extra})
    # A single-chunk file whose padding is wrong, though the tag is valid.
    bad_pad_key, bad_pad_prefix = fixed("file-key/bad-pad", 32), fixed("file-prefix/bad-pad", 7)
    bad_pad_id = fixed("file-id/bad-pad", 16)
    bad_plain = file_content(100) + b"\x80" + bytes(2) + b"\x01"  # padme(101) = 104
    bad_chunk = _files.AESGCM(_files.chunk_key(bad_pad_key)).encrypt(
        _files.chunk_nonce(bad_pad_prefix, 0, True), bad_plain, _files.file_aad(case_id, bad_pad_id)
    )
    negative.append({"name": "file padding: non-zero byte after the marker", "op": "open_file",
                     "args": {"file_key": b(bad_pad_key), "nonce_prefix": b(bad_pad_prefix),
                              "case_id": b(case_id), "file_id": b(bad_pad_id), "size": 100,
                              "chunks": [b(bad_chunk)]}})
    for case in negative:
        case["expect"] = "OpenError"

    digits = crypto.normalize_receipt(receipt)
    return {
        "protocol": "chuishao/v1",
        "suite": crypto.SUITE,
        "specification": "docs/PROTOCOL.md",
        "generator": "tests/vectors/make_protocol_v1.py",
        "encoding": (
            "Every binary value is base64url without padding (RFC 4648 section 5), except "
            "fields whose name ends in _hex (lowercase hex). Text values (receipts, passwords, "
            "kinds, JSON text, recovery text, scrypt strings) are JSON strings; sizes and "
            "lengths are JSON numbers."
        ),
        "constants": {
            "chunk_size": crypto.CHUNK_SIZE,
            "item_min_padded": _items.MIN_PADDED,
            "receipt_iterations": ITERATIONS,
            "password_iterations": ITERATIONS,
            "pkcs8_x25519_prefix_hex": _password.PKCS8_X25519_PREFIX.hex(),
        },
        "padme": [[n, crypto.padme(n)] for n in
                  [0, 1, 2, 9, 255, 256, 257, 272, 273, 1000, 65536, 65537, 132073, 1_000_000]],
        "keys": {
            "reviewer-a": enc_key(reviewer_a),
            "reviewer-b": enc_key(reviewer_b),
            "recovery": enc_key(recovery),
            "receipt": enc_key(receipt_pair),
        },
        "keyset": {
            "key_ids": [b(k) for k in key_ids],
            "sorted_key_ids": [b(k) for k in sorted(key_ids)],
            "hash_input": b(b"chuishao/v1/keyset\x00" + b"".join(sorted(key_ids))),
            "fingerprint": b(fingerprint),
            "fingerprint_hex": fingerprint.hex(),
            "display": crypto.format_fingerprint(fingerprint),
        },
        "case": {
            "case_id": b(case_id),
            "case_id_hex": case_id.hex(),
            "case_key": b(case_key),
            "internal_key": b(internal_key),
        },
        "slots": slots,
        "items": items,
        "files": files,
        "receipt": {
            "random_bytes": b(receipt_bytes),
            "receipt": receipt,
            "digits": digits,
            "check_digit": receipt[20],
            "display": crypto.format_receipt(receipt),
            "legacy_display": crypto.format_receipt(digits),
            "inputs_that_normalize_to_it": [
                crypto.format_receipt(receipt),
                "-".join(receipt[i : i + 3] for i in range(0, 21, 3)),
                receipt.translate({ord(c): 0xFF10 + int(c) for c in "0123456789"}),
                "\u3000".join(receipt[i : i + 7] for i in range(0, 21, 7)) + "\n",
                # A receipt given before the check digit: its 20 digits as they are.
                crypto.format_receipt(digits),
                "-".join(digits[i : i + 4] for i in range(0, 20, 4)),
                digits.translate({ord(c): 0xFF10 + int(c) for c in "0123456789"}),
                "\u3000".join(digits[i : i + 5] for i in range(0, 20, 5)) + "\n",
            ],
            "installation_salt": b(installation_salt),
            "pbkdf2_password": b(digits.encode("ascii")),
            "pbkdf2_salt": b(b"chuishao/v1/receipt\x00" + installation_salt),
            "iterations": ITERATIONS,
            "seed": b(seed),
            "private": b(rk.private),
            "public": b(rk.public),
            "key_id": b(receipt_pair["key_id"]),
            "lookup_secret": b(rk.lookup_secret),
            "lookup_hash": b(rk.lookup_hash),
            "lookup_hash_hex": rk.lookup_hash.hex(),
        },
        "password": {
            "password_input": password_input,
            "password_nfc_utf8": b(unicodedata.normalize("NFC", password_input).encode()),
            "user_salt": b(user_salt),
            "pbkdf2_salt": b(b"chuishao/v1/password\x00" + user_salt),
            "iterations": ITERATIONS,
            "master": b(pk.auth_secret + pk.kek),
            "auth_secret": b(pk.auth_secret),
            "kek": b(pk.kek),
            "wrapped_key_owner": "reviewer-a",
            "private": b(reviewer_a["private"]),
            "key_id": b(reviewer_a["key_id"]),
            "pkcs8": b(_password.PKCS8_X25519_PREFIX + reviewer_a["private"]),
            "aad": b(b"chuishao/v1/wrapped-key\x00" + reviewer_a["key_id"]),
            "nonce": b(wrap_nonce),
            "wrapped": b(wrapped),
            "scrypt": {"n": 2**15, "r": 8, "p": 1, "salt": b(scrypt_salt), "hash_length": 32,
                       "stored": stored_hash},
        },
        "recovery": {
            "private": b(recovery["private"]),
            "public": b(recovery["public"]),
            "checksum": b(hashlib.sha256(recovery["private"]).digest()[:2]),
            "text": recovery_text,
            "inputs_that_parse_to_it": [recovery_text.lower(),
                                        recovery_text.replace("-", " "),
                                        recovery_text.replace("-", "")],
        },
        "signature": {
            "algorithm": "Ed25519",
            "private": b(signing_private),
            "public": b(signing_public),
            "message": b(message),
            "signature": b(signature),
        },
        "receipt_check": receipt_check_vector(receipt),
        "claim": claim_vector(rk.lookup_secret, recovery, reviewer_a),
        "negative": negative,
        "invalid_input": {
            "receipts": ["", digits[:19], receipt + "0", digits[:19] + "a", receipt[:20] + "a",
                         "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠", digits[:10] + "." + digits[10:]],
            "recovery_texts": [
                recovery_text[:-1],
                recovery_text + "A",
                ("B" if recovery_text[0] != "B" else "C") + recovery_text[1:],
                recovery_text.replace("-", "_"),
            ],
        },
    }


def receipt_check_vector(receipt: str) -> dict[str, Any]:
    """The Damm check digit: its table, worked examples, and the receipt with every single
    wrong digit and every swap of two different neighbours, each refused as mistyped."""
    single = [receipt[:i] + d + receipt[i + 1 :]
              for i in range(len(receipt)) for d in "0123456789" if d != receipt[i]]
    swapped = [receipt[:i] + receipt[i + 1] + receipt[i] + receipt[i + 2 :]
               for i in range(len(receipt) - 1) if receipt[i] != receipt[i + 1]]
    examples = ["572", "0" * 20, "9" * 20, "12345678901234567890"]
    return {
        "algorithm": "Damm (quasigroup of order 10); the check digit follows the 20 digits",
        "table": [list(row) for row in _receipt.DAMM_TABLE],
        "examples": [[digits, crypto.damm_check_digit(digits)] for digits in examples],
        "mistyped": single + swapped,
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")
