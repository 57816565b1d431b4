"""Interoperability of the browser crypto module (real Chromium, WebCrypto)
with the Python package `crypto`: everything sealed on one side opens on the
other, derivations agree, and any single-byte tampering is rejected with
OpenError on both sides."""

from __future__ import annotations

import base64
import os
import random

import pytest

import crypto

pytestmark = pytest.mark.browser

ITER = 1000  # small PBKDF2 iteration counts keep the suite fast


def u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def flip(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def python_rejects(fn, *args) -> bool:
    try:
        fn(*args)
    except crypto.OpenError:
        return True
    return False


# ---------------------------------------------------------------- items


ITEM = {"title": "脚手架松动 scaffold loose", "n": 3, "ok": True, "tags": ["a", "b"], "x": None}


def test_item_browser_to_python_and_back(js):
    key, case_id, item_id = os.urandom(32), os.urandom(16), os.urandom(16)
    py_blob = crypto.seal_item(key, case_id, item_id, "report", ITEM)
    got = js(
        """
        const [key, c, i] = [b(arg.key), b(arg.c), b(arg.i)];
        const blob = await C.sealItem(key, c, i, 'report', arg.item);
        // ids may also be given in their hex text form
        const opened = await C.openItem(key, hex(c), hex(i), 'report', b(arg.py));
        return {blob: u(blob), opened};
        """,
        {"key": u(key), "c": u(case_id), "i": u(item_id), "item": ITEM, "py": u(py_blob)},
    )
    assert got["opened"] == ITEM
    blob = b(got["blob"])
    assert blob[0] == 1 and len(blob) == 1 + 12 + 256 + 16
    assert crypto.open_item(key, case_id, item_id, "report", blob) == ITEM


def test_item_padding_sizes_agree(js):
    key, case_id, item_id = os.urandom(32), os.urandom(16), os.urandom(16)
    objs = [{"t": "x" * n} for n in (0, 240, 247, 248, 500, 1000, 5000, 70000)]
    got = js(
        """
        const out = [];
        for (const o of arg.objs) {
          out.push(u(await C.sealItem(b(arg.key), b(arg.c), b(arg.i), 'message', o)));
        }
        return out;
        """,
        {"key": u(key), "c": u(case_id), "i": u(item_id), "objs": objs},
    )
    for obj, blob_text in zip(objs, got, strict=True):
        blob = b(blob_text)
        py = crypto.seal_item(key, case_id, item_id, "message", obj)
        assert len(blob) == len(py)
        assert crypto.open_item(key, case_id, item_id, "message", blob) == obj


def test_item_tampering_every_byte(js):
    key, case_id, item_id = os.urandom(32), os.urandom(16), os.urandom(16)
    py_blob = crypto.seal_item(key, case_id, item_id, "note", {"a": 1})
    got = js(
        """
        const [key, c, i, py] = [b(arg.key), b(arg.c), b(arg.i), b(arg.py)];
        const mine = await C.sealItem(key, c, i, 'note', {a: 1});
        const results = new Set();
        for (const blob of [py, mine]) {
          for (let p = 0; p < blob.length; p++) {
            const t = blob.slice(); t[p] ^= 1;
            results.add(await rejects(() => C.openItem(key, c, i, 'note', t)));
          }
          results.add(await rejects(() => C.openItem(key, c, i, 'note', blob.slice(0, -1))));
          results.add(await rejects(() => C.openItem(key, c, i, 'note', E.concat(blob, [0]))));
          results.add(await rejects(() => C.openItem(key, c, i, 'reply', blob)));
          results.add(await rejects(() => C.openItem(key, i, c, 'note', blob)));
          const k2 = key.slice(); k2[0] ^= 1;
          results.add(await rejects(() => C.openItem(k2, c, i, 'note', blob)));
          results.add(await rejects(() => C.openItem(key, c, i, 'NOTE', blob)));
          results.add(await rejects(() => C.openItem(key, c, i, 'note', new Uint8Array(0))));
        }
        let err = null;
        try { await C.openItem(key, c, i, 'reply', py); } catch (e) { err = e; }
        return {results: [...results], mine: u(mine), name: err.name, message: err.message};
        """,
        {"key": u(key), "c": u(case_id), "i": u(item_id), "py": u(py_blob)},
    )
    assert got["results"] == ["open"]
    assert got["name"] == "OpenError" and got["message"] == "could not open"
    mine = b(got["mine"])
    assert crypto.open_item(key, case_id, item_id, "note", mine) == {"a": 1}
    for pos in range(len(mine)):
        assert python_rejects(crypto.open_item, key, case_id, item_id, "note", flip(mine, pos)), pos


def test_item_padding_and_json_rules(js):
    """Well-authenticated plaintexts that break the padding or JSON rules fail too."""
    got = js(
        """
        const I = await import('/static/js/crypto/items.js');
        const key = new Uint8Array(32).fill(7), c = new Uint8Array(16), i = new Uint8Array(16);
        const pad = (s, total, last = 0x80) => {
          const j = new TextEncoder().encode(s);
          const p = new Uint8Array(total); p.set(j); p[j.length] = last; return p;
        };
        async function raw(padded) {
          const sub = await I.itemSubkey(key, 'report');
          const n = new Uint8Array(12);
          const ck = await crypto.subtle.importKey('raw', sub, 'AES-GCM', false, ['encrypt']);
          const ct = await crypto.subtle.encrypt(
            {name: 'AES-GCM', iv: n, additionalData: I.itemAad(c, i, 'report')}, ck, padded);
          return E.concat([1], n, new Uint8Array(ct));
        }
        const cases = {
          good: pad('{"a":1}', 256),
          tooLong: pad('{"a":1}', 272),
          tooShort: pad('{"a":1}', 255),
          badMarker: pad('{"a":1}', 256, 0x81),
          noMarker: new Uint8Array(256),
          array: pad('[1]', 256),
          notJson: pad('{a:1}', 256),
          badUtf8: E.concat([0x7b, 0xff, 0x7d, 0x80], new Uint8Array(252)),
        };
        const out = {};
        for (const [name, p] of Object.entries(cases)) {
          out[name] = await rejects(async () => C.openItem(key, c, i, 'report', await raw(p)));
        }
        return out;
        """
    )
    assert got.pop("good") == "accepted"
    assert set(got.values()) == {"open"}, got


# ---------------------------------------------------------------- key slots


@pytest.mark.parametrize("purpose", ["case", "internal"])
def test_slot_both_ways(js, purpose):
    priv, pub = crypto.generate_keypair()
    key, case_id = os.urandom(32), os.urandom(16)
    py_slot = crypto.seal_key(key, pub, case_id, purpose)
    got = js(
        """
        const {privateKey, publicKey} = await C.generateKeyPair();
        const c = b(arg.c);
        const slot = await C.sealKey(b(arg.key), b(arg.pub), c, arg.purpose);
        const opened = await C.openKey(b(arg.py), b(arg.priv), c, arg.purpose);
        const other = arg.purpose === 'case' ? 'internal' : 'case';
        const wrongPurpose = await rejects(() => C.openKey(b(arg.py), b(arg.priv), c, other));
        const mySlot = await C.sealKey(b(arg.key), publicKey, c, arg.purpose);
        return {slot: u(slot), opened: u(opened), wrongPurpose, myPriv: u(privateKey),
                myPub: u(publicKey), mySlot: u(mySlot), suite: C.SUITE};
        """,
        {
            "key": u(key),
            "pub": u(pub),
            "priv": u(priv),
            "c": u(case_id),
            "purpose": purpose,
            "py": u(py_slot),
        },
    )
    assert got["suite"] == crypto.SUITE
    assert b(got["opened"]) == key
    assert got["wrongPurpose"] == "open"
    slot = b(got["slot"])
    assert len(slot) == 80
    assert crypto.open_key(slot, priv, case_id, purpose) == key
    # a key pair generated in the browser works in Python
    assert crypto.public_key(b(got["myPriv"])) == b(got["myPub"])
    assert crypto.open_key(b(got["mySlot"]), b(got["myPriv"]), case_id, purpose) == key


def test_slot_tampering_every_byte(js):
    priv, pub = crypto.generate_keypair()
    key, case_id = os.urandom(32), os.urandom(16)
    py_slot = crypto.seal_key(key, pub, case_id, "case")
    got = js(
        """
        const [priv, c, py] = [b(arg.priv), b(arg.c), b(arg.py)];
        const mine = await C.sealKey(b(arg.key), b(arg.pub), c, 'case');
        const results = new Set();
        for (const slot of [py, mine]) {
          for (let p = 0; p < slot.length; p++) {
            const t = slot.slice(); t[p] ^= 1;
            results.add(await rejects(() => C.openKey(t, priv, c, 'case')));
          }
          const c2 = c.slice(); c2[15] ^= 1;
          results.add(await rejects(() => C.openKey(slot, priv, c2, 'case')));
          results.add(await rejects(() => C.openKey(slot.slice(0, 79), priv, c, 'case')));
          results.add(await rejects(() => C.openKey(slot, priv, c, 'other')));
          const {privateKey} = await C.generateKeyPair();
          results.add(await rejects(() => C.openKey(slot, privateKey, c, 'case')));
          // an all-zero enc is a small-order point: the DH must fail cleanly
          const z = slot.slice(); z.fill(0, 0, 32);
          results.add(await rejects(() => C.openKey(z, priv, c, 'case')));
        }
        return {results: [...results], mine: u(mine)};
        """,
        {"key": u(key), "pub": u(pub), "priv": u(priv), "c": u(case_id), "py": u(py_slot)},
    )
    assert got["results"] == ["open"]
    mine = b(got["mine"])
    assert crypto.open_key(mine, priv, case_id, "case") == key
    for pos in range(len(mine)):
        assert python_rejects(crypto.open_key, flip(mine, pos), priv, case_id, "case"), pos


# ---------------------------------------------------------------- files

FILE_SIZE = 150_000  # padme(150001) = 151552: three chunks, the last 20480 bytes


def test_file_three_chunks_both_ways(js):
    file_key, prefix = os.urandom(32), os.urandom(7)
    case_id, file_id = os.urandom(16), os.urandom(16)
    content = os.urandom(FILE_SIZE)
    py_chunks = list(crypto.seal_file(file_key, prefix, case_id, file_id, [content], FILE_SIZE))
    assert [len(c) for c in py_chunks] == [65552, 65552, 20496]
    got = js(
        """
        const [fk, pf, c, f] = [b(arg.fk), b(arg.pf), b(arg.c), b(arg.f)];
        const content = b(arg.content);
        // seal from a Blob (read slice by slice)
        const blob = new Blob([content.subarray(0, 1000), content.subarray(1000)]);
        const chunks = await drain(C.sealFile(fk, pf, c, f, blob, arg.size));
        // same bytes from a Uint8Array source
        const again = await drain(C.sealFile(fk, pf, c, f, content, arg.size));
        const same = chunks.every((x, i) => hex(x) === hex(again[i]));
        const pyChunks = arg.py.map(b);
        const plain = E.concat(...(await drain(C.openFile(fk, pf, c, f, pyChunks, arg.size))));
        // any re-chunking of the stored bytes opens too (e.g. a fetch body)
        const all = E.concat(...pyChunks);
        const pieces = [];
        for (let o = 0, n = 1; o < all.length; o += n, n = n * 7 + 3) {
          pieces.push(all.subarray(o, o + n));
        }
        const plain2 = E.concat(...(await drain(C.openFile(fk, pf, c, f, pieces, arg.size))));
        return {chunks: chunks.map(u), same, plainOk: hex(plain) === hex(content),
                plain2Ok: hex(plain2) === hex(content)};
        """,
        {
            "fk": u(file_key),
            "pf": u(prefix),
            "c": u(case_id),
            "f": u(file_id),
            "content": u(content),
            "size": FILE_SIZE,
            "py": [u(x) for x in py_chunks],
        },
    )
    assert got["same"] and got["plainOk"] and got["plain2Ok"]
    chunks = [b(x) for x in got["chunks"]]
    assert [len(x) for x in chunks] == [65552, 65552, 20496]
    # AES-GCM with the same key and nonces is deterministic: identical streams
    assert chunks == py_chunks
    opened = b"".join(crypto.open_file(file_key, prefix, case_id, file_id, chunks, FILE_SIZE))
    assert opened == content


@pytest.mark.parametrize("size", [0, 1, 65534, 65535, 65536, 131071, 131072])
def test_file_edge_sizes_both_ways(js, size):
    file_key, prefix = os.urandom(32), os.urandom(7)
    case_id, file_id = os.urandom(16), os.urandom(16)
    content = os.urandom(size)
    py_chunks = list(crypto.seal_file(file_key, prefix, case_id, file_id, [content], size))
    got = js(
        """
        const [fk, pf, c, f] = [b(arg.fk), b(arg.pf), b(arg.c), b(arg.f)];
        const chunks = await drain(C.sealFile(fk, pf, c, f, new Blob([b(arg.content)]), arg.size));
        const plain = await drain(C.openFile(fk, pf, c, f, arg.py.map(b), arg.size));
        return {chunks: chunks.map(u), plain: u(E.concat(...plain))};
        """,
        {
            "fk": u(file_key),
            "pf": u(prefix),
            "c": u(case_id),
            "f": u(file_id),
            "content": u(content),
            "size": size,
            "py": [u(x) for x in py_chunks],
        },
    )
    assert b(got["plain"]) == content
    assert [b(x) for x in got["chunks"]] == py_chunks


def test_file_stream_attacks_rejected(js):
    file_key, prefix = os.urandom(32), os.urandom(7)
    case_id, file_id = os.urandom(16), os.urandom(16)
    content = os.urandom(FILE_SIZE)
    rng = random.Random(1234)
    got = js(
        """
        const [fk, pf, c, f] = [b(arg.fk), b(arg.pf), b(arg.c), b(arg.f)];
        const size = arg.size;
        const ch = await drain(C.sealFile(fk, pf, c, f, b(arg.content), size));
        const open = (chunks, o = {}) => rejects(() => drain(C.openFile(
          o.fk || fk, o.pf || pf, o.c || c, o.f || f, chunks, o.size ?? size)));
        const other = (x) => { const y = x.slice(); y[0] ^= 1; return y; };
        const out = {good: await open(ch)};
        out.swap01 = await open([ch[1], ch[0], ch[2]]);
        out.swap12 = await open([ch[0], ch[2], ch[1]]);
        out.dropFirst = await open([ch[1], ch[2]]);
        out.dropMiddle = await open([ch[0], ch[2]]);
        out.dropLast = await open([ch[0], ch[1]]);
        out.onlyFirst = await open([ch[0]]);
        out.empty = await open([]);
        out.duplicateLast = await open([ch[0], ch[1], ch[2], ch[2]]);
        out.duplicateFirst = await open([ch[0], ch[0], ch[1], ch[2]]);
        out.extraByte = await open([ch[0], ch[1], ch[2], new Uint8Array([0])]);
        out.truncLastByte = await open([ch[0], ch[1], ch[2].subarray(0, ch[2].length - 1)]);
        out.truncMiddle = await open([ch[0], ch[1].subarray(0, 1000)]);
        out.wrongSizeLess = await open(ch, {size: size - 1});
        out.wrongSizeMore = await open(ch, {size: size + 1});
        out.wrongSizeBig = await open(ch, {size: 200000});
        out.wrongFileId = await open(ch, {f: other(f)});
        out.wrongCaseId = await open(ch, {c: other(c)});
        out.wrongPrefix = await open(ch, {pf: other(pf)});
        out.wrongKey = await open(ch, {fk: other(fk)});
        out.badArgs = await open(ch, {pf: new Uint8Array(6)});
        // tamper with sampled positions of every chunk
        const tampered = new Set();
        for (let k = 0; k < 3; k++) {
          const n = ch[k].length;
          const positions = new Set([0, 1, 7, 100, n >> 1, n - 17, n - 16, n - 2, n - 1,
                                     ...arg.samples.map((s) => s % n)]);
          for (const p of positions) {
            const t = ch.map((x) => x.slice()); t[k][p] ^= 0x80;
            tampered.add(await open(t));
          }
        }
        out.tampered = [...tampered].join();
        return {out, chunks: ch.map(u)};
        """,
        {
            "fk": u(file_key),
            "pf": u(prefix),
            "c": u(case_id),
            "f": u(file_id),
            "content": u(content),
            "size": FILE_SIZE,
            "samples": [rng.randrange(1 << 20) for _ in range(12)],
        },
    )
    out = got["out"]
    assert out.pop("good") == "accepted"
    assert {k: v for k, v in out.items() if v != "open"} == {}
    # the browser's stream, tampered, is rejected by Python
    chunks = [b(x) for x in got["chunks"]]

    def py_open(cs, size=FILE_SIZE):
        return b"".join(crypto.open_file(file_key, prefix, case_id, file_id, cs, size))

    assert py_open(chunks) == content
    for k in range(3):
        for pos in [0, 1, len(chunks[k]) // 2, len(chunks[k]) - 16, len(chunks[k]) - 1]:
            bad = list(chunks)
            bad[k] = flip(bad[k], pos)
            assert python_rejects(py_open, bad), (k, pos)
    assert python_rejects(py_open, chunks[:2])
    assert python_rejects(py_open, [chunks[1], chunks[0], chunks[2]])


# ---------------------------------------------------------------- wrapped keys


def test_wrapped_key_both_ways(js):
    priv, pub = crypto.generate_keypair()
    kid = crypto.key_id(pub)
    kek = os.urandom(32)
    py_wrapped = crypto.wrap_private_key(kek, priv, kid)
    case_key, case_id = os.urandom(32), os.urandom(16)
    slot = crypto.seal_key(case_key, pub, case_id, "case")
    got = js(
        """
        const [kek, kid] = [b(arg.kek), b(arg.kid)];
        const key = await C.unwrapPrivateKey(kek, b(arg.py), kid);
        const info = {type: key.type, extractable: key.extractable, alg: key.algorithm.name,
                      usages: key.usages};
        const exported = await rejects(() => crypto.subtle.exportKey('pkcs8', key));
        const opened = await C.openKey(b(arg.slot), key, b(arg.c), 'case');
        const wrapped = await C.wrapPrivateKey(kek, b(arg.priv), kid);
        const wrongId = await rejects(() => C.wrapPrivateKey(kek, b(arg.priv), new Uint8Array(16)));
        const results = new Set();
        for (const blob of [b(arg.py), wrapped]) {
          for (let p = 0; p < blob.length; p++) {
            const t = blob.slice(); t[p] ^= 1;
            results.add(await rejects(() => C.unwrapPrivateKey(kek, t, kid)));
          }
          const k2 = kek.slice(); k2[31] ^= 1;
          results.add(await rejects(() => C.unwrapPrivateKey(k2, blob, kid)));
          const id2 = kid.slice(); id2[0] ^= 1;
          results.add(await rejects(() => C.unwrapPrivateKey(kek, blob, id2)));
          results.add(await rejects(() => C.unwrapPrivateKey(kek, blob.slice(0, 76), kid)));
        }
        return {info, exported, opened: u(opened), wrapped: u(wrapped), wrongId,
                results: [...results]};
        """,
        {
            "kek": u(kek),
            "kid": u(kid),
            "py": u(py_wrapped),
            "priv": u(priv),
            "slot": u(slot),
            "c": u(case_id),
        },
    )
    assert got["info"] == {
        "type": "private",
        "extractable": False,
        "alg": "X25519",
        "usages": ["deriveBits"],
    }
    assert got["exported"] != "accepted"
    assert b(got["opened"]) == case_key
    assert got["wrongId"] not in ("accepted", "open")
    assert got["results"] == ["open"]
    wrapped = b(got["wrapped"])
    assert len(wrapped) == 77 and wrapped[0] == 1
    assert crypto.unwrap_private_key(kek, wrapped, kid) == priv
    for pos in range(len(wrapped)):
        assert python_rejects(crypto.unwrap_private_key, kek, flip(wrapped, pos), kid), pos


# ---------------------------------------------------------------- derivations


def test_password_derivation_agrees(js):
    salt = os.urandom(16)
    passwords = ["correct horse battery staple", "Cafe\u0301 密码 🔑", "Café 密码 🔑", ""]
    got = js(
        """
        const out = [];
        for (const p of arg.passwords) {
          const d = await C.derivePassword(p, b(arg.salt), arg.iter);
          out.push([u(d.authSecret), u(d.kek)]);
        }
        return out;
        """,
        {"salt": u(salt), "iter": ITER, "passwords": passwords},
    )
    for password, (auth, kek) in zip(passwords, got, strict=True):
        keys = crypto.derive_password(password, salt, ITER)
        assert b(auth) == keys.auth_secret
        assert b(kek) == keys.kek
    assert got[1] == got[2]  # NFC


def test_password_kek_wraps_for_python(js):
    """A reviewer set up in the browser: password -> kek -> wrapped key -> Python."""
    salt = os.urandom(16)
    got = js(
        """
        const {authSecret, kek} = await C.derivePassword('pässwörd', b(arg.salt), arg.iter);
        const {privateKey, publicKey} = await C.generateKeyPair();
        const kid = await C.keyId(publicKey);
        const wrapped = await C.wrapPrivateKey(kek, privateKey, kid);
        const back = await C.unwrapPrivateKey(kek, wrapped, kid);
        return {auth: u(authSecret), pub: u(publicKey), kid: u(kid), wrapped: u(wrapped),
                backPub: u(await C.publicKey(back))};
        """,
        {"salt": u(salt), "iter": ITER},
    )
    keys = crypto.derive_password("pässwörd", salt, ITER)
    assert b(got["auth"]) == keys.auth_secret
    pub, kid = b(got["pub"]), b(got["kid"])
    assert crypto.key_id(pub) == kid
    assert b(got["backPub"]) == pub
    priv = crypto.unwrap_private_key(keys.kek, b(got["wrapped"]), kid)
    assert crypto.public_key(priv) == pub


def test_receipt_derivation_agrees(js):
    salt = os.urandom(32)
    receipt = crypto.new_receipt()
    case_key, case_id = os.urandom(32), os.urandom(16)
    keys = crypto.derive_receipt(receipt, salt, ITER)
    slot = crypto.seal_key(case_key, keys.public, case_id, "case")
    # as a reporter might type it: full-width digits and dashes, spaces
    full = "".join(chr(ord(ch) + 0xFEE0) for ch in receipt[:8])
    typed = f" {full[:4]}－{full[4:]} {receipt[8:12]}-{receipt[12:16]}\u3000{receipt[16:]} "
    got = js(
        """
        const d = await C.deriveReceipt(arg.typed, b(arg.salt), arg.iter);
        const info = {type: d.privateKey.type, extractable: d.privateKey.extractable,
                      alg: d.privateKey.algorithm.name};
        const opened = await C.openKey(b(arg.slot), d.privateKey, b(arg.c), 'case');
        const mySlot = await C.sealKey(b(arg.key), d.publicKey, b(arg.c), 'case');
        return {info, pub: u(d.publicKey), lookupSecret: u(d.lookupSecret),
                lookupHash: u(d.lookupHash), opened: u(opened), mySlot: u(mySlot)};
        """,
        {
            "typed": typed,
            "salt": u(salt),
            "iter": ITER,
            "slot": u(slot),
            "c": u(case_id),
            "key": u(case_key),
        },
    )
    assert got["info"] == {"type": "private", "extractable": False, "alg": "X25519"}
    assert b(got["pub"]) == keys.public
    assert b(got["lookupSecret"]) == keys.lookup_secret
    assert b(got["lookupHash"]) == keys.lookup_hash
    assert b(got["opened"]) == case_key
    assert crypto.open_key(b(got["mySlot"]), keys.private, case_id, "case") == case_key


RECEIPT_INPUTS = [
    "12345678901234567890",
    "1234 5678 9012 3456 7890",
    "1234-5678-9012-3456-7890",
    "１２３４５６７８９０１２３４５６７８９０",
    " 1234\u30005678\t9012\n3456\u20137890 ",
    "1234\u00a05678\u20029012\u20143456\u22127890",
    "123456789012345678907",
    "123 456 789 012 345 678 907",
    "１２３　４５６－７８９\t012\n345\u2013678 907",
    "123456789012345678901",
    "213456789012345678907",
    "123456789012345678970",
    "1234567890123456789",
    "1234567890123456789070",
    "12345678901234567890a",
    "1234567890123456789a",
    "1234.5678.9012.3456.7890",
    "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠",
    "",
]


def test_receipt_text_handling_agrees(js):
    stream = os.urandom(200)
    py_made = [crypto.new_receipt() for _ in range(20)]
    r = py_made[0]
    mistakes = [r[:i] + d + r[i + 1 :] for i in range(21) for d in "0123456789" if d != r[i]]
    mistakes += [r[:i] + r[i + 1] + r[i] + r[i + 2 :] for i in range(20) if r[i] != r[i + 1]]
    got = js(
        """
        const read = (x) => {
          try { return C.normalizeReceipt(x); } catch (e) { return e.name; }
        };
        const norm = arg.inputs.map(read);
        const fmt = C.formatReceipt('12345678901234567890');
        const fmt21 = C.formatReceipt('123456789012345678907');
        const pyMade = arg.pyMade.map(read);
        const pyMadeShown = arg.pyMade.map((x) => C.formatReceipt(x));
        const mistakes = arg.mistakes.map(read);
        let pos = 0;
        const s = b(arg.stream);
        const rng = (n) => { const o = s.slice(pos, pos + n); pos += n; return o; };
        const fromStream = C.newReceipt({rng});
        const fresh = Array.from({length: 20}, () => C.newReceipt());
        return {norm, fmt, fmt21, fromStream, fresh, pyMade, pyMadeShown, mistakes};
        """,
        {"inputs": RECEIPT_INPUTS, "stream": u(stream), "pyMade": py_made,
         "mistakes": mistakes},
    )

    def read(text: str) -> str:
        try:
            return crypto.normalize_receipt(text)
        except crypto.ReceiptMistyped:
            return "ReceiptMistyped"
        except ValueError:
            return "ReceiptError"

    for text, js_norm in zip(RECEIPT_INPUTS, got["norm"], strict=True):
        assert js_norm == read(text), text
    norm = dict(zip(RECEIPT_INPUTS, got["norm"], strict=True))
    assert norm["123 456 789 012 345 678 907"] == norm["12345678901234567890"]
    assert norm["213456789012345678907"] == norm["123456789012345678970"] == "ReceiptMistyped"
    assert norm["1234567890123456789070"] == norm["1234567890123456789"] == "ReceiptError"
    assert got["fmt"] == crypto.format_receipt("12345678901234567890") == "1234 5678 9012 3456 7890"
    assert got["fmt21"] == crypto.format_receipt("123456789012345678907")
    assert got["fmt21"] == "123 456 789 012 345 678 907"
    # Receipts made on either side are read alike on the other; every mistake is told apart.
    assert got["pyMade"] == [r[:20] for r in py_made]
    assert got["pyMadeShown"] == [crypto.format_receipt(r) for r in py_made]
    assert got["mistakes"] == [read(m) for m in mistakes] == ["ReceiptMistyped"] * len(mistakes)
    for r in got["fresh"]:
        assert read(r) == r[:20] and crypto.format_receipt(r).count(" ") == 6
    pos = 0

    def rng(n):
        nonlocal pos
        pos += n
        return stream[pos - n : pos]

    assert got["fromStream"] == crypto.new_receipt(rng=rng)
    for r in got["fresh"]:
        assert len(r) == 21 and r.isascii() and r.isdigit()
    assert got["fresh"][0] != got["fresh"][1]


# ---------------------------------------------------------------- ids and sizes


def test_key_ids_fingerprints_padme_agree(js):
    pubs = [crypto.generate_keypair()[1] for _ in range(4)]
    sizes = [
        0,
        1,
        2,
        3,
        255,
        256,
        257,
        1000,
        65535,
        65536,
        65537,
        150001,
        10**6,
        2**32 + 5,
        2**40 - 1,
        2**52 + 3,
    ]
    got = js(
        """
        const ids = [];
        for (const p of arg.pubs) ids.push(await C.keyId(b(p)));
        const fp = await C.keysetFingerprint(ids);
        const fpRev = await C.keysetFingerprint([...ids].reverse().map(hex));
        const dup = await rejects(() => C.keysetFingerprint([ids[0], ids[0]]));
        return {ids: ids.map(u), fp: u(fp), fpRev: u(fpRev), fmt: C.formatFingerprint(fp), dup,
                padme: arg.sizes.map(C.padme), newId: C.newId().length, newKey: C.newKey().length};
        """,
        {"pubs": [u(p) for p in pubs], "sizes": sizes},
    )
    ids = [crypto.key_id(p) for p in pubs]
    assert [b(x) for x in got["ids"]] == ids
    fp = crypto.keyset_fingerprint(ids)
    assert b(got["fp"]) == fp and b(got["fpRev"]) == fp
    assert got["fmt"] == crypto.format_fingerprint(fp)
    assert got["dup"] not in ("accepted", "open")
    assert got["padme"] == [crypto.padme(n) for n in sizes]
    assert got["newId"] == 16 and got["newKey"] == 32


def test_large_blob_streams_chunk_by_chunk(js):
    """A 5 MB Blob is sealed slice by slice and opened piece by piece, each
    plaintext piece compared with the matching slice of the source."""
    got = js(
        """
        const size = 5 * 1024 * 1024 + 12345;
        const pattern = new Uint8Array(1 << 20);
        crypto.getRandomValues(pattern.subarray(0, 65536));
        for (let i = 65536; i < pattern.length; i++) pattern[i] = pattern[i % 65536] ^ (i >> 16);
        const parts = [];
        for (let o = 0; o < size; o += pattern.length) {
          parts.push(pattern.subarray(0, Math.min(pattern.length, size - o)));
        }
        const blob = new Blob(parts);
        const [fk, pf, c, f] = [C.newKey(), crypto.getRandomValues(new Uint8Array(7)),
                                C.newId(), C.newId()];
        let storedChunks = 0, maxChunk = 0;
        async function* stored() {
          for await (const ch of C.sealFile(fk, pf, c, f, blob, size)) {
            storedChunks++; maxChunk = Math.max(maxChunk, ch.length);
            yield ch;
          }
        }
        let offset = 0, mismatches = 0, pieces = 0;
        for await (const piece of C.openFile(fk, pf, c, f, stored(), size)) {
          const part = blob.slice(offset, offset + piece.length);
          const want = new Uint8Array(await part.arrayBuffer());
          if (hex(want) !== hex(piece)) mismatches++;
          offset += piece.length; pieces++;
        }
        const wrongSize = await rejects(() => drain(C.sealFile(fk, pf, c, f, blob, size - 1)));
        return {offset, size, mismatches, pieces, storedChunks, maxChunk,
                padded: C.padme(size + 1), wrongSize};
        """
    )
    assert got["offset"] == got["size"] and got["mismatches"] == 0
    assert got["storedChunks"] == -(-got["padded"] // 65536)
    assert got["maxChunk"] == 65552
    assert got["pieces"] == -(-got["size"] // 65536)
    assert got["wrongSize"] not in ("accepted", "open")  # a sealing error, not OpenError


def test_page_runs_under_strict_csp(js, crypto_page, static_server):
    """The module works on a page whose CSP forbids inline script and eval, and
    the page loaded nothing but same-origin resources."""
    response = crypto_page.request.get(static_server + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    got = js(
        """
        let evalBlocked = false;
        try { new Function('return 1')(); } catch (e) { evalBlocked = true; }
        const origins = performance.getEntriesByType('resource').map((r) => new URL(r.name).origin);
        return {evalBlocked, origins: [...new Set(origins)], here: location.origin};
        """
    )
    assert got["evalBlocked"]
    assert got["origins"] in ([], [got["here"]])


def test_recovery_text_agrees(js):
    raw = os.urandom(32)
    text = crypto.encode_recovery_secret(raw)
    inputs = [
        text,
        text.lower(),
        text.replace("-", " "),
        text.replace("-", ""),
        text[:-1],
        text + "A",
        text.replace("-", "_"),
        text[:-1] + ("A" if text[-1] != "A" else "B"),
        text.lower().replace("s", "ſ"),  # upper-cases to "S" but is not ASCII
        "",
    ]
    got = js(
        """
        const out = [await C.encodeRecoverySecret(b(arg.raw))];
        for (const t of arg.inputs) {
          try { out.push(u(await C.decodeRecoverySecret(t))); } catch (e) { out.push(e.name); }
        }
        return out;
        """,
        {"raw": u(raw), "inputs": inputs},
    )
    assert got[0] == text
    for text_in, js_out in zip(inputs, got[1:], strict=True):
        try:
            want = u(crypto.decode_recovery_secret(text_in))
        except ValueError:
            want = "RecoveryError"
        assert js_out == want, text_in
