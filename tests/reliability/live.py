"""A real deployment for reliability tests: `chuishao serve` in a subprocess that can be killed
and restarted on the same data, reporters that seal and upload over HTTP, and database checks.

Everything is real: the command line sets the installation up, reviewers have real X25519 key
pairs, reporters seal with service.domain.sealing, and the checks open what was stored with a
reviewer's private key.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crypto
from service.client import ApiError, Client, urllib_transport
from service.domain import sealing
from service.domain.models import Case, Channel, FileChunk, KeySlot, SealedItem, StoredFile
from service.platform.db import Database
from tests.factories import make_reviewer
from tests.serverproc import ROOT, cli_env, free_port, run_cli

RECEIPT_ITERATIONS = 1000
# Cheap but not zero: every submission still spends a real stamp.
POW_DIFFICULTY = 2


class LiveServer:
    """`chuishao serve` on a fixed port and data dir; start, SIGKILL, start again."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.base = f"http://127.0.0.1:{env['CHUISHAO_PORT']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve"],
                                         env=self.env, cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"server did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill9(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def errors_in_log(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if " ERROR " in line]


@contextmanager
def running(server: LiveServer) -> Iterator[LiveServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Deployment:
    """An initialised installation with channel "acme" and two reviewers."""

    data_dir: Path
    env: dict[str, str]
    database_url: str
    reviewer_keys: list[bytes]
    recovery_key: bytes
    salt: bytes = b""
    channel: dict[str, Any] = field(default_factory=dict)

    def server(self, log_name: str = "server.log") -> LiveServer:
        return LiveServer(self.env, self.data_dir.parent / log_name)

    def database(self) -> Database:
        return Database.from_url(self.database_url)

    def client(self, base: str) -> Client:
        return Client(urllib_transport(base, timeout=60), language="en")

    def learn_channel(self, base: str) -> None:
        """What a reporter's browser reads first: the channel's keys and the salt."""
        info = self.client(base).channels()
        self.channel = next(c for c in info["channels"] if c["id"] == "acme")
        self.salt = crypto.b64u_decode(info["installation"]["salt"])
        assert info["installation"]["receipt_iterations"] == RECEIPT_ITERATIONS


def deploy(root: Path, database_url: str | None = None, *, secret_key: bool = True,
           **extra: str) -> Deployment:
    """migrate, init, channel add with the real command line; reviewers inserted directly."""
    data_dir = root / "var"
    settings = {"CHUISHAO_POW_DIFFICULTY": str(POW_DIFFICULTY),
                "CHUISHAO_RECEIPT_ITERATIONS": str(RECEIPT_ITERATIONS), **extra}
    if database_url:
        settings["CHUISHAO_DATABASE_URL"] = database_url
    env = cli_env(data_dir, free_port(), **settings)
    if not secret_key:
        # As in production: the secret is generated into data_dir/secret.key on first start.
        del env["CHUISHAO_SECRET_KEY"]
    for args in (["migrate"], ["init"], ["channel", "add", "acme", "--kind", "enterprise",
                                         "--name-zh", "某机械厂内部举报"]):
        done = run_cli(env, *args)
        assert done.returncode == 0, done.stderr
        if args == ["init"]:
            secret = next(line.strip() for line in done.stdout.splitlines()
                          if line.startswith("    "))
            recovery = crypto.decode_recovery_secret(secret)
    url = database_url or f"sqlite:///{data_dir / 'chuishao.sqlite3'}"
    database = Database.from_url(url)
    try:
        with database.session() as session:
            channel = session.scalar(select(Channel).where(Channel.slug == "acme"))
            keys = [make_reviewer(session, f"reviewer{i}", channel).private_key
                    for i in range(2)]
    finally:
        database.dispose()
    return Deployment(data_dir, env, url, keys, recovery)


# ---------------------------------------------------------------------------- reporters


def file_content(seed: int, size: int) -> bytes:
    """Deterministic, incompressible-looking content, so a check can recompute it."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass
class Sent:
    """What a reporter sent and was told: enough to check the stored case independently."""

    receipt: str
    report: dict[str, Any]
    files: dict[str, str]  # file name -> SHA-256 hex of the content
    case_id: str = ""


def plain(name: str, content: bytes) -> sealing.PlainFile:
    return sealing.PlainFile(name=name, type="application/octet-stream", size=len(content),
                             read=lambda: [content])


def make_report(n: int) -> dict[str, Any]:
    return {"v": 1, "unit": f"某厂{n}号车间", "location": "冲压线东侧", "category": "hazard",
            "description": f"第{n}号报告：光电保护装置被拆除。", "seen_at": "", "insider": "",
            "language": "zh_CN"}


def lookup_hash(deployment: Deployment, receipt: str) -> str:
    return crypto.derive_receipt(receipt, deployment.salt, RECEIPT_ITERATIONS).lookup_hash.hex()


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def followup_feed(client: Client, deployment: Deployment, receipt: str) -> dict[str, Any]:
    """The returning reporter: receipt -> lookup secret -> session -> feed, opened locally."""
    keys = crypto.derive_receipt(receipt, deployment.salt, RECEIPT_ITERATIONS)
    session = client._call("POST", "/api/v1/followup/session",
                           {"lookup_secret": crypto.b64u_encode(keys.lookup_secret),
                            "pow": client.stamp()})
    feed: dict[str, Any] = client._call("GET", "/api/v1/followup", token=session["token"])
    case_id = bytes.fromhex(feed["case_id"])
    # The reporter's slot is v2 where the client sealed it so (PROTOCOL 17.5).
    private = keys.xwing_seed if feed["slot_suite"] == crypto.SUITE_V2 else keys.private
    case_key = crypto.open_slot(feed["slot_suite"], crypto.b64u_decode(feed["slot"]), private,
                                case_id)
    feed["opened"] = {item["id"]: (item["kind"], crypto.open_item(
        case_key, case_id, bytes.fromhex(item["id"]), item["kind"],
        crypto.b64u_decode(item["blob"]))) for item in feed["items"]}
    feed["session_token"] = session["token"]
    feed["case_key"] = case_key
    return feed


def fetch_files(deployment: Deployment, base: str, feed: dict[str, object]) -> dict[str, str]:
    """Download every file of the feed chunk by chunk and decrypt it with the case key."""
    transport = deployment.client(base).transport
    headers = {"Authorization": f"Bearer {feed['session_token']}"}
    case_id = bytes.fromhex(str(feed["case_id"]))
    opened = feed["opened"]
    assert isinstance(opened, dict)
    result = {}
    for file in feed["files"]:  # type: ignore[attr-defined]
        kind, meta = opened[file["meta_item_id"]]
        assert kind == "file-meta"
        chunks = []
        for index in range(file["chunk_count"]):
            status, data = transport("GET", f"/api/v1/followup/files/{file['id']}/chunks/{index}",
                                     headers=headers)
            assert status == 200, (status, data[:200])
            chunks.append(data)
        content = b"".join(crypto.open_file(
            crypto.b64u_decode(meta["key"]), crypto.b64u_decode(meta["prefix"]), case_id,
            bytes.fromhex(file["id"]), chunks, meta["size"]))
        result[meta["name"]] = hashlib.sha256(content).hexdigest()
    return result


# ---------------------------------------------------------------------------- checks


def open_case(session: Session, case_id: str, private_key: bytes) -> dict[str, Any]:
    """Open a stored case as a reviewer: report, and every file's content by name."""
    key_id = crypto.key_id(crypto.public_key(private_key)).hex()
    slot = session.scalar(select(KeySlot).where(KeySlot.case_id == case_id,
                                                KeySlot.key_id == key_id))
    assert slot is not None, f"case {case_id}: no slot for the reviewer"
    raw_case = bytes.fromhex(case_id)
    case_key = crypto.open_key(slot.slot, private_key, raw_case)
    items = {item.id: item for item in session.scalars(
        select(SealedItem).where(SealedItem.case_id == case_id))}
    opened: dict[str, Any] = {"report": None, "files": {}}
    for item in items.values():
        if item.kind == "report":
            opened["report"] = crypto.open_item(case_key, raw_case, bytes.fromhex(item.id),
                                                "report", item.blob)
    for file in session.scalars(select(StoredFile).where(StoredFile.case_id == case_id)):
        meta_item = items[file.meta_item_id]
        meta = crypto.open_item(case_key, raw_case, bytes.fromhex(meta_item.id), "file-meta",
                                meta_item.blob)
        chunks = [c.data for c in session.scalars(
            select(FileChunk).where(FileChunk.file_id == file.id).order_by(FileChunk.index))]
        content = b"".join(crypto.open_file(
            crypto.b64u_decode(meta["key"]), crypto.b64u_decode(meta["prefix"]), raw_case,
            bytes.fromhex(file.id), chunks, meta["size"]))
        opened["files"][meta["name"]] = hashlib.sha256(content).hexdigest()
    return opened


def assert_case_complete(session: Session, deployment: Deployment, sent: Sent) -> Case:
    """The acknowledged case is there, ready, every chunk present, and opens to what was sent."""
    digest = lookup_hash(deployment, sent.receipt)
    case = session.scalar(select(Case).where(Case.lookup_hash == digest))
    assert case is not None, f"acknowledged receipt lost (lookup hash {digest[:12]}…)"
    assert case.ready, f"acknowledged case {case.id} is not ready"
    assert case.upload_token_hash is None and case.draft_expires_at is None
    for file in session.scalars(select(StoredFile).where(StoredFile.case_id == case.id)):
        assert file.complete, f"case {case.id}: file {file.id} incomplete"
    for private in deployment.reviewer_keys:
        opened = open_case(session, case.id, private)
        assert opened["report"] == sent.report, f"case {case.id}: report differs"
        assert opened["files"] == sent.files, f"case {case.id}: files differ"
    return case


def assert_no_half_case(session: Session) -> None:
    """Every ready case has every file complete with all its chunks at the right lengths."""
    from service.domain.intake import expected_chunk_length

    ready = session.scalars(select(Case).where(Case.ready.is_(True))).all()
    for case in ready:
        for file in session.scalars(select(StoredFile).where(StoredFile.case_id == case.id)):
            assert file.complete, f"ready case {case.id} has an incomplete file"
            lengths = dict(session.execute(
                select(FileChunk.index, func.length(FileChunk.data))
                .where(FileChunk.file_id == file.id)).all())
            assert sorted(lengths) == list(range(file.chunk_count)), \
                f"ready case {case.id}: chunks {sorted(lengths)} of {file.chunk_count}"
            for index, length in lengths.items():
                assert length == expected_chunk_length(file.stored_size, file.chunk_count,
                                                       index)
        kinds = session.scalars(select(SealedItem.kind).where(
            SealedItem.case_id == case.id)).all()
        assert kinds.count("report") == 1, f"ready case {case.id} without its report"


def count_cases(session: Session, ready: bool | None = None) -> int:
    query = select(func.count()).select_from(Case)
    if ready is not None:
        query = query.where(Case.ready.is_(ready))
    return int(session.scalar(query) or 0)


def sqlite_integrity(database_url: str) -> list[str]:
    """PRAGMA integrity_check and foreign_key_check, straight through sqlite3."""
    import sqlite3

    path = database_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems == ["ok"]:
            problems = []
        problems += [repr(row) for row in conn.execute("PRAGMA foreign_key_check")]
    finally:
        conn.close()
    return problems


class Errors:
    """Thread-safe error list; the first error asks every worker to stop early."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, what: str) -> None:
        with self.lock:
            self.items.append(what)
        self.stop.set()


def describe(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.status} {exc.code}"
    return f"{type(exc).__name__}: {exc}"
