"""Suite v2 in the browser (real Chromium, WebCrypto MLKEM768-X25519) against the published
HPKE vectors for KEM 0x647A, the project's v2 vectors and the Python package: decapsulation
with the vector's private key and every value the vectors give, slots sealed on either side
opening on the other, and every byte of a slot authenticated on both sides."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

import crypto
from tests.hpke_pq import hkdf_sha256_vector, xwing_vectors

pytestmark = pytest.mark.browser

V2 = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "protocol-v2.json").read_text())

PRELUDE = """
const C = await import('/static/js/crypto/index.js');
const E = await import('/static/js/crypto/encodings.js');
const H = await import('/static/js/crypto/hpke.js');
const S = await import('/static/js/crypto/slots.js');
const K = await import('/static/js/crypto/keys.js');
const R = await import('/static/js/crypto/receipt.js');
const X = await import('/static/js/crypto/xwing.js');
const b = E.b64uDecode, u = E.b64uEncode, hex = E.bytesToHex, bin = E.hexToBytes;
async function outcome(fn) {
  try { await fn(); } catch (e) { return e instanceof C.OpenError ? 'OpenError' : String(e); }
  return 'accepted';
}
"""


def u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def run(crypto_page):
    def call(body, arg=None):
        return crypto_page.evaluate(f"async (V) => {{ {PRELUDE}\n{body}\n}}", arg)

    return call


def test_hybrid_is_detected(run):
    assert run("return await C.supportsHybrid();") is True


@pytest.mark.parametrize("v", xwing_vectors(), ids=lambda v: f"kdf{v['kdf_id']}")
def test_published_vector_key_pair_and_decapsulation(run, v):
    got = run(
        """
        const sk = await X.importXWingSeed(bin(V.skRm));
        return {pk: hex(await X.xwingPublicRaw(sk)),
                ss: hex(await X.xwingDecap(sk, bin(V.enc))),
                ssRaw: hex(await X.xwingDecap(bin(V.skRm), bin(V.enc)))};
        """,
        v,
    )
    assert got["pk"] == v["pkRm"]
    assert got["ss"] == got["ssRaw"] == v["shared_secret"]


def test_published_vector_key_schedule_and_every_encryption(run):
    v = hkdf_sha256_vector()
    got = run(
        """
        const suite = {kemId: Number(V.kem_id), kdfId: Number(V.kdf_id), aeadId: Number(V.aead_id)};
        const sid = H.hpkeSuiteId(suite.kemId, suite.kdfId, suite.aeadId);
        const rc = await H.setupBaseR(suite, bin(V.enc), bin(V.skRm), bin(V.info));
        const out = {suite_id: hex(sid), shared_secret: hex(rc.sharedSecret), key: hex(rc.key),
                     base_nonce: hex(rc.baseNonce), exporter_secret: hex(rc.exporterSecret),
                     encryptions: []};
        // The sender side cannot replay ikmE in WebCrypto: it must refuse, not ignore it.
        out.derandRefused = await outcome(() => H.setupBaseS(suite, bin(V.pkRm), bin(V.info),
                                                             {ikmE: bin(V.ikmE)}));
        for (let seq = 0; seq < V.encryptions.length; seq++) {
          const x = V.encryptions[seq];
          const pt = await rc.open(bin(x.aad), bin(x.ct), seq);
          const ct = await rc.seal(bin(x.aad), bin(x.pt), seq);
          const bad = bin(x.ct); bad[bad.length - 1] ^= 1;
          const rejected = await outcome(() => rc.open(bin(x.aad), bad, seq));
          out.encryptions.push({nonce: hex(rc.nonce(seq)), pt: hex(pt), ct: hex(ct), rejected});
        }
        return out;
        """,
        v,
    )
    for field in ("suite_id", "shared_secret", "key", "base_nonce", "exporter_secret"):
        assert got[field] == v[field], field
    assert "deterministic" in got["derandRefused"]
    assert len(got["encryptions"]) == len(v["encryptions"]) == 10
    for want, have in zip(v["encryptions"], got["encryptions"], strict=True):
        assert have["nonce"] == want["nonce"]
        assert have["pt"] == want["pt"] and have["ct"] == want["ct"]
        assert have["rejected"] != "accepted"


def test_project_v2_keys_fingerprint_receipt_and_recovery(run):
    got = run(
        """
        const out = {keys: {}};
        for (const name of ['reviewer-a', 'recovery']) {
          const k = V.keys[name];
          const pk = await X.xwingPublicRaw(b(k.seed));
          out.keys[name] = {public: u(pk), key_id: u(await C.keyId(pk))};
        }
        const ids = V.keyset.key_ids.map(b);
        out.fingerprint = u(await C.keysetFingerprint(ids));
        out.hashInput = u(K.keysetHashInput(ids));
        const r = V.receipt;
        const rk = await C.deriveReceipt(r.receipt, b(r.installation_salt), r.iterations,
                                         {exposeXWingSeed: true});
        out.receipt = {xwing_seed: u(rk.xwingSeed), xwing_public: u(rk.xwingPublic),
                       key_id: u(await C.keyId(rk.xwingPublic))};
        const plain = await C.deriveReceipt(r.receipt, b(r.installation_salt), r.iterations);
        out.seedHidden = plain.xwingSeed === undefined && plain.xwingPrivateKey.extractable === false;
        const off = await C.deriveReceipt(r.receipt, b(r.installation_salt), r.iterations,
                                          {hybrid: false});
        out.offNull = off.xwingPrivateKey === null && off.xwingPublic === null;
        out.recovery = u(await C.decodeRecoverySecret(V.recovery_xwing_text, 'xwing'));
        out.recoveryText = await C.encodeRecoverySecret(b(V.keys.recovery.seed), 'xwing');
        out.recoveryAsX25519 = await outcome(() => C.decodeRecoverySecret(V.recovery_xwing_text));
        out.x25519AsXwing = await outcome(() => C.decodeRecoverySecret(
            V.invalid_input.recovery_xwing[0], 'xwing'));
        return out;
        """,
        V2,
    )
    for name in ("reviewer-a", "recovery"):
        assert got["keys"][name]["public"] == V2["keys"][name]["public"]
        assert got["keys"][name]["key_id"] == V2["keys"][name]["key_id"]
    assert got["fingerprint"] == V2["keyset"]["fingerprint"]
    assert got["hashInput"] == V2["keyset"]["hash_input"]
    assert got["receipt"]["xwing_seed"] == V2["receipt"]["xwing_seed"]
    assert got["receipt"]["xwing_public"] == V2["receipt"]["xwing"]["public"]
    assert got["receipt"]["key_id"] == V2["receipt"]["xwing"]["key_id"]
    assert got["seedHidden"] and got["offNull"]
    assert got["recovery"] == V2["keys"]["recovery"]["seed"]
    assert got["recoveryText"] == V2["recovery_xwing_text"]
    assert "RecoveryError" in got["recoveryAsX25519"] or "recovery" in got["recoveryAsX25519"]
    assert got["x25519AsXwing"] != "accepted"


@pytest.mark.parametrize("slot", V2["slots"], ids=lambda s: s["name"])
def test_project_v2_slot_every_intermediate(run, slot):
    got = run(
        """
        const suite = H.SUITE_XWING_AES256;
        const rc = await H.setupBaseR(suite, b(V.enc), b(V.recipient_seed), b(V.info));
        const key = await C.openKeyV2(b(V.slot), b(V.recipient_seed), b(V.case_id), V.purpose);
        const viaSuite = await C.openSlot(V.suite, b(V.slot), b(V.recipient_seed), hex(b(V.case_id)),
                                          V.purpose);
        return {info: u(S.slotInfo(b(V.case_id), V.purpose)), shared_secret: u(rc.sharedSecret),
                key_schedule_context: u(rc.keyScheduleContext), secret: u(rc.secret),
                hpke_key: u(rc.key), base_nonce: u(rc.baseNonce), key: u(key),
                viaSuite: u(viaSuite)};
        """,
        slot,
    )
    for field in ("info", "shared_secret", "key_schedule_context", "secret", "hpke_key",
                  "base_nonce", "key"):
        assert got[field] == slot[field], field
    assert got["viaSuite"] == slot["key"]


@pytest.mark.parametrize("case", V2["negative"], ids=lambda c: c["name"])
def test_project_v2_negative(run, case):
    got = run(
        """
        const a = V.args;
        if (V.op === 'unwrap_xwing_seed') {
          return await outcome(() => C.unwrapXWingSeed(b(a.kek), b(a.blob), b(a.key_id)));
        }
        if (V.op === 'open_key_v2') {
          return await outcome(() => C.openKeyV2(b(a.slot), b(a.seed), b(a.case_id), a.purpose));
        }
        return await outcome(() => C.openSlot(a.suite, b(a.slot), b(a.private), b(a.case_id),
                                              a.purpose));
        """,
        case,
    )
    assert got == "OpenError"


def test_wrapped_xwing_seed_both_ways(run):
    w = V2["wrapped_xwing"]
    slot = V2["slots"][0]
    assert slot["recipient_seed"] == w["seed"]
    kek = os.urandom(32)
    seed, public = crypto.generate_xwing_keypair()
    kid = crypto.key_id(public)
    py_blob = crypto.wrap_xwing_seed(kek, seed, kid)
    got = run(
        """
        const w = V.w;
        const mine = await C.wrapXWingSeed(b(w.kek), b(w.seed), b(w.key_id), {nonce: b(w.nonce)});
        const sk = await C.unwrapXWingSeed(b(w.kek), b(w.wrapped), b(w.key_id));
        const opened = await C.openKeyV2(b(V.slot.slot), sk, b(V.slot.case_id), V.slot.purpose);
        const py = await C.unwrapXWingSeed(b(V.kek), b(V.py), b(V.kid));
        const fresh = await C.generateXWing(true);
        const freshId = await C.keyId(fresh.publicKey);
        const blob = await C.wrapXWingSeed(b(V.kek), fresh.seed, freshId);
        const wrongId = await outcome(() => C.wrapXWingSeed(b(V.kek), fresh.seed, b(V.kid)));
        return {mine: u(mine), opened: u(opened), extractable: sk.extractable || py.extractable,
                pyPublic: u(await C.xwingPublicRaw(py)), blob: u(blob), freshId: u(freshId),
                freshSeed: u(fresh.seed), wrongId};
        """,
        {"w": w, "slot": slot, "kek": u(kek), "py": u(py_blob), "kid": u(kid)},
    )
    assert got["mine"] == w["wrapped"]
    assert got["opened"] == slot["key"]
    assert got["extractable"] is False
    assert b(got["pyPublic"]) == public
    assert crypto.unwrap_xwing_seed(kek, b(got["blob"]), b(got["freshId"])) == b(got["freshSeed"])
    assert got["wrongId"] != "accepted"


def test_browser_seals_python_opens_and_back(run):
    case_id, key = os.urandom(16), os.urandom(32)
    seed, public = crypto.generate_xwing_keypair()
    py_slot = crypto.seal_key_v2(key, public, case_id, "internal")
    got = run(
        """
        const slot = await C.sealKeyV2(b(V.key), b(V.public), b(V.case_id), 'internal');
        const again = await C.sealSlot(C.SUITE_V2, b(V.key), b(V.public), b(V.case_id), 'internal');
        const opened = await C.openKeyV2(b(V.py), b(V.seed), b(V.case_id), 'internal');
        // A browser-made key pair: Python must open what the browser seals to it.
        const kp = await C.generateXWing(true);
        const own = await C.sealKeyV2(b(V.key), kp.publicKey, b(V.case_id), 'case');
        return {slot: u(slot), again: u(again), opened: u(opened), seed: u(kp.seed),
                public: u(kp.publicKey), own: u(own),
                pubFromSeed: u(await X.xwingPublicRaw(kp.seed))};
        """,
        {"key": u(key), "public": u(public), "case_id": u(case_id), "py": u(py_slot),
         "seed": u(seed)},
    )
    assert b(got["opened"]) == key
    assert len(b(got["slot"])) == crypto.SLOT_SIZE_V2 and got["slot"] != got["again"]
    assert crypto.open_key_v2(b(got["slot"]), seed, case_id, "internal") == key
    assert crypto.open_slot(crypto.SUITE_V2, b(got["again"]), seed, case_id, "internal") == key
    assert crypto.xwing_public_key(b(got["seed"])) == b(got["public"]) == b(got["pubFromSeed"])
    assert crypto.open_key_v2(b(got["own"]), b(got["seed"]), case_id, "case") == key
    with pytest.raises(crypto.OpenError):
        crypto.open_key_v2(b(got["slot"]), seed, case_id, "case")


def test_every_byte_of_a_browser_slot_is_authenticated_on_both_sides(run):
    case_id, key = os.urandom(16), os.urandom(32)
    seed, public = crypto.generate_xwing_keypair()
    got = run(
        """
        const slot = await C.sealKeyV2(b(V.key), b(V.public), b(V.case_id));
        const sk = await X.importXWingSeed(b(V.seed));
        const accepted = [];
        for (let i = 0; i < slot.length; i++) {
          const bad = slot.slice(); bad[i] ^= 0x80;
          if ((await outcome(() => C.openKeyV2(bad, sk, b(V.case_id)))) !== 'OpenError') {
            accepted.push(i);
          }
        }
        const short = await outcome(() => C.openKeyV2(slot.subarray(0, 1167), sk, b(V.case_id)));
        const long = await outcome(() => C.openKeyV2(E.concat(slot, new Uint8Array(1)), sk,
                                                     b(V.case_id)));
        const asV1 = await outcome(() => C.openSlot(C.SUITE, slot, sk, b(V.case_id)));
        const unknown = await outcome(() => C.openSlot('x', slot, sk, b(V.case_id)));
        return {slot: u(slot), accepted, short, long, asV1, unknown};
        """,
        {"key": u(key), "public": u(public), "case_id": u(case_id), "seed": u(seed)},
    )
    assert got["accepted"] == []
    assert got["short"] == got["long"] == got["asV1"] == got["unknown"] == "OpenError"
    raw = b(got["slot"])
    assert crypto.open_key_v2(raw, seed, case_id) == key
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x80
        with pytest.raises(crypto.OpenError):
            crypto.open_key_v2(bytes(bad), seed, case_id)


def test_v1_slots_still_open_next_to_v2(run):
    """A case holding both suites for one key, as while keys migrate."""
    case_id, key = os.urandom(16), os.urandom(32)
    cpriv, cpub = crypto.generate_keypair()
    xseed, xpub = crypto.generate_xwing_keypair()
    slots = {crypto.SUITE: crypto.seal_key(key, cpub, case_id),
             crypto.SUITE_V2: crypto.seal_key_v2(key, xpub, case_id)}
    got = run(
        """
        const v1 = await C.openSlot(C.SUITE, b(V.v1), b(V.cpriv), b(V.case_id));
        const v2 = await C.openSlot(C.SUITE_V2, b(V.v2), b(V.xseed), b(V.case_id));
        const crossed = await outcome(() => C.openSlot(C.SUITE_V2, b(V.v1), b(V.xseed),
                                                       b(V.case_id)));
        return {v1: u(v1), v2: u(v2), crossed};
        """,
        {"v1": u(slots[crypto.SUITE]), "v2": u(slots[crypto.SUITE_V2]), "cpriv": u(cpriv),
         "xseed": u(xseed), "case_id": u(case_id)},
    )
    assert b(got["v1"]) == b(got["v2"]) == key
    assert got["crossed"] == "OpenError"


HIDE_HYBRID = """
(() => {
  const gen = SubtleCrypto.prototype.generateKey;
  SubtleCrypto.prototype.generateKey = function (alg, ...rest) {
    const name = typeof alg === 'string' ? alg : alg && alg.name;
    if (String(name).toUpperCase() === 'MLKEM768-X25519') {
      return Promise.reject(new DOMException('not supported', 'NotSupportedError'));
    }
    return gen.call(this, alg, ...rest);
  };
  SubtleCrypto.supports = () => false;
})();
"""


def test_hybrid_unavailable_is_detected_and_receipt_still_derives(browser_context, static_server):
    """A browser without MLKEM768-X25519: detection says so, v1 still works."""
    page = browser_context.new_page()
    try:
        page.add_init_script(HIDE_HYBRID)
        page.goto(static_server + "/")
        r = V2["receipt"]
        got = page.evaluate(
            f"async (V) => {{ {PRELUDE}\n"
            """
            const hybrid = await C.supportsHybrid();
            const rk = await C.deriveReceipt(V.receipt, b(V.installation_salt), 1000,
                                             {hybrid});
            const kp = await C.generateKeyPair();
            const slot = await C.sealKey(new Uint8Array(32), kp.publicKey, new Uint8Array(16));
            return {hybrid, xwingPublic: rk.xwingPublic, slotLength: slot.length};
            }""",
            r,
        )
    finally:
        page.close()
    assert got == {"hybrid": False, "xwingPublic": None, "slotLength": 80}
