"""Protocol v1 cost against the bare `cryptography` calls it is built on, in the same run.

Prints, for each operation, our time, the floor's time and the ratio (ours / floor):
- sealing a typical report: a case key slotted to 5 recipients + the report item, against
  5 bare HPKE single-shot seals + one bare AES-256-GCM encryption of the same plaintext;
- opening it: one slot + the item, against one bare HPKE open + one AES-GCM decryption;
- a 50 MB file sealed and opened in 64 KiB STREAM chunks, against bare AES-256-GCM over
  the same chunks.

Usage: python bench/crypto.py [--file-mb 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hpke  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import (  # noqa: E402
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

import crypto  # noqa: E402

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def best_of(repeat: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report_object() -> dict[str, object]:
    return {
        "unit": "某某机械制造有限公司",
        "where": "三号车间冲压线东侧",
        "category": "机械伤害",
        "seen_at": "2026-11-20T14:00+08:00",
        "insider": True,
        "text": "冲压机光电保护装置被拆除已两周，班组长要求继续生产。" * 20,
    }


def bench_report(repeat: int, loops: int) -> tuple[float, float, float, float]:
    keys = [crypto.generate_keypair() for _ in range(5)]
    publics = [X25519PublicKey.from_public_bytes(pub) for _, pub in keys]
    obj = report_object()
    plaintext = json.dumps(obj, ensure_ascii=False).encode()
    case_id, item_id = crypto.new_id(), crypto.new_id()

    def ours_seal() -> None:
        for _ in range(loops):
            case_key = crypto.new_key()
            for _, pub in keys:
                crypto.seal_key(case_key, pub, case_id)
            crypto.seal_item(case_key, case_id, item_id, "report", obj)

    def floor_seal() -> None:
        for _ in range(loops):
            case_key = os.urandom(32)
            for pub in publics:
                SUITE.encrypt(case_key, pub, info=b"x")
            AESGCM(case_key).encrypt(os.urandom(12), plaintext, None)

    case_key = crypto.new_key()
    slot = crypto.seal_key(case_key, keys[0][1], case_id)
    blob = crypto.seal_item(case_key, case_id, item_id, "report", obj)
    private0 = X25519PrivateKey.from_private_bytes(keys[0][0])
    bare_slot = SUITE.encrypt(case_key, publics[0], info=b"x")
    nonce = os.urandom(12)
    bare_blob = AESGCM(case_key).encrypt(nonce, plaintext, None)

    def ours_open() -> None:
        for _ in range(loops):
            key = crypto.open_key(slot, keys[0][0], case_id)
            crypto.open_item(key, case_id, item_id, "report", blob)

    def floor_open() -> None:
        for _ in range(loops):
            key = SUITE.decrypt(bare_slot, private0, info=b"x")
            AESGCM(key).decrypt(nonce, bare_blob, None)

    return (best_of(repeat, ours_seal) / loops, best_of(repeat, floor_seal) / loops,
            best_of(repeat, ours_open) / loops, best_of(repeat, floor_open) / loops)


def bench_file(repeat: int, megabytes: int) -> tuple[float, float, float, float]:
    size = megabytes * 1024 * 1024
    block = os.urandom(crypto.CHUNK_SIZE)
    file_key, prefix = crypto.new_key(), os.urandom(7)
    case_id, file_id = crypto.new_id(), crypto.new_id()

    def source() -> Iterator[bytes]:
        left = size
        while left:
            n = min(left, len(block))
            yield block[:n]
            left -= n

    def ours_seal() -> None:
        for _ in crypto.seal_file(file_key, prefix, case_id, file_id, source(), size):
            pass

    aead = AESGCM(file_key)

    def floor_seal() -> None:
        for index, chunk in enumerate(source()):
            aead.encrypt(prefix + index.to_bytes(4, "big") + b"\0", chunk, b"aad")

    stored = list(crypto.seal_file(file_key, prefix, case_id, file_id, source(), size))
    bare = [aead.encrypt(prefix + i.to_bytes(4, "big") + b"\0", c, b"aad")
            for i, c in enumerate(source())]

    def ours_open() -> None:
        for _ in crypto.open_file(file_key, prefix, case_id, file_id, iter(stored), size):
            pass

    def floor_open() -> None:
        for index, chunk in enumerate(bare):
            aead.decrypt(prefix + index.to_bytes(4, "big") + b"\0", chunk, b"aad")

    return (best_of(repeat, ours_seal), best_of(repeat, floor_seal),
            best_of(repeat, ours_open), best_of(repeat, floor_open))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file-mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rs, rf, ro, rof = bench_report(args.repeat, loops=200)
    fs, ff, fo, fof = bench_file(args.repeat, args.file_mb)
    rows = [
        ("report seal (5 slots + item)", rs * 1e3, rf * 1e3, "ms"),
        ("report open (1 slot + item)", ro * 1e3, rof * 1e3, "ms"),
        (f"file seal {args.file_mb} MB", fs, ff, "s"),
        (f"file open {args.file_mb} MB", fo, fof, "s"),
    ]
    print(f"{'operation':32} {'ours':>10} {'floor':>10} {'ratio':>7}")
    for name, ours, floor, unit in rows:
        print(f"{name:32} {ours:9.3f}{unit:1} {floor:9.3f}{unit:1} {ours / floor:7.2f}")
    mbps = args.file_mb / fs
    print(f"file seal throughput: {mbps:.0f} MB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
