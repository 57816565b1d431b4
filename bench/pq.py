"""Suite v2 (X-Wing key slots) against suite v1 and against the bare calls underneath.

Prints, for each operation, ours, the floor and the ratio (ours / floor), for v1 and v2:
- sizes: one slot, and the slots of a typical case (case key to 5 reviewers, the recovery
  key and the reporter; internal key to 5 reviewers and the recovery key: 13 slots);
- Python: sealing a typical report (case key slotted to 5 recipients + the report item)
  against 5 bare `cryptography` HPKE seals + one AES-256-GCM; opening one slot + the item
  against one bare HPKE open + one AES-GCM decryption;
- Chromium: sealing 7 case-key slots through crypto/index.js against the bare WebCrypto
  calls (v2: encapsulateBits + the key schedule's HKDF + AES-GCM; v1: generateKey +
  deriveBits + the same), and opening one slot against decapsulateBits / deriveBits + AES-GCM.

Usage: python bench/pq.py [--repeat 7] [--loops 50] [--no-browser]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hpke  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import x25519  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

import crypto  # noqa: E402
from crypto import _xwing  # noqa: E402

CHROMIUM = os.environ.get("CHUISHAO_CHROMIUM", "/usr/bin/chromium")
V1 = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
V2 = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
REPORT = {"unit": "某某机械制造有限公司", "where": "三号车间冲压线东侧",
          "text": "冲压机光电保护装置被拆除已两周，班组长要求继续生产。" * 20}


def median_of(repeat: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def python_figures(repeat: int, loops: int) -> dict[str, dict[str, float]]:
    case_id, item_id = crypto.new_id(), crypto.new_id()
    plaintext = json.dumps(REPORT, ensure_ascii=False).encode()
    out: dict[str, dict[str, float]] = {}
    for suite in crypto.SUITES:
        v2 = suite == crypto.SUITE_V2
        pairs = [crypto.generate_xwing_keypair() if v2 else crypto.generate_keypair()
                 for _ in range(5)]
        bare_pub = [_xwing.load_public(p) if v2 else x25519.X25519PublicKey.from_public_bytes(p)
                    for _, p in pairs]
        bare_priv = (_xwing.private_key(pairs[0][0]) if v2
                     else x25519.X25519PrivateKey.from_private_bytes(pairs[0][0]))
        bare = V2 if v2 else V1

        def ours_seal(pairs=pairs, suite=suite) -> None:
            for _ in range(loops):
                key = crypto.new_key()
                for _, pub in pairs:
                    crypto.seal_slot(suite, key, pub, case_id)
                crypto.seal_item(key, case_id, item_id, "report", REPORT)

        def floor_seal(bare_pub=bare_pub, bare=bare) -> None:
            for _ in range(loops):
                key = os.urandom(32)
                for pub in bare_pub:
                    bare.encrypt(key, pub, info=b"x")
                AESGCM(key).encrypt(os.urandom(12), plaintext, None)

        key = crypto.new_key()
        slot = crypto.seal_slot(suite, key, pairs[0][1], case_id)
        item = crypto.seal_item(key, case_id, item_id, "report", REPORT)
        bare_slot = bare.encrypt(key, bare_pub[0], info=b"x")
        nonce = os.urandom(12)
        bare_item = AESGCM(key).encrypt(nonce, plaintext, None)

        def ours_open(suite=suite, slot=slot, priv=pairs[0][0], item=item) -> None:
            for _ in range(loops):
                k = crypto.open_slot(suite, slot, priv, case_id)
                crypto.open_item(k, case_id, item_id, "report", item)

        def floor_open(bare=bare, bare_slot=bare_slot, bare_priv=bare_priv, nonce=nonce,
                       bare_item=bare_item) -> None:
            for _ in range(loops):
                k = bare.decrypt(bare_slot, bare_priv, info=b"x")
                AESGCM(k).decrypt(nonce, bare_item, None)

        out[suite] = {
            "seal_ms": median_of(repeat, ours_seal) / loops * 1000,
            "seal_floor_ms": median_of(repeat, floor_seal) / loops * 1000,
            "open_ms": median_of(repeat, ours_open) / loops * 1000,
            "open_floor_ms": median_of(repeat, floor_open) / loops * 1000,
            "slot_bytes": len(slot),
        }
    return out


BROWSER_JS = """
async ([v2, repeat, loops]) => {
  const C = await import('/static/js/crypto/index.js');
  const S = await import('/static/js/crypto/slots.js');
  const subtle = crypto.subtle;
  const XW = {name: 'MLKEM768-X25519'};
  const caseId = new Uint8Array(16);
  const pubs = [], privs = [];
  for (let i = 0; i < 7; i++) {
    const kp = v2 ? await C.generateXWing(true) : await C.generateKeyPair();
    pubs.push(kp.publicKey);
    privs.push(v2 ? kp.seed : kp.privateKey);
  }
  const pubKeys = [];
  for (const p of pubs) {
    pubKeys.push(v2 ? await subtle.importKey('raw-public', p, XW, true, ['encapsulateBits'])
                    : await subtle.importKey('raw', p, {name: 'X25519'}, true, []));
  }
  const suite = v2 ? C.SUITE_V2 : C.SUITE;
  async function time(fn) {
    const t = [];
    for (let r = 0; r < repeat; r++) {
      const s = performance.now();
      for (let l = 0; l < loops; l++) await fn();
      t.push((performance.now() - s) / loops);
    }
    t.sort((a, b) => a - b);
    return t[Math.floor(t.length / 2)];
  }
  const key = C.newKey();
  // Floor: the KEM call, one HKDF-SHA256 derivation of key and nonce, one AES-GCM seal.
  async function bareSlot(pk) {
    let ss;
    if (v2) { ss = (await subtle.encapsulateBits(XW, pk)).sharedKey; }
    else {
      const e = await subtle.generateKey({name: 'X25519'}, false, ['deriveBits']);
      ss = await subtle.deriveBits({name: 'X25519', public: pk}, e.privateKey, 256);
    }
    const h = await subtle.importKey('raw', ss, 'HKDF', false, ['deriveBits']);
    const kn = new Uint8Array(await subtle.deriveBits(
        {name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new Uint8Array(1)}, h, 352));
    const ak = await subtle.importKey('raw', kn.subarray(0, 32), 'AES-GCM', false, ['encrypt']);
    return subtle.encrypt({name: 'AES-GCM', iv: kn.subarray(32, 44)}, ak, key);
  }
  const seal = await time(async () => {
    for (const p of pubs) await C.sealSlot(suite, key, p, caseId);
  });
  const sealFloor = await time(async () => { for (const p of pubKeys) await bareSlot(p); });
  const slot = await C.sealSlot(suite, key, pubs[0], caseId);
  const priv = v2 ? await C.importXWingSeed(privs[0]) : privs[0];
  const open = await time(() => C.openSlot(suite, slot, priv, caseId));
  const prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e,
                  0x04, 0x22, 0x04, 0x20];
  const xpriv = v2 ? priv : await subtle.importKey('pkcs8',
      new Uint8Array([...prefix, ...privs[0]]), {name: 'X25519'}, false, ['deriveBits']);
  const enc = slot.subarray(0, v2 ? 1120 : 32);
  const encKey = v2 ? null : await subtle.importKey('raw', enc, {name: 'X25519'}, true, []);
  const openFloor = await time(async () => {
    const ss = v2 ? await subtle.decapsulateBits(XW, xpriv, enc)
                  : await subtle.deriveBits({name: 'X25519', public: encKey}, xpriv, 256);
    const h = await subtle.importKey('raw', ss, 'HKDF', false, ['deriveBits']);
    await subtle.deriveBits({name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0),
                             info: new Uint8Array(1)}, h, 352);
  });
  return {seal, sealFloor, open, openFloor, slot: slot.length};
}
"""


def browser_figures(repeat: int, loops: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(ROOT / "service"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    out: dict[str, dict[str, float]] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page()
            page.goto(base + "/static/js/crypto/index.js")
            # A warm-up pass of both suites first, so neither pays for the other's JIT.
            for _ in range(2):
                for suite, v2 in ((crypto.SUITE, False), (crypto.SUITE_V2, True)):
                    out[suite] = page.evaluate(BROWSER_JS, [v2, repeat, max(1, loops // 2)])
            browser.close()
    finally:
        server.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--loops", type=int, default=50)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    v1_case = 13 * crypto.SLOT_SIZE
    v2_case = 13 * crypto.SLOT_SIZE_V2
    print(f"slot: v1 {crypto.SLOT_SIZE} B, v2 {crypto.SLOT_SIZE_V2} B; slots of a typical case "
          f"(13): v1 {v1_case} B, v2 {v2_case} B (+{v2_case - v1_case} B)")
    py = python_figures(args.repeat, args.loops)
    for suite, f in py.items():
        print(f"python {suite}: seal report (5 slots + item) {f['seal_ms']:.3f} ms, floor "
              f"{f['seal_floor_ms']:.3f} ms, ratio {f['seal_ms'] / f['seal_floor_ms']:.2f}; "
              f"open (1 slot + item) {f['open_ms']:.3f} ms, floor {f['open_floor_ms']:.3f} ms, "
              f"ratio {f['open_ms'] / f['open_floor_ms']:.2f}")
    if not args.no_browser:
        for suite, f in browser_figures(args.repeat, args.loops).items():
            print(f"chromium {suite}: seal 7 slots {f['seal']:.2f} ms, floor {f['sealFloor']:.2f} "
                  f"ms, ratio {f['seal'] / f['sealFloor']:.2f}; open 1 slot {f['open']:.2f} ms, "
                  f"floor {f['openFloor']:.2f} ms, ratio {f['open'] / f['openFloor']:.2f}")


if __name__ == "__main__":
    main()
