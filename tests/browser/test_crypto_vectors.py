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


# ---------------------------------------------------------------- protocol v1

PROTOCOL_FILE = VECTORS / "protocol-v1.json"

PRELUDE = """
const C = await import('/static/js/crypto/index.js');
const E = await import('/static/js/crypto/encodings.js');
const K = await import('/static/js/crypto/keys.js');
const H = await import('/static/js/crypto/hpke.js');
const S = await import('/static/js/crypto/slots.js');
const I = await import('/static/js/crypto/items.js');
const P = await import('/static/js/crypto/padding.js');
const F = await import('/static/js/crypto/files.js');
const W = await import('/static/js/crypto/password.js');
const R = await import('/static/js/crypto/receipt.js');
const X = await import('/static/js/crypto/primitives.js');
const b = E.b64uDecode, u = E.b64uEncode, hex = E.bytesToHex, ascii = E.ascii;
async function outcome(fn) {
  try { await fn(); } catch (e) { return e instanceof C.OpenError ? 'OpenError' : String(e); }
  return 'accepted';
}
async function drain(gen) {
  const out = [];
  for await (const x of gen) out.push(x);
  return out;
}
"""


@pytest.fixture(scope="module")
def protocol():
    assert PROTOCOL_FILE.exists(), f"{PROTOCOL_FILE} is missing"
    return json.loads(PROTOCOL_FILE.read_text())


@pytest.fixture(scope="module")
def run(crypto_page):
    def call(body, arg=None):
        return crypto_page.evaluate(f"async (V) => {{ {PRELUDE}\n{body}\n}}", arg)

    return call


def test_constants_and_padme(run, protocol):
    got = run(
        """
        return {
          suite: C.SUITE, chunk: C.CHUNK_SIZE, min: P.ITEM_MIN_PADDED,
          receiptIter: R.RECEIPT_ITERATIONS, passwordIter: W.PASSWORD_ITERATIONS,
          prefix: hex(K.PKCS8_X25519_PREFIX),
          padme: V.padme.map(([n]) => C.padme(n)),
        };
        """,
        {"padme": protocol["padme"]},
    )
    c = protocol["constants"]
    assert protocol["protocol"] == "chuishao/v1"
    assert got["suite"] == protocol["suite"]
    assert got["chunk"] == c["chunk_size"]
    assert got["min"] == c["item_min_padded"]
    assert got["receiptIter"] == c["receipt_iterations"]
    assert got["passwordIter"] == c["password_iterations"]
    assert got["prefix"] == c["pkcs8_x25519_prefix_hex"]
    assert got["padme"] == [out for _, out in protocol["padme"]]


def test_keys_and_keyset(run, protocol):
    got = run(
        """
        const keys = {};
        for (const [name, k] of Object.entries(V.keys)) {
          const pub = await C.publicKey(b(k.private));
          keys[name] = {public: u(pub), key_id: u(await C.keyId(pub))};
        }
        const ids = V.keyset.key_ids.map(b);
        const fp = await C.keysetFingerprint(ids);
        return {
          keys,
          hash_input: u(K.keysetHashInput(ids)),
          sorted: u(E.concat(...[...ids].sort((x, y) => hex(x) < hex(y) ? -1 : 1))),
          fingerprint: u(fp), fingerprint_hex: hex(fp), display: C.formatFingerprint(fp),
          caseHex: hex(b(V.case.case_id)),
        };
        """,
        {"keys": protocol["keys"], "keyset": protocol["keyset"], "case": protocol["case"]},
    )
    for name, k in protocol["keys"].items():
        assert got["keys"][name] == {"public": k["public"], "key_id": k["key_id"]}, name
    ks = protocol["keyset"]
    assert got["hash_input"] == ks["hash_input"]
    label = b"chuishao/v1/keyset\x00"
    sorted_ids = b"".join(_b(x) for x in ks["sorted_key_ids"])
    assert _b(got["sorted"]) == sorted_ids
    assert _b(ks["hash_input"]) == label + sorted_ids
    assert got["fingerprint"] == ks["fingerprint"]
    assert got["fingerprint_hex"] == ks["fingerprint_hex"]
    assert got["display"] == ks["display"]
    assert got["caseHex"] == protocol["case"]["case_id_hex"]


def _b(text):
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_slots(run, protocol):
    got = run(
        """
        const out = [];
        for (const s of V.slots) {
          const info = S.slotInfo(b(s.case_id), s.purpose);
          const ctx = await H.setupBaseS(H.SUITE_X25519_AES256, b(s.recipient_public), info,
                                         {ephemeral: b(s.ephemeral_private)});
          const slot = await C.sealKey(b(s.key), b(s.recipient_public), b(s.case_id), s.purpose,
                                       {ephemeral: b(s.ephemeral_private)});
          let calls = 0;
          const rng = (n) => { calls++; return b(s.ephemeral_private).slice(0, n); };
          const slotRng = await C.sealKey(b(s.key), b(s.recipient_public), b(s.case_id),
                                          s.purpose, {rng});
          const opened = await C.openKey(b(s.slot), b(s.recipient_private), b(s.case_id),
                                         s.purpose);
          out.push({
            info: u(info), enc: u(ctx.enc), shared_secret: u(ctx.sharedSecret),
            key_schedule_context: u(ctx.keyScheduleContext), secret: u(ctx.secret),
            hpke_key: u(ctx.key), base_nonce: u(ctx.baseNonce), slot: u(slot),
            slotRng: u(slotRng), calls, opened: u(opened),
            recipient_public: u(await C.publicKey(b(s.recipient_private))),
            recipient_key_id: u(await C.keyId(b(s.recipient_public))),
          });
        }
        return out;
        """,
        {"slots": protocol["slots"]},
    )
    case = protocol["case"]
    assert len(protocol["slots"]) == len(got) >= 6
    for s, g in zip(protocol["slots"], got, strict=True):
        name = s["name"]
        for field in (
            "info",
            "enc",
            "shared_secret",
            "key_schedule_context",
            "secret",
            "hpke_key",
            "base_nonce",
            "slot",
            "recipient_public",
            "recipient_key_id",
        ):
            assert g[field] == s[field], (name, field)
        assert g["slotRng"] == s["slot"] and g["calls"] == 1, name
        assert g["opened"] == s["key"] == case[s["sealed_key"]], name
        assert s["recipient_public"] == protocol["keys"][s["recipient"]]["public"]
        assert s["case_id"] == case["case_id"]
        assert s["aad"] == "" and s["suite"] == protocol["suite"]
        assert len(_b(s["slot"])) == 80 and s["slot"].startswith(s["enc"][:40])


def test_items(run, protocol):
    got = run(
        """
        const out = [];
        for (const it of V.items) {
          const json = I.itemJson(it.object);
          const padded = P.padItem(json);
          const wire = await C.sealItem(b(it.key), b(it.case_id), b(it.item_id), it.kind,
                                        it.object, {nonce: b(it.nonce)});
          // ids in their hex text form, nonce from an injected rng
          const wireRng = await C.sealItem(b(it.key), hex(b(it.case_id)), it.item_id_hex,
                                           it.kind, it.object,
                                           {rng: (n) => b(it.nonce).slice(0, n)});
          const opened = await C.openItem(b(it.key), b(it.case_id), b(it.item_id), it.kind,
                                          b(it.wire));
          out.push({
            json_utf8: u(json), json_text: E.utf8Decode(json), json_length: json.length,
            padded: u(padded), padded_length: padded.length,
            subkey_info: u(E.concat(ascii('chuishao/v1/item/'), ascii(it.kind))),
            subkey: u(await I.itemSubkey(b(it.key), it.kind)),
            aad: u(I.itemAad(b(it.case_id), b(it.item_id), it.kind)),
            wire: u(wire), wireRng: u(wireRng), opened,
            ciphertext: u(wire.subarray(13)), nonce: u(wire.subarray(1, 13)),
            item_id_hex: hex(b(it.item_id)),
          });
        }
        return out;
        """,
        {"items": protocol["items"]},
    )
    case = protocol["case"]
    assert len(protocol["items"]) == len(got) >= 8
    for it, g in zip(protocol["items"], got, strict=True):
        name = it["name"]
        for field in (
            "json_utf8",
            "json_text",
            "json_length",
            "padded",
            "padded_length",
            "subkey_info",
            "subkey",
            "aad",
            "wire",
            "ciphertext",
            "nonce",
            "item_id_hex",
        ):
            assert g[field] == it[field], (name, field)
        assert g["wireRng"] == it["wire"], name
        assert g["opened"] == it["object"], name
        assert it["key"] == case[it["key_name"]], name
        assert _b(it["wire"])[0] == 1


def _content(f):
    if "content" in f:
        return _b(f["content"])
    assert f["content_rule"] == "byte i of the content is i mod 251"
    return bytes(i % 251 for i in range(f["size"]))


def test_files(run, protocol):
    import hashlib

    files = [dict(f, content_b64=_encode(_content(f))) for f in protocol["files"]]
    got = run(
        """
        const out = [];
        for (const f of V.files) {
          const content = b(f.content_b64);
          const layout = F.fileLayout(f.size);
          const padded = new Uint8Array(layout.total);
          padded.set(content); padded[f.size] = 0x80;
          const [fk, pf, c, id] = [b(f.file_key), b(f.nonce_prefix), b(f.case_id), b(f.file_id)];
          const stored = await drain(C.sealFile(fk, pf, c, id, new Blob([content]), f.size));
          const chunks = [];
          for (let i = 0; i < layout.chunks; i++) {
            const last = i === layout.chunks - 1;
            const pt = padded.subarray(i * C.CHUNK_SIZE, (i + 1) * C.CHUNK_SIZE);
            chunks.push({
              index: i, last, nonce: u(F.chunkNonce(pf, i, last)),
              plaintext_length: pt.length, plaintext_sha256: u(await X.sha256(pt)),
              stored_length: stored[i].length, stored: u(stored[i]),
            });
          }
          const opened = E.concat(...await drain(
            C.openFile(fk, pf, c, id, f.chunks.map((x) => b(x.stored)), f.size)));
          out.push({
            padded_length: layout.total, chunk_count: layout.chunks,
            chunk_key: u(await F.chunkKeyBytes(fk)), aad: u(F.fileAad(c, id)),
            content_sha256: u(await X.sha256(content)), storedCount: stored.length, chunks,
            openedOk: hex(opened) === hex(content),
          });
        }
        return out;
        """,
        {"files": files},
    )
    assert len(protocol["files"]) == len(got) >= 4
    assert any(f["chunk_count"] == 3 for f in protocol["files"])
    for f, g in zip(protocol["files"], got, strict=True):
        name = f["name"]
        content = _content(f)
        assert _encode(hashlib.sha256(content).digest()) == f["content_sha256"], name
        for field in ("padded_length", "chunk_count", "chunk_key", "aad", "content_sha256"):
            assert g[field] == f[field], (name, field)
        assert g["storedCount"] == len(f["chunks"]), name
        for want, have in zip(f["chunks"], g["chunks"], strict=True):
            assert have == want, (name, want["index"])
        assert g["openedOk"], name


def _encode(data):
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_receipt(run, protocol):
    r = protocol["receipt"]
    got = run(
        """
        const r = V.r;
        let pos = 0;
        const stream = b(r.random_bytes);
        const rng = (n) => { const o = stream.slice(pos, pos + n); pos += n; return o; };
        const receipt = C.newReceipt({rng});
        const normalized = r.inputs_that_normalize_to_it.map((x) => C.normalizeReceipt(x));
        const salt = E.concat(ascii('chuishao/v1/receipt'), [0], b(r.installation_salt));
        const digits = C.normalizeReceipt(receipt);
        const seed = await X.pbkdf2Sha256(ascii(digits), salt, r.iterations, 64);
        const d = await C.deriveReceipt(r.display, b(r.installation_salt), r.iterations);
        const legacy = await C.deriveReceipt(r.legacy_display, b(r.installation_salt), r.iterations);
        const refusal = (x) => {
          try { C.normalizeReceipt(x); return 'accepted'; } catch (e) { return e.name; }
        };
        const check = V.check;
        return {
          receipt, digits, check_digit: receipt.slice(20), display: C.formatReceipt(receipt),
          legacy_display: C.formatReceipt(digits), normalized,
          legacyLookup: u(legacy.lookupSecret),
          examples: check.examples.map(([x]) => [x, C.dammCheckDigit(x)]),
          mistyped: check.mistyped.map(refusal),
          pbkdf2_password: u(ascii(digits)), pbkdf2_salt: u(salt), seed: u(seed),
          private: u(seed.subarray(0, 32)), public: u(d.publicKey),
          key_id: u(await C.keyId(d.publicKey)), lookup_secret: u(d.lookupSecret),
          lookup_hash: u(d.lookupHash), lookup_hash_hex: hex(d.lookupHash),
          extractable: d.privateKey.extractable,
          publicFromSeed: u(await C.publicKey(seed.subarray(0, 32))),
          invalid: V.invalid.map(refusal),
        };
        """,
        {"r": r, "invalid": protocol["invalid_input"]["receipts"],
         "check": protocol["receipt_check"]},
    )
    for field in (
        "receipt",
        "digits",
        "check_digit",
        "display",
        "legacy_display",
        "pbkdf2_password",
        "pbkdf2_salt",
        "seed",
        "private",
        "public",
        "key_id",
        "lookup_secret",
        "lookup_hash",
        "lookup_hash_hex",
    ):
        assert got[field] == r[field], field
    assert r["iterations"] == protocol["constants"]["receipt_iterations"]
    assert got["normalized"] == [r["digits"]] * len(r["inputs_that_normalize_to_it"])
    assert got["legacyLookup"] == r["lookup_secret"]
    check = protocol["receipt_check"]
    assert got["examples"] == check["examples"]
    assert got["mistyped"] == ["ReceiptMistyped"] * len(check["mistyped"])
    assert got["publicFromSeed"] == r["public"] == protocol["keys"]["receipt"]["public"]
    assert got["extractable"] is False
    assert got["invalid"] == ["ReceiptError"] * len(protocol["invalid_input"]["receipts"])


def test_password_and_wrapped_key(run, protocol):
    p = protocol["password"]
    owner = protocol["keys"][p["wrapped_key_owner"]]
    got = run(
        """
        const p = V.p;
        const nfc = E.utf8Encode(p.password_input.normalize('NFC'));
        const salt = E.concat(ascii('chuishao/v1/password'), [0], b(p.user_salt));
        const master = await X.pbkdf2Sha256(nfc, salt, p.iterations, 64);
        const d = await C.derivePassword(p.password_input, b(p.user_salt), p.iterations);
        const wrapped = await C.wrapPrivateKey(d.kek, b(p.private), b(p.key_id),
                                               {nonce: b(p.nonce)});
        const key = await C.unwrapPrivateKey(d.kek, b(p.wrapped), b(p.key_id));
        return {
          password_nfc_utf8: u(nfc), pbkdf2_salt: u(salt), master: u(master),
          auth_secret: u(d.authSecret), kek: u(d.kek), pkcs8: u(K.x25519Pkcs8(b(p.private))),
          aad: u(W.wrapAad(b(p.key_id))), wrapped: u(wrapped), nonce: u(wrapped.subarray(1, 13)),
          unwrappedPublic: u(await C.publicKey(key)), extractable: key.extractable,
          key_id: u(await C.keyId(await C.publicKey(b(p.private)))),
        };
        """,
        {"p": p},
    )
    for field in (
        "password_nfc_utf8",
        "pbkdf2_salt",
        "master",
        "auth_secret",
        "kek",
        "pkcs8",
        "aad",
        "wrapped",
        "nonce",
        "key_id",
    ):
        assert got[field] == p[field], field
    assert p["iterations"] == protocol["constants"]["password_iterations"]
    assert p["private"] == owner["private"] and p["key_id"] == owner["key_id"]
    assert got["unwrappedPublic"] == owner["public"]
    assert got["extractable"] is False
    # p["scrypt"] is the server's storage of auth_secret: not a browser operation.


def test_recovery_and_signature(run, protocol):
    rec, sig = protocol["recovery"], protocol["signature"]
    got = run(
        """
        const rec = V.rec, sig = V.sig;
        const text = await C.encodeRecoverySecret(b(rec.private));
        const parsed = [];
        for (const t of [rec.text, ...rec.inputs_that_parse_to_it]) {
          parsed.push(u(await C.decodeRecoverySecret(t)));
        }
        const invalid = [];
        for (const t of V.invalid) {
          try { await C.decodeRecoverySecret(t); invalid.push('accepted'); }
          catch (e) { invalid.push(e.name); }
        }
        const checksum = u((await X.sha256(b(rec.private))).subarray(0, 2));
        // Ed25519: sign with the vector's private key, verify, reject a flipped bit
        const pk8 = E.concat(E.hexToBytes('302e020100300506032b657004220420'), b(sig.private));
        const sk = await crypto.subtle.importKey('pkcs8', pk8, 'Ed25519', true, ['sign']);
        const jwk = await crypto.subtle.exportKey('jwk', sk);
        const signature = new Uint8Array(await crypto.subtle.sign('Ed25519', sk, b(sig.message)));
        const bad = b(sig.signature); bad[5] ^= 1;
        return {
          text, parsed, invalid, checksum, public: jwk.x, signature: u(signature),
          verifies: await C.verifySignature(b(sig.public), b(sig.message), b(sig.signature)),
          badVerifies: await C.verifySignature(b(sig.public), b(sig.message), bad),
          recoveryPublic: u(await C.publicKey(b(rec.private))),
        };
        """,
        {"rec": rec, "sig": sig, "invalid": protocol["invalid_input"]["recovery_texts"]},
    )
    assert got["text"] == rec["text"]
    assert got["parsed"] == [rec["private"]] * (1 + len(rec["inputs_that_parse_to_it"]))
    assert got["invalid"] == ["RecoveryError"] * len(protocol["invalid_input"]["recovery_texts"])
    assert got["checksum"] == rec["checksum"]
    assert got["recoveryPublic"] == rec["public"] == protocol["keys"]["recovery"]["public"]
    assert sig["algorithm"] == "Ed25519"
    assert got["public"] == sig["public"]
    assert got["signature"] == sig["signature"]
    assert got["verifies"] is True and got["badVerifies"] is False


def test_negative_vectors(run, protocol):
    files = {f["name"]: f for f in protocol["files"]}
    cases = []
    for n in protocol["negative"]:
        assert n["expect"] == "OpenError", n["name"]
        if n["op"] == "open_file" and "args" not in n:
            f = files[n["file"]]
            chunks = [bytearray(_b(f["chunks"][i]["stored"])) for i in n["chunk_indices"]]
            if "tamper" in n:
                t = n["tamper"]
                chunks[t["chunk"]][t["offset"]] ^= t["xor"]
            args = {
                "file_key": f["file_key"],
                "nonce_prefix": f["nonce_prefix"],
                "case_id": n.get("case_id", f["case_id"]),
                "file_id": n.get("file_id", f["file_id"]),
                "size": n.get("size", f["size"]),
                "chunks": [_encode(bytes(c)) for c in chunks],
            }
            cases.append({"name": n["name"], "op": "open_file", "args": args})
        else:
            cases.append({"name": n["name"], "op": n["op"], "args": n["args"]})
    got = run(
        """
        const ops = {
          open_key: (a) => C.openKey(b(a.slot), b(a.private), b(a.case_id), a.purpose),
          open_item: (a) => C.openItem(b(a.key), b(a.case_id), b(a.item_id), a.kind, b(a.blob)),
          unwrap_private_key: (a) => C.unwrapPrivateKey(b(a.kek), b(a.blob), b(a.key_id)),
          open_file: (a) => drain(C.openFile(b(a.file_key), b(a.nonce_prefix), b(a.case_id),
                                             b(a.file_id), a.chunks.map(b), a.size)),
        };
        const out = {};
        for (const c of V.cases) out[c.name] = await outcome(() => ops[c.op](c.args));
        return out;
        """,
        {"cases": cases},
    )
    assert len(got) == len(cases) >= 30
    assert {k: v for k, v in got.items() if v != "OpenError"} == {}
