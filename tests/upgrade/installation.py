"""An installation of the first version (tests/fixtures/v0.1), copied, migrated and opened
the way its people open it: reporters with their receipts through the public API, staff with
password and TOTP through the console's own endpoints, the operator through `chuishao`.

Nothing here reads a table: every check goes through a path a browser or the command line
takes, so a migration that loses or garbles data shows up as a person who cannot get in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

import crypto
from service.client import Client, solve_pow
from tests.factories import testclient_transport

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "v0.1"
CHUISHAO = Path(sys.executable).with_name("chuishao")
BASE_URL = "https://testserver"


@dataclass
class Installation:
    backend: str  # "sqlite" or "postgres"
    root: Path  # the copy: manifest, exports, sent files
    data_dir: Path
    database_url: str
    manifest: dict[str, Any]
    exports_dir: Path
    migrate_output: str = ""
    holders: set[tuple[str, str]] = field(default_factory=set)  # (username, case id) with a key

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHUISHAO_")}
        env.update({"CHUISHAO_DATA_DIR": str(self.data_dir),
                    "CHUISHAO_BASE_URL": self.manifest["settings"]["CHUISHAO_BASE_URL"]})
        if self.database_url:
            env["CHUISHAO_DATABASE_URL"] = self.database_url
        return env

    def chuishao(self, *args: str, stdin: str = "", cwd: Path | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(CHUISHAO), *args], input=stdin, capture_output=True,
                              text=True, env=self.env(), cwd=cwd or self.root, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"chuishao {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done


def copy_sqlite(target: Path) -> Installation:
    root = target / "v0.1"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("postgres*"))
    data = root / "data"
    data.mkdir()
    for name in ("chuishao.sqlite3", "secret.key", "signing.key"):
        (root / name).rename(data / name)
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return Installation("sqlite", root, data, "", manifest, root / "exports")


def load_postgres(target: Path, server_url: str, database: str) -> Installation:
    """Restore the fixture's pg_dump into a new database, with psql as an operator would."""
    root = target / "v0.1-postgres"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("chuishao.sqlite3"))
    base = server_url.rsplit("/", 1)[0]
    url = f"{base}/{database}"
    for command in (["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", server_url, "-c",
                     f'CREATE DATABASE "{database}"'],
                    ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url,
                     "-f", str(root / "postgres.sql")]):
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    manifest = json.loads((root / "postgres-manifest.json").read_text(encoding="utf-8"))
    return Installation("postgres", root, root / "postgres-data",
                        url.replace("postgresql://", "postgresql+psycopg://", 1), manifest,
                        root / "postgres-exports")


def drop_postgres(server_url: str, database: str) -> None:
    subprocess.run(["psql", "-q", "-d", server_url, "-c",
                    f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
                   capture_output=True, timeout=60)


# ---------------------------------------------------------------------------- pages


def data_island(html: str, island: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="{island}">(.*?)</script>', html,
                      re.S)
    assert found, f"no #{island} on the page"
    return json.loads(found.group(1).replace("<\\/", "</"))


def meta(html: str, name: str) -> str:
    found = re.search(rf'<meta name="{name}" content="([^"]*)"', html)
    assert found, f"no <meta name={name}>"
    return unescape(found.group(1))


def visible_text(html: str) -> str:
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


# ---------------------------------------------------------------------------- TOTP


def totp(secret_base32: str, at: float | None = None) -> tuple[str, int]:
    """RFC 6238 (SHA-1, 6 digits, 30 s), written out as an authenticator app does it."""
    key = crypto.b32_decode(secret_base32)
    step = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{number:06d}", step


# ---------------------------------------------------------------------------- reporter


@dataclass
class Reporter:
    """The follow-up page's steps (docs/API.md §6.1) for one receipt."""

    client: TestClient
    receipt: str
    keys: crypto.ReceiptKeys = field(init=False)
    token: str = field(init=False)

    def __post_init__(self) -> None:
        api = Client(testclient_transport(self.client), language="zh-CN")
        self.api = api
        info = api.channels()["installation"]
        self.keys = crypto.derive_receipt(self.receipt, crypto.b64u_decode(info["salt"]),
                                          info["receipt_iterations"])
        answer = api._call("POST", "/api/v1/followup/session", {
            "lookup_secret": crypto.b64u_encode(self.keys.lookup_secret), "pow": api.stamp()})
        self.token = answer["token"]

    def feed(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api._call("GET", "/api/v1/followup", token=self.token)
        return result

    def rewards(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api._call("GET", "/api/v1/followup/rewards",
                                                      token=self.token)["rewards"]
        return result

    def chunk(self, file_id: str, index: int) -> bytes:
        response = self.client.get(f"/api/v1/followup/files/{file_id}/chunks/{index}",
                                   headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200, response.text
        return response.content


# ---------------------------------------------------------------------------- staff


@dataclass
class Staff:
    """A console account signed in as login.js does it: prelogin salt, PBKDF2 in the client,
    the authentication secret and a TOTP code to /console/login, the private key unwrapped."""

    client: TestClient
    username: str
    cookies: dict[str, str]
    private_key: bytes
    key_id: str

    def get(self, path: str) -> Any:
        self.client.cookies.clear()
        for name, value in self.cookies.items():
            self.client.cookies.set(name, value)
        return self.client.get(path, follow_redirects=False)

    def post(self, path: str, **kwargs: Any) -> Any:
        page = self.get("/console/account")
        assert page.status_code == 200, page.text
        headers = {"X-CSRF-Token": meta(page.text, "csrf-token"), **kwargs.pop("headers", {})}
        if "data" in kwargs:
            kwargs["data"] = {"csrf_token": headers["X-CSRF-Token"], **kwargs["data"]}
        return self.client.post(path, headers=headers, follow_redirects=False, **kwargs)


def sign_in(client: TestClient, username: str, password: str, totp_secret: str) -> Staff:
    client.cookies.clear()
    # The login page hands out the CSRF token its script sends with every call.
    page = client.get("/console/login")
    headers = {"X-CSRF-Token": meta(page.text, "csrf-token")}
    pre = client.post("/console/api/prelogin", json={"username": username}, headers=headers)
    assert pre.status_code == 200, pre.text
    keys = crypto.derive_password(password, crypto.b64u_decode(pre.json()["salt"]),
                                  pre.json()["iterations"])
    challenge = pre.json()["pow"]  # every attempt pays a proof-of-work stamp, as login.js does
    code, step = totp(totp_secret)
    answer = client.post("/console/login", json={
        "username": username, "auth_secret": crypto.b64u_encode(keys.auth_secret),
        "totp": code, "pow": solve_pow(challenge["challenge"], challenge["difficulty"])},
        headers=headers)
    if answer.status_code != 200 and totp(totp_secret)[1] != step:
        # The code went stale between computing and sending it: the next step's code.
        code, _ = totp(totp_secret)
        again = client.post("/console/api/prelogin", json={"username": username},
                            headers=headers).json()["pow"]
        answer = client.post("/console/login", json={
            "username": username, "auth_secret": crypto.b64u_encode(keys.auth_secret),
            "totp": code, "pow": solve_pow(again["challenge"], again["difficulty"])},
            headers=headers)
    assert answer.status_code == 200, f"{username} cannot sign in: {answer.text}"
    data = answer.json()
    private = crypto.unwrap_private_key(keys.kek, crypto.b64u_decode(data["wrapped_private_key"]),
                                        bytes.fromhex(data["key_id"]))
    return Staff(client, username, dict(client.cookies.items()), private, data["key_id"])


def open_case_page(staff: Staff, case_id: str) -> tuple[str, dict[str, Any]]:
    """The case page as case.js reads it: the slot opened with the reviewer's key, then every
    item; file chunks from the console's chunk endpoint."""
    page = staff.get(f"/console/cases/{case_id}")
    assert page.status_code == 200, f"{staff.username} cannot open {case_id}: {page.status_code}"
    data = data_island(page.text, "case-data")
    raw_id = bytes.fromhex(case_id)
    opened: dict[str, Any] = {"items": [], "files": {}, "notes": []}
    if not data["slot"]:
        return page.text, opened
    key = crypto.open_key(crypto.b64u_decode(data["slot"]), staff.private_key, raw_id, "case")
    internal = (crypto.open_key(crypto.b64u_decode(data["internal_slot"]), staff.private_key,
                                raw_id, "internal") if data["internal_slot"] else None)
    metas = {}
    for item in data["items"]:
        use = internal if item["kind"] == "note" else key
        if use is None:
            continue
        body = crypto.open_item(use, raw_id, bytes.fromhex(item["id"]), item["kind"],
                                crypto.b64u_decode(item["blob"]))
        (opened["notes"] if item["kind"] == "note" else opened["items"]).append(
            {"kind": item["kind"], "author": item["author"], **body})
        if item["kind"] == "file-meta":
            metas[item["id"]] = body
    for f in data["files"]:
        body = metas[f["meta_item_id"]]
        chunks = [staff.get(f"/console/cases/{case_id}/files/{f['id']}/chunks/{i}").content
                  for i in range(f["chunk_count"])]
        opened["files"][f["id"]] = file_sha256(body, raw_id, f["id"], chunks)
    return page.text, opened


def open_identity(staff: Staff, case_id: str) -> dict[str, Any] | None:
    """The reporter's name and contact as case.js gets them: POST …/identity (audited), then
    opened with the case key; a stand-in item (no identity given) opens to nothing."""
    page = staff.get(f"/console/cases/{case_id}")
    data = data_island(page.text, "case-data")
    answer = staff.post(f"/console/cases/{case_id}/identity", json={})
    assert answer.status_code == 200, answer.text
    raw_id = bytes.fromhex(case_id)
    key = crypto.open_key(crypto.b64u_decode(data["slot"]), staff.private_key, raw_id, "case")
    for item in answer.json()["items"]:
        try:
            return crypto.open_item(key, raw_id, bytes.fromhex(item["id"]), item["kind"],
                                    crypto.b64u_decode(item["blob"]))
        except crypto.OpenError:
            continue
    return None


def file_sha256(meta_item: dict[str, Any], case_id: bytes, file_id: str,
                chunks: list[bytes]) -> str:
    plain = b"".join(crypto.open_file(crypto.b64u_decode(meta_item["key"]),
                                      crypto.b64u_decode(meta_item["prefix"]), case_id,
                                      bytes.fromhex(file_id), iter(chunks), meta_item["size"]))
    return hashlib.sha256(plain).hexdigest()


def messages_of(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(from, text) of the conversation, in the order the case holds it."""
    return [("reviewer" if i["kind"] == "message" else "reporter", i["text"])
            for i in items if i["kind"] in ("message", "reply")]


def by_author(conversation: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each side's messages in order. Across sides, messages of one time bucket are not
    ordered more finely than the bucket (docs/THREAT-MODEL.md §6): a reply within the hour of
    a reviewer's message may be listed after it."""
    sides: dict[str, list[str]] = {}
    for side, text in conversation:
        sides.setdefault(side, []).append(text)
    return sides


def iter_cases(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from sorted(manifest["cases"].items())
