"""Claim-key slots of suite v2 in the browser (real Chromium, WebCrypto MLKEM768-X25519)
against the project's v2 vectors and the Python package (PROTOCOL 15): every intermediate
value of the vectors, the slots that must not open, slots sealed on either side opening on
the other, every byte authenticated, a slot for another reward refused, and the sealing
policy the reporter's page follows."""

from __future__ import annotations

import os

import pytest

import crypto
from tests.browser.test_crypto_xwing import PRELUDE, V2, b, u

pytestmark = pytest.mark.browser

CLAIM = V2["claim"]

CLAIM_PRELUDE = PRELUDE + "const CL = await import('/static/js/crypto/claim.js');\n"


@pytest.fixture(scope="module")
def run(crypto_page):
    def call(body, arg=None):
        return crypto_page.evaluate(f"async (V) => {{ {CLAIM_PRELUDE}\n{body}\n}}", arg)

    return call


@pytest.mark.parametrize("slot", CLAIM["slots"], ids=lambda s: s["name"])
def test_claim_slot_every_intermediate(run, slot):
    got = run(
        """
        const rc = await H.setupBaseR(H.SUITE_XWING_AES256, b(V.enc), b(V.recipient_seed),
                                      b(V.info));
        const sk = await X.importXWingSeed(b(V.recipient_seed));
        const key = await C.openClaimKeyV2(b(V.slot), b(V.recipient_seed), b(V.reward_id));
        const viaSuite = await C.openClaimSlot(V.suite, b(V.slot), sk, hex(b(V.reward_id)));
        return {info: u(E.concat(E.ascii('chuishao/v1/claim-key'), new Uint8Array([0]),
                                 b(V.reward_id))),
                shared_secret: u(rc.sharedSecret), key_schedule_context: u(rc.keyScheduleContext),
                secret: u(rc.secret), hpke_key: u(rc.key), base_nonce: u(rc.baseNonce),
                key: u(key), viaSuite: u(viaSuite),
                recipient_key_id: u(await C.keyId(await X.xwingPublicRaw(sk)))};
        """,
        slot,
    )
    for field in ("info", "shared_secret", "key_schedule_context", "secret", "hpke_key",
                  "base_nonce", "recipient_key_id"):
        assert got[field] == slot[field], field
    assert got["key"] == got["viaSuite"] == CLAIM["claim_key"]


@pytest.mark.parametrize("case", CLAIM["negative"], ids=lambda c: c["name"])
def test_claim_negative(run, case):
    got = run(
        """
        const a = V.args;
        return await outcome(() => C.openClaimSlot(a.suite, b(a.slot), b(a.private),
                                                   b(a.reward_id)));
        """,
        case,
    )
    assert got == "OpenError"


def test_claim_slots_both_ways_and_every_byte(run):
    reward_id, key = os.urandom(16), os.urandom(32)
    seed, public = crypto.generate_xwing_keypair()
    cpriv, cpub = crypto.generate_keypair()
    py_v2 = crypto.seal_claim_key_v2(key, public, reward_id)
    py_v1 = crypto.seal_claim_key(key, cpub, reward_id)
    got = run(
        """
        const sk = await X.importXWingSeed(b(V.seed));
        const slot = await C.sealClaimSlot(C.SUITE_V2, b(V.key), b(V.public), b(V.reward_id));
        const v1 = await C.sealClaimSlot(C.SUITE, b(V.key), b(V.cpub), b(V.reward_id));
        const opened = await C.openClaimSlot(C.SUITE_V2, b(V.py_v2), sk, b(V.reward_id));
        const openedV1 = await C.openClaimSlot(C.SUITE, b(V.py_v1), b(V.cpriv), b(V.reward_id));
        const accepted = [];
        const kinds = new Set();
        for (let i = 0; i < slot.length; i++) {
          const bad = slot.slice(); bad[i] ^= 0x80;
          const r = await outcome(() => C.openClaimKeyV2(bad, sk, b(V.reward_id)));
          kinds.add(r);
          if (r !== 'OpenError') accepted.push(i);
        }
        const other = await outcome(() => C.openClaimKeyV2(slot, sk, b(V.other)));
        const asCase = await outcome(() => C.openKeyV2(slot, sk, b(V.reward_id), 'case'));
        const caseAsClaim = await outcome(async () => C.openClaimKeyV2(
          await C.sealKeyV2(b(V.key), b(V.public), b(V.reward_id)), sk, b(V.reward_id)));
        const short = await outcome(() => C.openClaimKeyV2(slot.subarray(0, 1167), sk,
                                                           b(V.reward_id)));
        const asV1 = await outcome(() => C.openClaimSlot(C.SUITE, slot, sk, b(V.reward_id)));
        const unknown = await outcome(() => C.openClaimSlot('x', slot, sk, b(V.reward_id)));
        return {slot: u(slot), v1: u(v1), opened: u(opened), openedV1: u(openedV1), accepted,
                kinds: [...kinds], other, asCase, caseAsClaim, short, asV1, unknown};
        """,
        {"key": u(key), "public": u(public), "seed": u(seed), "cpub": u(cpub),
         "cpriv": u(cpriv), "reward_id": u(reward_id), "other": u(os.urandom(16)),
         "py_v2": u(py_v2), "py_v1": u(py_v1)},
    )
    assert b(got["opened"]) == b(got["openedV1"]) == key
    assert got["accepted"] == [] and got["kinds"] == ["OpenError"]
    for outcome in ("other", "asCase", "caseAsClaim", "short", "asV1", "unknown"):
        assert got[outcome] == "OpenError", outcome
    raw = b(got["slot"])
    assert len(raw) == crypto.SLOT_SIZE_V2 and len(b(got["v1"])) == crypto.SLOT_SIZE
    assert crypto.open_claim_slot(crypto.SUITE_V2, raw, seed, reward_id) == key
    assert crypto.open_claim_slot(crypto.SUITE, b(got["v1"]), cpriv, reward_id) == key
    with pytest.raises(crypto.OpenError):
        crypto.open_claim_slot(crypto.SUITE_V2, raw, seed, os.urandom(16))
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x80
        with pytest.raises(crypto.OpenError):
            crypto.open_claim_key_v2(bytes(bad), seed, reward_id)


def test_sealing_policy_is_the_one_of_case_slots(run):
    """recipientKey (PROTOCOL 17.7), which the report, the console and the claim all use:
    v2 to an X-Wing key with the hybrid, v1 otherwise; a key id that is not the key's is
    refused before anything is sealed."""
    _, cpub = crypto.generate_keypair()
    _, xpub = crypto.generate_xwing_keypair()
    both = {"key_id": crypto.key_id(cpub).hex(), "public_key": u(cpub),
            "xwing_key_id": crypto.key_id(xpub).hex(), "xwing_public_key": u(xpub)}
    got = run(
        """
        const classical = {key_id: V.key_id, public_key: V.public_key};
        const pick = async (r, hybrid) => {
          const k = await C.recipientKey(r, hybrid);
          return [k.suite, k.keyId, u(k.publicKey)];
        };
        const lying = await outcome(() => C.recipientKey({...V, xwing_key_id: V.key_id}, true));
        let name = '';
        try { await C.recipientKey({...V, key_id: V.xwing_key_id}, false); }
        catch (e) { name = e instanceof C.KeyIdMismatch ? 'KeyIdMismatch' : String(e); }
        return {both: await pick(V, true), noHybrid: await pick(V, false),
                classical: await pick(classical, true), lying, name};
        """,
        both,
    )
    assert got["both"] == [crypto.SUITE_V2, both["xwing_key_id"], u(xpub)]
    assert got["noHybrid"] == got["classical"] == [crypto.SUITE, both["key_id"], u(cpub)]
    assert got["lying"] != "accepted" and got["name"] == "KeyIdMismatch"

