"""Cheap anonymous requests against the real server must not take it down (loopback only).

Each test is one attack from the availability review, bounded in connections and time, with
the figure it must hold while the attack runs: `/healthz` (and a page that needs the database)
keeps answering, memory stays bounded, honest requests stay fast. Every figure is printed
(`pytest -s`) so it can be compared with the threat model's table.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from service.client import solve_pow
from tests.reliability.live import Deployment, LiveServer, deploy, make_report, running

MiB = 1024 * 1024
# Generous bounds a busy two-core machine still meets; without the fixes each is missed by
# an order of magnitude (see docs/THREAT-MODEL.md, "Cheap requests").
HEALTH_BOUND = 1.0
PAGE_BOUND = 2.0
SUBMISSION_BOUND = 2.0
NOJS_LIMIT = 8 * MiB
HELD_LIMIT = 16 * MiB
IDLE_SECONDS = 2
PHOTO_PART = (b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n'
              b"\r\n\xff\xd8")
# Costly enough that a guess is real work, cheap enough for the test's own reporter.
RECEIPT_ITERATIONS = 50_000


@pytest.fixture
def deployment(tmp_path: Path, server_database: str | None) -> Deployment:
    return deploy(tmp_path, server_database,
                  CHUISHAO_MAX_NOJS_BYTES=str(NOJS_LIMIT),
                  CHUISHAO_MAX_NOJS_HELD_BYTES=str(NOJS_LIMIT),
                  CHUISHAO_MAX_HELD_BODY_BYTES=str(HELD_LIMIT),
                  CHUISHAO_BODY_IDLE_SECONDS=str(IDLE_SECONDS),
                  CHUISHAO_RECEIPT_ITERATIONS=str(RECEIPT_ITERATIONS))


@pytest.fixture
def server(deployment: Deployment) -> Iterator[LiveServer]:
    with running(deployment.server()) as live:
        yield live


def get(base: str, path: str, timeout: float = 15.0) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as response:  # noqa: S310
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, time.monotonic() - started


def post(base: str, path: str, body: bytes, content_type: str,
         headers: dict[str, str] | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, data=body, method="POST", headers={
        "Content-Type": content_type, "Accept-Language": "en", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Probe:
    """Polls a path every 50 ms in a thread; the worst latency is the figure."""

    def __init__(self, base: str, path: str = "/healthz") -> None:
        self.base, self.path = base, path
        self.latencies: list[float] = []
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            status, seconds = get(self.base, self.path, timeout=15)
            self.latencies.append(seconds)
            if status != 200:
                self.failures += 1
            self.stop.wait(0.05)

    @contextmanager
    def running(self) -> Iterator[Probe]:
        self.thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.thread.join(timeout=20)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=float("inf"))


def connect(base: str) -> socket.socket:
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def head(path: str, length: int, content_type: str = "application/octet-stream") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Accept-Language: en\r\nContent-Length: {length}\r\n\r\n").encode()


def status_of(sock: socket.socket, timeout: float) -> tuple[int, float]:
    """The status of the response on ``sock`` (0 if none within ``timeout``), and when."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(64)
    except OSError:
        return 0, time.monotonic() - started
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return (int(match.group(1)) if match else 0), time.monotonic() - started


def rss_mib(server: LiveServer) -> float:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def honest_case(deployment: Deployment, base: str) -> str:
    """A real report through the public API; returns its receipt."""
    return deployment.client(base).submit("acme", make_report(1))


def nojs_lookup(base: str, receipt: str, timeout: float = 60.0) -> tuple[int, bytes, float]:
    started = time.monotonic()
    status, body = post(base, "/followup", urllib.parse.urlencode({"receipt": receipt, "sealing": "noscript"}).encode(),
                        "application/x-www-form-urlencoded", timeout=timeout)
    return status, body, time.monotonic() - started


# ---------------------------------------------------------------------------- the attacks


def test_slow_bodies_hold_no_database_gate(deployment: Deployment, server: LiveServer) -> None:
    """20 connections each send one byte of a declared body and wait. Before: on PostgreSQL
    each held one of the 15 gate slots, so nothing that needs the database answered."""
    socks = []
    try:
        for _ in range(20):
            sock = connect(server.base)
            sock.sendall(head("/api/v1/submissions", 1000, "application/json") + b"{")
            socks.append(sock)
        time.sleep(0.5)
        health = get(server.base, "/healthz")
        channels = get(server.base, "/api/v1/channels")
        print(f"\n[slow bodies x20] /healthz {health[1] * 1000:.0f} ms, "
              f"/api/v1/channels {channels[1] * 1000:.0f} ms")
        assert health[0] == 200 and health[1] < PAGE_BOUND
        assert channels[0] == 200 and channels[1] < PAGE_BOUND
        # The stalled bodies are cut off (408), not held.
        statuses = [status_of(sock, IDLE_SECONDS + 5)[0] for sock in socks]
        print(f"[slow bodies x20] answers after the idle timeout: {sorted(set(statuses))}")
        assert statuses == [408] * len(socks)
    finally:
        for sock in socks:
            sock.close()


def test_unknown_route_refused_unread(server: LiveServer) -> None:
    """A body within the largest limit for an unknown path: before, it was read whole before
    routing (the review sent 48 MiB of a 50 MiB limit)."""
    sock = connect(server.base)
    try:
        sock.sendall(head("/no/such/path", NOJS_LIMIT - MiB) + b"x" * 65536)
        status, seconds = status_of(sock, 5)
        print(f"\n[unknown route, {NOJS_LIMIT // MiB - 1} MiB declared, 64 KiB sent] {status} "
              f"after {seconds * 1000:.0f} ms")
        assert status == 404 and seconds < PAGE_BOUND
    finally:
        sock.close()
    sock = connect(server.base)
    try:  # a known route, a declared length over its limit: refused before reading
        sock.sendall(head("/api/v1/submissions", 48 * MiB))
        status, seconds = status_of(sock, 5)
        print(f"[json route, 48 MiB declared] {status} after {seconds * 1000:.0f} ms")
        assert status == 413 and seconds < PAGE_BOUND
    finally:
        sock.close()


def test_parallel_big_bodies_left_short_bounded_memory(server: LiveServer) -> None:
    """16 near-limit no-JavaScript bodies, each left one byte short. Before: all held in
    memory (16 x 7.5 MiB) with no timeout; now at most max_held_body_bytes, then 503, and
    the stalled ones are cut off after the idle timeout."""
    body_size = NOJS_LIMIT - MiB // 2
    before = rss_mib(server)
    socks = []
    peak = before
    with Probe(server.base).running() as probe:
        try:
            for _ in range(16):
                sock = connect(server.base)
                sock.sendall(head("/report", body_size, "multipart/form-data; boundary=x"))
                # A photo, which is held in memory to be cleaned whole (other files wait
                # sealed on disk). Refused (503) and closed while still sending: the point.
                with contextlib.suppress(OSError):
                    sock.sendall(PHOTO_PART + b"x" * (body_size - 1 - len(PHOTO_PART)))
                socks.append(sock)
                peak = max(peak, rss_mib(server))
            for _ in range(15):  # what the kernel still buffered reaches the server
                time.sleep(0.1)
                peak = max(peak, rss_mib(server))
            statuses = [status_of(sock, IDLE_SECONDS + 5) for sock in socks]
        finally:
            for sock in socks:
                sock.close()
    # 0: refused and reset before the answer could be read (the client was still sending).
    codes = sorted(status for status, _ in statuses)
    print(f"\n[16 x {body_size / MiB:.1f} MiB left short] RSS {before:.0f} -> peak {peak:.0f} MiB "
          f"(+{peak - before:.0f}); answers {codes}; /healthz worst "
          f"{probe.worst * 1000:.0f} ms")
    assert peak - before < 64, "bodies held beyond max_held_body_bytes"
    assert set(codes) <= {0, 408, 503}
    # The ones held were cut off by the idle timeout; no more were held than fit.
    assert 1 <= codes.count(408) <= HELD_LIMIT // body_size + 1
    assert all(seconds < IDLE_SECONDS + 4 for _, seconds in statuses)
    assert probe.worst < HEALTH_BOUND and probe.failures == 0


def pathological_jpeg(size: int) -> bytes:
    """A "JPEG" of empty 4-byte comment segments: millions of parts to walk."""
    count = (size - 6) // 4
    return b"\xff\xd8" + b"\xff\xfe\x00\x02" * count + b"\xff\xd9"


def test_pathological_jpeg_on_nojs_reply(deployment: Deployment, server: LiveServer) -> None:
    """One no-JavaScript reply with a 6 MiB JPEG of 4-byte segments. Before: the stripper
    walked 1.5 million segments on the event loop and froze /healthz for seconds."""
    receipt = honest_case(deployment, server.base)
    status, page, _ = nojs_lookup(server.base, receipt)
    assert status == 200, page[:300]
    case_id = re.search(rb'name="case" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    capability = re.search(rb'name="capability" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    boundary = "chuishao-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="sealing"\r\n\r\n'
             'noscript\r\n'.encode(),
             f'--{boundary}\r\nContent-Disposition: form-data; name="case"\r\n\r\n'.encode()
             + case_id + b"\r\n",
             f'--{boundary}\r\nContent-Disposition: form-data; name="capability"\r\n\r\n'
             .encode() + capability + b"\r\n",
             f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
             f'filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
             + pathological_jpeg(6 * MiB) + b"\r\n",
             f"--{boundary}--\r\n".encode()]
    with Probe(server.base).running() as probe:
        time.sleep(0.2)
        started = time.monotonic()
        status, body = post(server.base, "/followup/reply", b"".join(parts),
                            f"multipart/form-data; boundary={boundary}")
        took = time.monotonic() - started
        time.sleep(0.2)
    print(f"\n[6 MiB JPEG of 4-byte segments] {status} in {took * 1000:.0f} ms; /healthz worst "
          f"{probe.worst * 1000:.0f} ms over {len(probe.latencies)} probes")
    assert status == 400 and b"unusual way" in body
    assert probe.worst < HEALTH_BOUND and probe.failures == 0


def test_receipt_guesses_lock_nobody_out(deployment: Deployment, server: LiveServer) -> None:
    """102 no-JavaScript receipt guesses from 8 connections. Before: each derivation ran on
    the event loop, and the global bucket then refused every honest look-up (429)."""
    receipt = honest_case(deployment, server.base)
    errors: list[str] = []
    honest: list[tuple[int, float]] = []

    def guesser(count: int) -> None:
        for _ in range(count):
            guess = "".join(secrets.choice("0123456789") for _ in range(20))
            status, _, _ = nojs_lookup(server.base, guess)
            if status not in (404, 400):
                errors.append(f"guess answered {status}")

    threads = [threading.Thread(target=guesser, args=(13 if i < 6 else 12,)) for i in range(8)]
    with Probe(server.base).running() as probe:
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        status, _, seconds = nojs_lookup(server.base, receipt)
        honest.append((status, seconds))
        for thread in threads:
            thread.join(timeout=120)
        attack = time.monotonic() - started
    status, _, seconds = nojs_lookup(server.base, receipt)
    honest.append((status, seconds))
    print(f"\n[102 receipt guesses, 8 connections] {attack:.1f} s; honest look-ups "
          f"{[(s, round(t, 2)) for s, t in honest]}; /healthz worst "
          f"{probe.worst * 1000:.0f} ms")
    assert not errors, errors[:3]
    assert [s for s, _ in honest] == [200, 200], "an honest look-up was refused"
    assert honest[1][1] < PAGE_BOUND
    assert probe.worst < HEALTH_BOUND and probe.failures == 0


def _console_login_headers(base: str) -> dict[str, str]:
    """What a sign-in script needs: the pre-session cookie and its CSRF token (one GET)."""
    with urllib.request.urlopen(base + "/console/login", timeout=15) as response:  # noqa: S310
        page = response.read().decode()
        cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return {"Cookie": cookie, "X-CSRF-Token": token, "Accept": "application/json"}


def test_signin_flood_does_not_slow_submissions(deployment: Deployment,
                                                server: LiveServer) -> None:
    """32 connections of sign-ins with made-up names, each paying the stamp login.js pays
    (from /console/api/prelogin). Before: each held SQLite's write lock through its scrypt,
    and an honest submission took seconds."""
    headers = _console_login_headers(server.base)
    client = deployment.client(server.base)
    quiet = []
    for _ in range(3):
        started = time.monotonic()
        client.submit("acme", make_report(2))
        quiet.append(time.monotonic() - started)
    stop = threading.Event()
    statuses: list[int] = []

    def flood() -> None:
        while not stop.is_set():
            username = "u" + secrets.token_hex(6)
            status, pre = post(server.base, "/console/api/prelogin",
                               json.dumps({"username": username}).encode(),
                               "application/json", headers, timeout=60)
            if status != 200:
                statuses.append(status)
                continue
            challenge = json.loads(pre)["pow"]
            body = json.dumps({"username": username, "auth_secret": "A" * 43,
                               "totp": "123456",
                               "pow": solve_pow(challenge["challenge"],
                                                challenge["difficulty"])}).encode()
            status, _ = post(server.base, "/console/login", body, "application/json",
                             headers, timeout=60)
            statuses.append(status)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(32)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        loaded = []
        with Probe(server.base).running() as probe:
            for _ in range(7):
                started = time.monotonic()
                client.submit("acme", make_report(3))
                loaded.append(time.monotonic() - started)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    median = statistics.median(loaded)
    print(f"\n[sign-in flood, 32 connections, {len(statuses)} attempts] honest submission "
          f"median {statistics.median(quiet) * 1000:.0f} ms quiet, {median * 1000:.0f} ms "
          f"under the flood (worst {max(loaded) * 1000:.0f} ms); /healthz worst "
          f"{probe.worst * 1000:.0f} ms")
    assert statuses and set(statuses) <= {401}, sorted(set(statuses))
    assert median < SUBMISSION_BOUND
    assert probe.worst < HEALTH_BOUND and probe.failures == 0
