"""The browser crypto module against the RFC 9180 vectors (X25519 and P-256
suites, every intermediate value, all encryptions) and against every value
of the protocol v1 vectors written by the Python implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
RFC_FILE = VECTORS / "hpke-rfc9180-base.json"

RFC_JS = """
async (v) => {
  const H = await import('/static/js/crypto/hpke.js');
  const E = await import('/static/js/crypto/encodings.js');
  const hex = E.bytesToHex, bin = E.hexToBytes;
  const kemId = Number(v.kem_id);
  const suite = {kemId, kdfId: Number(v.kdf_id), aeadId: Number(v.aead_id)};
  const out = {};
  const e = await H.deriveKeyPair(kemId, bin(v.ikmE));
  const r = await H.deriveKeyPair(kemId, bin(v.ikmR));
  out.skEm = hex(e.privateRaw); out.pkEm = hex(e.publicKey);
  out.skRm = hex(r.privateRaw); out.pkRm = hex(r.publicKey);
  const s = await H.setupBaseS(suite, bin(v.pkRm), bin(v.info), {ikmE: bin(v.ikmE)});
  out.enc = hex(s.enc); out.shared_secret = hex(s.sharedSecret);
  out.key_schedule_context = hex(s.keyScheduleContext); out.secret = hex(s.secret);
  out.key = hex(s.key); out.base_nonce = hex(s.baseNonce);
  out.exporter_secret = hex(s.exporterSecret);
  // Receiver side from the raw private key only (pkR is recomputed from it).
  const rc = await H.setupBaseR(suite, bin(v.enc), bin(v.skRm), bin(v.info));
  out.r_shared_secret = hex(rc.sharedSecret); out.r_key = hex(rc.key);
  out.r_base_nonce = hex(rc.baseNonce);
  out.encryptions = [];
  for (const x of v.encryptions) {
    const seq = Number(x.sequence_number);
    const ct = await s.seal(bin(x.aad), bin(x.pt), seq);
    const pt = await rc.open(bin(x.aad), bin(x.ct), seq);
    let tamperedRejected = false;
    const bad = bin(x.ct); bad[0] ^= 1;
    try { await rc.open(bin(x.aad), bad, seq); } catch (err) { tamperedRejected = true; }
    out.encryptions.push({nonce: hex(s.nonce(seq)), ct: hex(ct), pt: hex(pt), tamperedRejected});
  }
  return out;
}
"""


def _rfc_vectors():
    return json.loads(RFC_FILE.read_text())["vectors"]


@pytest.mark.parametrize("vector", _rfc_vectors(), ids=lambda v: v["suite"])
def test_rfc9180_vector(crypto_page, vector):
    got = crypto_page.evaluate(RFC_JS, vector)
    for field in (
        "skEm",
        "pkEm",
        "skRm",
        "pkRm",
        "enc",
        "shared_secret",
        "key_schedule_context",
        "secret",
        "key",
        "base_nonce",
        "exporter_secret",
    ):
        assert got[field] == vector[field], field
    assert got["r_shared_secret"] == vector["shared_secret"]
    assert got["r_key"] == vector["key"]
    assert got["r_base_nonce"] == vector["base_nonce"]
    assert len(vector["encryptions"]) == 6
    assert len(got["encryptions"]) == 6
    for want, have in zip(vector["encryptions"], got["encryptions"], strict=True):
        assert have["nonce"] == want["nonce"]
        assert have["ct"] == want["ct"]
        assert have["pt"] == want["pt"]
        assert have["tamperedRejected"]
