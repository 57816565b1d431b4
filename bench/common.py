"""Shared helpers for bench/ scripts: a real server in a subprocess, a prepared installation,
keep-alive HTTP clients on loopback, fresh PostgreSQL databases, percentiles.

Self-contained on purpose: benchmarks do not import from tests/.
"""

from __future__ import annotations

import http.client
import math
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import crypto  # noqa: E402
from service.domain.models import Channel, ChannelRecipient, User, utcnow  # noqa: E402
from service.platform.db import Database  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, port: int, database_url: str | None = None,
               **extra: str) -> dict[str, str]:
    """Environment for `chuishao ...`: only what the command needs, loopback only."""
    env = {"PATH": os.environ.get("PATH", ""), "CHUISHAO_DATA_DIR": str(data_dir),
           "CHUISHAO_HOST": "127.0.0.1", "CHUISHAO_PORT": str(port),
           "CHUISHAO_SECRET_KEY": "bench-secret-key"}
    if database_url:
        env["CHUISHAO_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"chuishao {' '.join(args)} failed: {done.stderr.strip()}")
    return done


class Base(str):
    """A running server's base URL that also knows its process (for CPU time)."""
    pid: int


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server_process(argv: Sequence[str], env: dict[str, str], port: int, log_path: Path,
                   health: str = "/healthz", timeout: float = 30.0) -> Iterator[Base]:
    """Start ``argv`` in a subprocess, wait until ``health`` answers, stop it afterwards."""
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(argv), env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(base + health, timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"server did not start; see {log_path}") from None
                    time.sleep(0.1)
            running = Base(base)
            running.pid = proc.pid
            yield running
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextmanager
def temporary_pg_database(server_url: str, prefix: str = "chuishao_bench_") -> Iterator[str]:
    """A fresh PostgreSQL database on the server of ``server_url``, dropped afterwards."""
    import psycopg

    name = prefix + secrets.token_hex(6)
    admin = _with_database(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server_url, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Installation:
    database_url: str
    channel_slug: str
    reviewer_keys: list[bytes]  # private keys, for opening what arrived


def add_reviewer(session: Any, username: str, channel: Channel) -> bytes:
    """A reviewer with a real X25519 key pair who receives every case of ``channel``."""
    private, public = crypto.generate_keypair()
    user = User(username=username, display_name=username, roles="reviewer", active=True,
                user_salt=os.urandom(16), auth_hash="scrypt$unused", public_key=public,
                key_id=crypto.key_id(public).hex(), wrapped_private_key=b"\x01" * 77,
                totp_last_step=0, created_at=utcnow())
    session.add(user)
    session.flush()
    session.add(ChannelRecipient(channel_id=channel.id, user_id=user.id, created_at=utcnow()))
    session.flush()
    return private


def prepare_installation(env: dict[str, str], reviewers: int = 2,
                         slug: str = "acme") -> Installation:
    """migrate, init and add a channel with the real command line; reviewers go in directly."""
    from sqlalchemy import select

    from service.platform.settings import Settings

    run_cli(env, "migrate")
    run_cli(env, "init")
    run_cli(env, "channel", "add", slug, "--kind", "enterprise", "--name-zh", "基准测试厂")
    url = Settings.from_environ(env).database
    database = Database.from_url(url)
    try:
        with database.session() as session:
            channel = session.scalar(select(Channel).where(Channel.slug == slug))
            assert channel is not None
            keys = [add_reviewer(session, f"bench-reviewer{i}", channel)
                    for i in range(reviewers)]
    finally:
        database.dispose()
    return Installation(url, slug, keys)


class Http:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1, as a browser tab would hold."""

    def __init__(self, base: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base)
        if parts.hostname != "127.0.0.1":
            raise ValueError("bench traffic stays on 127.0.0.1")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in [0, 1])."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
