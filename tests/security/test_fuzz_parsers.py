"""The parsers behind the endpoints, fuzzed directly: each either returns a well-formed value
or refuses with its one documented error, whatever it is given. (Photo metadata stripping is
fuzzed in tests/domain/test_metadata.py.)"""

from __future__ import annotations

import base64
import copy
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

import crypto
from service.domain import intake, pow, reportform
from service.domain.rewards import PolicyError, parse_policy
from service.domain.sealing import seal_submission
from service.platform.errors import ChuishaoError
from tests.conftest import fast_settings
from tests.security.fuzzing import ALL_CHARACTERS, FUZZ, edge_text, json_values

SETTINGS = fast_settings(Path("/nonexistent-chuishao-parsers"))
POLICIES = Path(__file__).resolve().parents[2] / "service" / "domain" / "rewards" / "policies"


def _channel() -> dict[str, Any]:
    keys = [crypto.generate_keypair()[1] for _ in range(2)]
    return {"id": "acme", "recipients": [{"key_id": crypto.key_id(k).hex(),
                                          "public_key": crypto.b64u_encode(k)} for k in keys]}


ENVELOPE = seal_submission(_channel(), bytes(32), 1000, {"v": 1, "unit": "u"}, None, []).envelope


# ---------------------------------------------------------------------------- envelopes


def _envelope_or_refusal(data: Any) -> None:
    try:
        envelope = intake.parse_envelope(data, SETTINGS)
    except ChuishaoError as exc:
        assert exc.status in (400, 413) and exc.code in ("invalid", "too_large")
        return
    assert intake.ID.match(envelope.case_id) and intake.HASH.match(envelope.lookup_hash)
    assert all(len(slot.slot) == intake.SLOT_SIZES[slot.suite] for slot in envelope.slots)
    assert sum(item.kind == "report" for item in envelope.items) == 1


@FUZZ
@given(json_values)
def test_parse_envelope_on_any_json(data: Any) -> None:
    _envelope_or_refusal(data)


@FUZZ
@given(st.data())
def test_parse_envelope_on_a_spoiled_envelope(data: st.DataObject) -> None:
    from tests.security.test_fuzz_api import spoil

    spoiled = spoil(data.draw, copy.deepcopy(ENVELOPE))
    _envelope_or_refusal(spoiled)


def test_the_unspoiled_envelope_parses() -> None:
    assert intake.parse_envelope(copy.deepcopy(ENVELOPE), SETTINGS).case_id == ENVELOPE["case_id"]


# ---------------------------------------------------------------------------- receipts


@FUZZ
@given(st.text(ALL_CHARACTERS, max_size=60))
def test_normalize_receipt_on_any_text(text: str) -> None:
    try:
        digits = crypto.normalize_receipt(text)
    except ValueError:
        return
    assert re.fullmatch(r"[0-9]{20}", digits)
    assert crypto.normalize_receipt(digits + crypto.damm_check_digit(digits)) == digits
    assert crypto.normalize_receipt(digits) == digits


@FUZZ
@given(st.text("0123456789", min_size=20, max_size=20),
       st.lists(st.sampled_from([" ", "-", "\u3000", "\u2014", "\t", "\n", "\u00a0", "‐"]),
                min_size=19, max_size=19), st.booleans())
def test_typed_receipts_with_separators_and_wide_digits(digits: str, separators: list[str],
                                                        wide: bool) -> None:
    typed = "".join(d + s for d, s in zip(digits, [*separators, ""], strict=True))
    if wide:
        typed = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in typed)
    assert crypto.normalize_receipt(typed) == digits


# ---------------------------------------------------------------------------- base64url


@FUZZ
@given(st.one_of(edge_text, st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_=+/ \n", max_size=50)))
def test_b64u_decode_is_strict_and_canonical(text: str) -> None:
    try:
        raw = crypto.b64u_decode(text)
    except ValueError:
        return
    assert crypto.b64u_encode(raw) == text  # exactly one text form per value
    assert re.fullmatch(r"[A-Za-z0-9_-]*", text)


@FUZZ
@given(st.binary(max_size=100))
def test_b64u_round_trip_and_padded_forms_refused(data: bytes) -> None:
    text = crypto.b64u_encode(data)
    assert crypto.b64u_decode(text) == data
    padded = base64.urlsafe_b64encode(data).decode()
    if padded != text:
        with pytest.raises(ValueError):
            crypto.b64u_decode(padded)
    standard = base64.b64encode(data).decode().rstrip("=")
    if standard != text:
        with pytest.raises(ValueError):
            crypto.b64u_decode(standard)


# ---------------------------------------------------------------------------- proof of work

PROOF = pow.ProofOfWork("parser-fuzz-secret", 4)


def _valid_stamp() -> str:
    from service.client import solve_pow

    challenge = PROOF.issue()
    return solve_pow(challenge["challenge"], challenge["difficulty"])


STAMP = _valid_stamp()


@FUZZ
@given(st.one_of(edge_text, st.text(max_size=600), st.integers(), st.none(), json_values))
def test_pow_verify_refuses_anything_else(stamp: Any) -> None:
    with pytest.raises(pow.PowInvalid):
        PROOF.verify(stamp)


@FUZZ
@given(st.integers(0, len(STAMP) - 1), st.text(ALL_CHARACTERS, min_size=1, max_size=3))
def test_pow_verify_refuses_a_changed_stamp(position: int, insert: str) -> None:
    changed = STAMP[:position] + insert + STAMP[position + 1:]
    if changed == STAMP:
        return
    try:
        PROOF.verify(changed)
    except pow.PowInvalid:
        return
    # Only another counter that happens to meet the difficulty may pass (2^-4 each).
    challenge, _, counter = changed.rpartition(":")
    assert challenge == STAMP.rpartition(":")[0] and counter.isdigit()


@FUZZ
@given(json_values)
def test_pow_verify_refuses_forged_payloads_signed_with_the_right_key(payload: Any) -> None:
    """Even a signed challenge must have the right shape: a list of a string and two ints
    (no bools, no huge numbers that overflow a date)."""
    from service.client import solve_pow

    serializer = URLSafeSerializer("parser-fuzz-secret", salt=pow.SALT,
                                   signer_kwargs={"digest_method": __import__("hashlib").sha256})
    try:
        challenge = serializer.dumps(payload)
    except (TypeError, ValueError):
        return
    if len(challenge) > 480:
        return
    stamp = solve_pow(challenge, 4)
    try:
        PROOF.verify(stamp)
    except pow.PowInvalid:
        return
    raise AssertionError(f"a forged payload passed: {payload!r}")


# ---------------------------------------------------------------------------- form text

FORBIDDEN = {"Cc", "Cs", "Cf"}


@FUZZ
@given(st.one_of(st.text(ALL_CHARACTERS, max_size=80), json_values),
       st.integers(min_value=0, max_value=100))
def test_clean_text_leaves_nothing_dangerous(value: Any, limit: int) -> None:
    try:
        text = reportform.clean_text(value, limit)
    except ChuishaoError as exc:
        assert exc.code == "invalid"
        return
    assert len(text) <= limit and text == text.strip()
    assert "\r\n" not in text
    for char in text:
        assert char in "\n\t\u200d" or unicodedata.category(char) not in FORBIDDEN, repr(char)
    text.encode("utf-8")  # no lone surrogate survives


# ---------------------------------------------------------------------------- reward policies

SHIPPED = [path.read_text(encoding="utf-8") for path in sorted(POLICIES.glob("*.toml"))]
TOML_VALUES = ["0", "-1", "1e400", "nan", "inf", '""', '"x"', "[]", "{}", "true",
               "2018-02-30", "99999999999999999999", '"\\u0000"', "[[]]", "0.0000001", "'''"]


def _policy_or_refusal(text: str) -> None:
    try:
        policy = parse_policy(text, "fuzz.toml")
    except PolicyError:
        return
    assert policy.rules and policy.id


@FUZZ
@given(st.text(ALL_CHARACTERS, max_size=200))
def test_parse_policy_on_any_text(text: str) -> None:
    _policy_or_refusal(text)


@FUZZ
@given(st.sampled_from(SHIPPED), st.data())
def test_parse_policy_on_a_spoiled_shipped_policy(text: str, data: st.DataObject) -> None:
    lines = text.splitlines()
    assignments = [i for i, line in enumerate(lines) if re.match(r"^\s*[\w.-]+\s*=", line)]
    index = data.draw(st.sampled_from(assignments))
    key = lines[index].split("=", 1)[0]
    action = data.draw(st.sampled_from(["value", "delete", "duplicate", "garbage"]))
    if action == "value":
        lines[index] = key + "= " + data.draw(st.sampled_from(TOML_VALUES) | st.integers(
            -(2**70), 2**70).map(str) | edge_text.map(json.dumps))
    elif action == "delete":
        del lines[index]
    elif action == "duplicate":
        lines.insert(index, lines[index])
    else:
        lines[index] = data.draw(st.text(ALL_CHARACTERS, max_size=30))
    _policy_or_refusal("\n".join(lines))


def test_shipped_policies_parse() -> None:
    assert SHIPPED and all(parse_policy(text) for text in SHIPPED)
