"""Debian's nginx, configured by deploy/nginx/chuishao.conf, in front of three `chuishao serve`
instances (one of them `--workers 2`) on one PostgreSQL database (issue 16).

Everything goes through nginx over TLS, from a client address of its own (127.0.0.9) that no
log may name: a reporter seals and uploads with the project's client (service/client.py),
reads the case back, opens it without JavaScript and replies through another instance; a
console account is enrolled and signed in with requests that nginx spreads over every
instance; the no-JavaScript ceiling holds in total; bodies too large or too slow are stopped
by nginx before any instance sees them. Then nginx's and the app's logs are read.

The tests share one deployment and run in the order written.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import select

import crypto
from service.client import Client, Transport, solve_pow
from service.domain.models import Case
from service.platform import assets
from service.platform.settings import Settings
from tests.pgutil import temporary_database
from tests.reliability.live import (
    Deployment,
    Sent,
    assert_case_complete,
    deploy,
    file_content,
    followup_feed,
    make_report,
    plain,
)
from tests.serverproc import ROOT, free_port, run_cli

pytestmark = pytest.mark.postgres

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHIPPED = ROOT / "deploy" / "nginx" / "chuishao.conf"
# Reporters and staff connect from this loopback address; no log line may carry it.
CLIENT_ADDRESS = "127.0.0.9"
NOJS_PER_HOUR = 2
BODY_TIMEOUT = 2  # seconds; the shipped 10 s, shortened for the test
PASSWORD = "correct horse battery staple"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
SECRET_ATTR = re.compile(r'data-secret="([A-Z2-7]+)"')
CAPABILITY = re.compile(r'name="capability" value="([^"]+)"')
CASE_FIELD = re.compile(r'name="case" value="([0-9a-f]+)"')
# A line's time: none ("-"), or the start of its hour.
HOURLY = re.compile(r"(- |\d{4}-\d{2}-\d{2} \d{2}:00:00[,.]\d{3} )")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
CLOCK = re.compile(r"\d{1,2}:\d{2}|\d{4}-\d{2}-\d{2}|\d{2}/[A-Z][a-z]{2}/\d{4}")
STATIC_URL = re.compile(r'(?:src|href)="(/static/[^"?#]+)"')
# Module imports, dynamic imports and a worker's script, all relative to the importer.
IMPORT = re.compile(r'(?:from|import|new URL)\s*\(?\s*"(\.{1,2}/[^"]+)"')


@dataclass
class Instance:
    port: int
    log: Path
    proc: subprocess.Popen[bytes]


@dataclass
class Cluster:
    deployment: Deployment
    https_port: int
    http_port: int
    context: ssl.SSLContext
    certificate: Path
    logs: Path
    instances: list[Instance] = field(default_factory=list)

    def tls(self, protocols: list[str]) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certificate))
        context.set_alpn_protocols(protocols)
        return context

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def browser(self) -> Browser:
        return Browser(self.https_port, self.context)

    def app_log(self) -> str:
        return "\n".join(i.log.read_text(errors="replace") for i in self.instances)

    def nginx_logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in sorted(self.logs.iterdir())}


class Browser:
    """HTTPS through nginx from CLIENT_ADDRESS, a new connection per request, with cookies."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port, self.context = port, context
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage,
                                                                 bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context,
                                           source_address=(CLIENT_ADDRESS, 0), timeout=120)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response.status, response.headers, data

    def get(self, path: str) -> tuple[int, str]:
        status, _, data = self.request("GET", path)
        return status, data.decode()

    def post_json(self, path: str, payload: Any, csrf: str) -> tuple[int, Any]:
        status, _, data = self.request("POST", path, json.dumps(payload).encode(), {
            "Content-Type": "application/json", "Accept": "application/json",
            "X-CSRF-Token": csrf, "Origin": f"https://127.0.0.1:{self.port}"})
        return status, json.loads(data) if data.startswith(b"{") else data

    def post_form(self, path: str, fields: dict[str, str],
                  csrf: str | None = None) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Origin": f"https://127.0.0.1:{self.port}"}
        if csrf:
            headers["X-CSRF-Token"] = csrf
        status, _, data = self.request("POST", path, urllib.parse.urlencode(fields).encode(),
                                       headers)
        return status, data.decode()

    def transport(self) -> Transport:
        def send(method: str, path: str, *, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
            status, _, data = self.request(method, path, body, headers)
            return status, data
        return send


# ---------------------------------------------------------------------------- the deployment


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def _substitute(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert old in text, f"deploy/nginx/chuishao.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


def _nginx_conf(prefix: Path, cluster: Cluster, cert: Path, key: Path) -> Path:
    """The shipped site file with this machine's paths and ports, inside a main file that
    keeps every path under ``prefix`` (no root needed, nothing of a system nginx touched)."""
    logs = cluster.logs
    upstreams = "\n".join(f"    server 127.0.0.1:{i.port} max_fails=0;" for i in cluster.instances)
    site = _substitute(SHIPPED.read_text(), {
        "    server 127.0.0.1:8001 max_fails=0;\n    server 127.0.0.1:8002 max_fails=0;":
            upstreams,
        "listen 443 ssl http2;": f"listen 127.0.0.1:{cluster.https_port} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{cluster.http_port};",
        "/etc/ssl/chuishao/fullchain.pem": str(cert),
        "/etc/ssl/chuishao/privkey.pem": str(key),
        "/var/log/nginx/": f"{logs}/",
        "/run/nginx-chuishao/body": str(prefix / "body-chuishao"),
        "/srv/chuishao/service/static/": f"{ROOT}/service/static/",
        "client_body_timeout 10s;": f"client_body_timeout {BODY_TIMEOUT}s;",
    })
    (prefix / "chuishao.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would drop to "nobody", who cannot read the test's folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = prefix / "nginx.conf"
    main.write_text(f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {logs / "main.error.log"} warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    # Debian's default, address first: any request that escaped the site's own logs shows here.
    access_log {logs / "default.access.log"} combined;
    # Debian's nginx.conf turns compression on for every server (text/html by default).
    gzip on;
{temp}
    include {prefix / "chuishao.conf"};
}}
""")
    return main


def _wait_for(port: int, proc: subprocess.Popen[bytes], what: str, path: str = "/healthz",
              tls: ssl.SSLContext | None = None) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            conn: http.client.HTTPConnection = (
                http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=2)
                if tls else http.client.HTTPConnection("127.0.0.1", port, timeout=2))
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(db_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if db_backend != "postgres":
        pytest.skip("several instances need PostgreSQL (--db=postgres)")
    if not os.access(NGINX, os.X_OK) or os.environ.get("CHUISHAO_SKIP_NGINX"):
        if os.environ.get("CI"):
            pytest.fail("nginx is missing (scripts/ensure-nginx.sh); CI runs this test")
        pytest.skip("nginx is not installed (scripts/ensure-nginx.sh)")
    server = os.environ.get("CHUISHAO_TEST_POSTGRES_URL")
    if not server:
        pytest.fail("--db=postgres needs CHUISHAO_TEST_POSTGRES_URL")
    root = tmp_path_factory.mktemp("nginx")
    prefix, logs = root / "nginx", root / "nginx" / "logs"
    logs.mkdir(parents=True)
    cert, key = _certificate(root)
    context = ssl.create_default_context(cafile=str(cert))
    https_port, http_port = free_port(), free_port()
    with temporary_database(server) as url:
        deployment = deploy(
            root, url, CHUISHAO_SECURE_COOKIES="true",
            CHUISHAO_BASE_URL=f"https://127.0.0.1:{https_port}",
            CHUISHAO_NOJS_SUBMISSIONS_PER_HOUR=str(NOJS_PER_HOUR),
            CHUISHAO_PASSWORD_ITERATIONS="1000", CHUISHAO_SCRYPT_N="1024",
            CHUISHAO_LOGIN_POW_DIFFICULTY="2")
        cluster = Cluster(deployment, https_port, http_port, context, cert, logs)
        nginx: subprocess.Popen[bytes] | None = None
        try:
            for number, workers in enumerate((1, 1, 2)):
                env = {**deployment.env, "CHUISHAO_PORT": str(free_port())}
                log = root / f"app{number}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "service.cli", "serve", "--workers", str(workers)],
                        env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
                cluster.instances.append(Instance(int(env["CHUISHAO_PORT"]), log, proc))
            for number, instance in enumerate(cluster.instances):
                _wait_for(instance.port, instance.proc, f"instance {number}")
            main = _nginx_conf(prefix, cluster, cert, key)
            nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(main),
                                      "-e", str(logs / "startup.error.log"),
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
            _wait_for(https_port, nginx, "nginx", tls=context)
            yield cluster
        finally:
            if nginx is not None:
                _stop(nginx)
            for instance in cluster.instances:
                _stop(instance.proc)


def _errors(cluster: Cluster) -> list[str]:
    return [line for line in cluster.app_log().splitlines()
            if " ERROR " in line or "Traceback" in line]


# ---------------------------------------------------------------------------- the tests


def _bytes(size: str) -> int:
    number, unit = int(size[:-1]), size[-1]
    return number * {"k": 1024, "m": 1024 * 1024}[unit]


def test_body_limits_match_the_settings() -> None:
    """nginx refuses what the service would refuse, and nothing it would take: its limit per
    location is the service's default for that route (a chunk's within 1 KiB above it)."""
    text = SHIPPED.read_text()
    limits = {location.strip(): _bytes(size) for location, size in re.findall(
        r"location ([^{]+)\{[^}]*?client_max_body_size (\d+[km]);", text)}
    server = _bytes(re.search(r"^    client_max_body_size (\d+[km]);", text, re.M).group(1))  # type: ignore[union-attr]
    defaults = Settings()
    assert server == defaults.max_form_bytes
    assert limits["= /report"] == limits["= /followup/reply"] == defaults.max_nojs_bytes
    # The no-JavaScript form is plaintext: passed on as it arrives, never in nginx's files.
    for location in ("= /report", "= /followup/reply"):
        block = re.search(r"location " + re.escape(location) + r" \{([^}]*)\}", text)
        assert block is not None and "proxy_request_buffering off;" in block.group(1)
    (chunks,) = [size for location, size in limits.items() if "chunks" in location]
    assert defaults.max_chunk_bytes <= chunks < defaults.max_chunk_bytes + 1024


def test_tls_http2_and_static_files_from_nginx(cluster: Cluster) -> None:
    with socket.create_connection(("127.0.0.1", cluster.https_port)) as raw:
        tls = cluster.tls(["h2", "http/1.1"])
        with tls.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped:
            assert wrapped.selected_alpn_protocol() == "h2"
            assert wrapped.version() in ("TLSv1.2", "TLSv1.3")
    plain_http = http.client.HTTPConnection("127.0.0.1", cluster.http_port, timeout=5)
    plain_http.request("GET", "/followup")
    answer = plain_http.getresponse()
    assert answer.status == 301
    assert answer.headers["Location"].startswith("https://127.0.0.1")
    assert answer.headers["Location"].endswith("/followup")

    browser = cluster.browser()
    # Every stylesheet, script and icon the pages name (under the release's content-hashed
    # prefix), and every module those scripts import by relative URL: from nginx, kept a year.
    version = assets.current().version
    named: set[str] = set()
    for page in ("/", "/followup", "/console/login"):
        status, html = browser.get(page)
        assert status == 200, page
        named |= set(STATIC_URL.findall(html))
    assert any(url.endswith(".js") for url in named) and any(url.endswith(".css")
                                                             for url in named), named
    queue, seen = sorted(named), set()
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        assert url.startswith(f"/static/{version}/"), url
        path = url.removeprefix(f"/static/{version}/")
        status, headers, body = browser.request("GET", url)
        assert status == 200, url
        assert body == (ROOT / "service/static" / path).read_bytes(), url
        assert headers["Cache-Control"] == assets.IMMUTABLE, url
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
        if url.endswith(".js"):
            assert headers["Content-Type"].split(";")[0] in ("application/javascript",
                                                             "text/javascript")
            base = url.rsplit("/", 1)[0]
            queue += [urllib.parse.urljoin(f"{base}/", relative)
                      for relative in IMPORT.findall(body.decode())]
    assert len(seen) > len(named)  # the imports were followed too
    # A file named without the prefix (a direct link) is kept briefly, as the service does.
    status, headers, body = browser.request("GET", "/static/js/intake.js")
    assert status == 200
    assert body == (ROOT / "service/static/js/intake.js").read_bytes()
    assert headers["Cache-Control"] == assets.SHORT and headers["ETag"]
    # Scripts and stylesheets hold no secret: compressed.
    status, headers, body = browser.request("GET", next(u for u in named if u.endswith(".js")),
                                            headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    # Pages still come from the service, with its own headers, and nginx compresses none
    # (BREACH): only the reporter's empty forms arrive compressed, by the service itself.
    for page in ("/", "/console/login"):
        status, headers, _ = browser.request("GET", page, headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Cache-Control"] == "no-store"
        assert "default-src" in headers["Content-Security-Policy"]
        assert headers.get("Content-Encoding") == ("gzip" if page == "/" else None), page


def test_reporter_flow_through_nginx(cluster: Cluster) -> None:
    deployment = cluster.deployment
    client = Client(cluster.browser().transport(), language="en")
    info = client.channels()
    deployment.channel = next(c for c in info["channels"] if c["id"] == "acme")
    deployment.salt = crypto.b64u_decode(info["installation"]["salt"])
    # Larger than what travels inside the submission: sent in batches of encrypted chunks
    # (23 chunks, one batch here), through nginx to one of the three instances.
    content = file_content(16, 1_500_000)
    report = make_report(16)
    receipt = client.submit("acme", report, files=[plain("evidence.bin", content)])
    sent = Sent(receipt, report, {"evidence.bin": hashlib.sha256(content).hexdigest()})

    feed = followup_feed(client, deployment, receipt)
    assert [body for kind, body in feed["opened"].values() if kind == "report"] == [report]
    downloaded = _download(client, feed)
    assert downloaded == sent.files
    with deployment.database().session() as session:
        case = assert_case_complete(session, deployment, sent)
        case_id = case.id

    # Without JavaScript: the receipt opens the case on one instance; the reply carries the
    # capability it issued and lands on another (the key that seals it is shared).
    browser = cluster.browser()
    status, page = browser.post_form("/followup", {"receipt": receipt, "sealing": "noscript"})
    assert status == 200, page[:500]
    capability = CAPABILITY.search(page)
    assert capability and CASE_FIELD.search(page).group(1) == case_id  # type: ignore[union-attr]
    for text in ("第一条补充：夜班仍在使用。", "第二条补充：今天又见到了。"):
        status, page = browser.post_form("/followup/reply", {
            "case": case_id, "capability": capability.group(1), "text": text,
            "sealing": "noscript"})
        assert status == 200, page[:500]
        assert text in page
    assert not _errors(cluster)


def _download(client: Client, feed: dict[str, Any]) -> dict[str, str]:
    case_id = bytes.fromhex(feed["case_id"])
    result = {}
    for file in feed["files"]:
        kind, meta = feed["opened"][file["meta_item_id"]]
        chunks = []
        for index in range(file["chunk_count"]):
            status, data = client.transport(
                "GET", f"/api/v1/followup/files/{file['id']}/chunks/{index}",
                headers={"Authorization": f"Bearer {feed['session_token']}"})
            assert status == 200
            chunks.append(data)
        content = b"".join(crypto.open_file(
            crypto.b64u_decode(meta["key"]), crypto.b64u_decode(meta["prefix"]), case_id,
            bytes.fromhex(file["id"]), chunks, meta["size"]))
        result[meta["name"]] = hashlib.sha256(content).hexdigest()
    return result


def _code(secret: bytes, offset: int = 0) -> str:
    return TOTP(secret, 6, SHA1(), 30).generate(time.time() + 30 * offset).decode()  # noqa: S303


def test_console_session_across_instances(cluster: Cluster) -> None:
    done = run_cli(cluster.deployment.env, "invite", "--role", "admin")
    assert done.returncode == 0, done.stderr
    link = next(line for line in done.stdout.splitlines() if "/console/invite/" in line).strip()
    token = link.rsplit("/", 1)[1]

    # Enrolment as invite.js does it: every request may reach another instance.
    new = cluster.browser()
    status, page = new.get(f"/console/invite/{token}")
    assert status == 200, page[:300]
    csrf = CSRF_META.search(page).group(1)  # type: ignore[union-attr]
    salt = os.urandom(16)
    keys = crypto.derive_password(PASSWORD, salt, 1000)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    status, answer = new.post_json(f"/console/invite/{token}", {
        "username": "ops", "display_name": "ops", "user_salt": crypto.b64u_encode(salt),
        "auth_secret": crypto.b64u_encode(keys.auth_secret),
        "public_key": crypto.b64u_encode(public),
        "wrapped_private_key": crypto.b64u_encode(crypto.wrap_private_key(keys.kek, private,
                                                                          kid))}, csrf)
    assert status == 200, answer
    status, page = new.get(f"/console/invite/{token}/totp")
    shown = SECRET_ATTR.search(page).group(1)  # type: ignore[union-attr]
    secret = crypto.b32_decode(shown)
    csrf = CSRF_META.search(page).group(1)  # type: ignore[union-attr]
    status, page = new.post_form(f"/console/invite/{token}/totp",
                                 {"csrf_token": csrf, "code": _code(secret)}, csrf)
    assert status == 303, page[:300]

    # Sign-in as login.js does it, then the same session on every instance.
    staff = cluster.browser()
    console_log = cluster.logs / "chuishao.console.log"
    before = len(console_log.read_text().splitlines())
    status, page = staff.get("/console/login")
    csrf = CSRF_META.search(page).group(1)  # type: ignore[union-attr]
    status, pre = staff.post_json("/console/api/prelogin", {"username": "ops"}, csrf)
    assert status == 200, pre
    keys = crypto.derive_password(PASSWORD, crypto.b64u_decode(pre["salt"]), pre["iterations"])
    # The enrolment used this step's code, and a code is good once: the next step's.
    status, answer = staff.post_json("/console/login", {
        "username": "ops", "auth_secret": crypto.b64u_encode(keys.auth_secret),
        "totp": _code(secret, 1), "pow": solve_pow(pre["pow"]["challenge"],
                                                   pre["pow"]["difficulty"])}, csrf)
    assert status == 200, answer
    assert crypto.unwrap_private_key(keys.kek, crypto.b64u_decode(answer["wrapped_private_key"]),
                                     bytes.fromhex(answer["key_id"])) == private
    for _ in range(6):
        status, page = staff.get("/console/cases")
        assert status == 200 and "ops" in page
    lines = console_log.read_text().splitlines()[before:]
    upstreams = {line.rsplit(" ", 1)[1] for line in lines}
    assert upstreams == {f"127.0.0.1:{i.port}" for i in cluster.instances}, lines
    # The session is one row in the database, not a process's memory: sign out on one
    # instance and every instance refuses the cookie.
    status, page = staff.get("/console/account")
    csrf = CSRF_META.search(page).group(1)  # type: ignore[union-attr]
    status, _ = staff.post_form("/console/logout", {"csrf_token": csrf}, csrf)
    assert status in (200, 303)
    for _ in range(3):
        status, _ = staff.get("/console/cases")
        assert status in (302, 303, 401)


def test_the_nojs_ceiling_holds_in_total(cluster: Cluster) -> None:
    with cluster.deployment.database().session() as session:
        before = len(session.scalars(select(Case.id)).all())
    statuses = []
    browser = cluster.browser()
    for n in range(6):
        # Each send from a form of its own, as a reporter's browser would: one-time tokens.
        _, form = browser.get("/")
        token = re.search(r'name="form_token" value="([^"]+)"', form)
        assert token is not None
        status, _ = browser.post_form("/report", {
            "channel": "acme", "unit": f"某厂{n}", "location": "仓库", "category": "hazard",
            "description": "消防通道被堵。", "insider": "no", "sealing": "noscript",
            "form_token": token.group(1)})
        statuses.append(status)
    # Three processes' own buckets would let at least three through; the shared window two.
    # (A filed report answers 303 to the receipt page.)
    assert sorted(statuses) == [303] * NOJS_PER_HOUR + [429] * (6 - NOJS_PER_HOUR), statuses
    with cluster.deployment.database().session() as session:
        assert len(session.scalars(select(Case.id)).all()) == before + NOJS_PER_HOUR


def _open_body_files(prefix: Path) -> list[str]:
    """Request-body files nginx holds open under ``prefix`` (it unlinks them at once, so only
    its descriptors show them)."""
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(prefix)) and ("/body-chuishao/" in target
                                              or "/client_body/" in target):
            found.append(target)
    return found


def test_a_nojs_form_larger_than_memory_passes_unbuffered(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    """A 60 MB no-JavaScript form reaches an instance (the old 50m limit refused it), and
    while it is on its way none of its plaintext lands in nginx's temporary files."""
    browser = cluster.browser()
    _, form = browser.get("/")
    boundary = "----nginxtest"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="sealing"\r\n\r\n'
            f'noscript\r\n--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n').encode()
    marker = b"\x00\x00\x00\x18ftypmp42" + b"PLAINTEXT-EVIDENCE " * 3_300_000
    tail = f"\r\n--{boundary}--\r\n".encode()
    raw = socket.create_connection(("127.0.0.1", cluster.https_port),
                                   source_address=(CLIENT_ADDRESS, 0))
    with cluster.tls(["http/1.1"]).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(b"POST /report HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: multipart/form-data; boundary=" + boundary.encode() +
                     b"\r\nContent-Length: " + str(len(head) + len(marker) + len(tail)).encode() +
                     b"\r\nConnection: close\r\n\r\n" + head)
        half = len(marker) // 2
        sock.sendall(marker[:half])
        time.sleep(1)
        buffered = _open_body_files(cluster.logs.parent)
        sock.sendall(marker[half:] + tail)
        sock.settimeout(120)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert buffered == []
    # The instance read it all and refused it for what it lacks (its form token), with the
    # form again: not nginx's 413.
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 400 " in status_line and b"<center>nginx" not in answer, status_line
    assert "id=\"refusal\"" in answer.decode("utf-8", errors="replace")
    assert form  # the page was served: the deployment is up


def test_stamps_and_sign_in_prices_are_shared(cluster: Cluster) -> None:
    # One stamp, sent three times: nginx hands each try to the next instance.
    client = Client(cluster.browser().transport(), language="en")
    stamp = client.stamp()
    answers = []
    for _ in range(3):
        status, _, body = cluster.browser().request(
            "POST", "/api/v1/followup/session",
            json.dumps({"lookup_secret": crypto.b64u_encode(os.urandom(32)),
                        "pow": stamp}).encode(),
            {"Content-Type": "application/json", "Accept": "application/json"})
        answers.append((status, json.loads(body)["error"]["code"]))
    assert answers[0][1] != "pow_invalid", answers
    assert [code for _, code in answers[1:]] == ["pow_invalid", "pow_invalid"], answers

    # Failed sign-ins for one name, each on another instance: every one counts, and the
    # next stamp's price rises by one bit per failure beyond the three free ones.
    browser = cluster.browser()
    status, page = browser.get("/console/login")
    csrf = CSRF_META.search(page).group(1)  # type: ignore[union-attr]
    for _ in range(5):
        status, pre = browser.post_json("/console/api/prelogin", {"username": "ops"}, csrf)
        status, answer = browser.post_json("/console/login", {
            "username": "ops", "auth_secret": crypto.b64u_encode(os.urandom(32)),
            "totp": "000000", "pow": solve_pow(pre["pow"]["challenge"],
                                               pre["pow"]["difficulty"])}, csrf)
        assert status in (400, 401, 403), answer
    status, pre = browser.post_json("/console/api/prelogin", {"username": "ops"}, csrf)
    assert pre["pow"]["difficulty"] == 2 + (5 - 3)


def test_bodies_too_large_or_too_slow_never_reach_an_instance(cluster: Cluster) -> None:
    before = cluster.app_log()
    browser = cluster.browser()
    status, _, body = browser.request("POST", "/api/v1/submissions", b"{" + b" " * 3_000_000,
                                      {"Content-Type": "application/json"})
    assert status == 413 and b"nginx" in body
    status, _, _ = browser.request("PUT", "/api/v1/followup/files/ab/chunks/0", b"x" * 70_000,
                                   {"Content-Type": "application/octet-stream"})
    assert status == 413
    status, _, _ = browser.request("PUT", "/api/v1/followup/files/ab/batch/0/64",
                                   b"x" * 4_300_000, {"Content-Type": "application/octet-stream"})
    assert status == 413
    # A body that stops coming: nginx gives up after client_body_timeout.
    raw = socket.create_connection(("127.0.0.1", cluster.https_port),
                                   source_address=(CLIENT_ADDRESS, 0))
    tls = cluster.tls(["http/1.1"])
    with tls.wrap_socket(raw, server_hostname="127.0.0.1") as slow:
        slow.sendall(b"POST /api/v1/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        slow.settimeout(BODY_TIMEOUT * 5)
        answer = b""
        try:
            while chunk := slow.recv(4096):
                answer += chunk
        except (ssl.SSLError, ConnectionResetError):
            pass
        waited = time.monotonic() - started
    assert BODY_TIMEOUT - 0.5 <= waited < BODY_TIMEOUT * 4, waited
    assert answer == b"" or b" 408 " in answer.split(b"\r\n", 1)[0]
    after = cluster.app_log()[len(before):]
    assert "POST /api/v1/submissions" not in after and "PUT /api/v1/followup" not in after


def test_no_address_and_no_fine_time_for_reporters_in_any_log(cluster: Cluster) -> None:
    logs = cluster.nginx_logs()
    for name, text in {**logs, "app": cluster.app_log()}.items():
        assert CLIENT_ADDRESS not in text, f"{name} names the client"
        assert "client:" not in text, name
    # Nothing escaped the site's own logs into nginx's default one.
    assert logs.get("default.access.log", "") == ""
    public = logs["chuishao.public.log"].splitlines()
    assert any(line.startswith("POST /report 303") for line in public), public
    assert any(line.startswith("PUT /api/v1/submissions/* 20") for line in public), \
        sorted({line.rsplit(" ", 1)[0] for line in public})
    assert any(line.startswith("POST /followup/reply 200") for line in public), public
    for line in public:
        assert not CLOCK.search(line) and not IPV4.search(line), line
        assert not re.search(r"[0-9a-f]{16}", line), line
    console = logs["chuishao.console.log"].splitlines()
    assert console and all(CLOCK.search(line) for line in console)
    # The app's access lines: the console's keep their time; reporters' routes carry none
    # finer than the granularity (an hour here). Read after a clean stop, which writes out
    # whatever an instance still holds.
    for instance in cluster.instances:
        _stop(instance.proc)
    app = cluster.app_log()
    assert CLIENT_ADDRESS not in app
    access = [line for line in app.splitlines() if " chuishao.access: " in line]
    reporters = [line for line in access
                 if not line.split(" chuishao.access: ")[1].split(" ")[1].startswith("/console")]
    assert any(" /report " in line for line in reporters)
    for line in reporters:
        assert HOURLY.match(line), line
    assert any(CLOCK.match(line) and not HOURLY.match(line) for line in access
               if " /console" in line), [line for line in access if "console" in line][:5]
    # nginx served the static files itself; no instance saw them.
    assert "/static/" not in "\n".join(access)
