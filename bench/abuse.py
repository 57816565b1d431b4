"""Figures of the cheap storage and sign-in attacks (docs/THREAT-MODEL.md section 2.6.1).

Runs each attack in process against a fresh SQLite file and prints what it achieved: rows
written, bytes accepted, file size, who got in. No floor: these are attack figures, not
speed. Give it another checkout to measure that one (an older version, for "before"):

    .venv/bin/python bench/abuse.py [CHECKOUT]
"""
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

tree = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, tree)
os.chdir(tree)

from sqlalchemy import text  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import crypto  # noqa: E402
from service.app import create_app  # noqa: E402
from tests.conftest import BASE_URL, fast_settings  # noqa: E402
from tests.factories import api_client, make_world  # noqa: E402
from tests.reviewer import test_accounts as ta  # noqa: E402

# Checkouts from before the layers (service/platform, service/domain) kept every module flat
# under service/, and accounts under reviewer/. Decided by the tree, not by trying: an
# installed checkout's modules would answer the import instead.
if (Path(tree) / "service" / "domain").is_dir():
    from service.domain import accounts, housekeeping, sealing
    from service.domain.installation import get_installation
    from service.platform import migrate
    from service.platform.db import Database
else:
    from service.db import Database  # type: ignore[no-redef]
    from service.installation import get_installation  # type: ignore[no-redef]

    from reviewer import accounts  # type: ignore[no-redef]
    from service import housekeeping, migrate, sealing  # type: ignore[no-redef]
try:  # the reporter's slot by the suite the feed names (v2 where the hybrid is)
    from tests.factories import open_reporter_slot
except ImportError:
    def open_reporter_slot(feed, keys, case_id):
        return crypto.open_key(crypto.b64u_decode(feed["slot"]), keys.private,
                               bytes.fromhex(case_id))

MIB = 1024 * 1024
REPORT = {"v": 1, "unit": "x", "location": "y", "category": "hazard", "description": "z",
          "seen_at": "", "insider": "", "language": "zh_CN"}
out = {}


def fresh():
    tmp = Path(tempfile.mkdtemp(prefix="chuishao-abuse-"))
    url = f"sqlite:///{tmp}/m.sqlite3"
    migrate.upgrade(url)
    database = Database.from_url(url)
    if hasattr(housekeeping, "enable_incremental_vacuum"):
        housekeeping.enable_incremental_vacuum(database)
    settings = fast_settings(tmp / "var", database_url=url)
    with database.session() as session:
        make_world(session, settings)
    return database, settings, tmp / "m.sqlite3"


def count(database, table):
    with database.bind.connect() as conn:
        try:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
        except Exception:
            return None


def size(path):
    wal = Path(str(path) + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# 1. CSRF flood
database, settings, path = fresh()
with TestClient(create_app(settings, database=database), base_url=BASE_URL) as client:
    start = time.perf_counter()
    for _ in range(300):
        client.post("/console/login", data={"x": "1"})
    took = time.perf_counter() - start
    out["csrf_300"] = {"audit_rows": count(database, "audit_log"),
                       "counter_rows": count(database, "refusal_counts"),
                       "seconds": round(took, 2)}

    # 2. one stamp, 20 x 200 MiB declared
    api = api_client(client)
    info = api.channels()
    files = [sealing.PlainFile(name=f"{i}", type="video/mp4", size=200 * MIB,
                               read=lambda: iter(())) for i in range(20)]
    sealed = sealing.seal_submission(info["channels"][0],
                                     crypto.b64u_decode(info["installation"]["salt"]),
                                     settings.receipt_iterations, REPORT, None, files)
    r = client.post("/api/v1/submissions", json={**sealed.envelope, "pow": api.stamp()})
    declared = sum(f["stored_size"] for f in sealed.envelope["files"])
    out["draft_20x200MiB_base_stamp"] = {"status": r.status_code,
                                         "declared_MiB": round(declared / MIB),
                                         "accepted_MiB": round(declared / MIB)
                                         if r.status_code == 201 else 0}
    # 3. one follow-up session, 200 replies of ~256 KiB
    receipt = api.submit("acme", REPORT)
    with database.session() as s:
        salt = get_installation(s).salt
    keys = crypto.derive_receipt(receipt, salt, settings.receipt_iterations)
    token = client.post("/api/v1/followup/session", json={
        "lookup_secret": crypto.b64u_encode(keys.lookup_secret),
        "pow": api.stamp()}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    feed = client.get("/api/v1/followup", headers=auth).json()
    case_id = feed["case_id"]
    key = open_reporter_slot(feed, keys, case_id)
    accepted = 0
    start = time.perf_counter()
    for _ in range(200):
        item = sealing.seal_item_for_case(key, case_id, "reply", {"v": 1, "text": "x" * 250_000})
        if client.post("/api/v1/followup/items", json=item, headers=auth).status_code == 201:
            accepted += 1
    took = time.perf_counter() - start
    with database.bind.connect() as conn:
        stored = conn.execute(text("SELECT sum(length(blob)) FROM sealed_items "
                                   "WHERE case_id = :c"), {"c": case_id}).scalar()
    out["followup_200_replies"] = {"accepted": accepted, "case_item_MiB": round(stored / MIB, 1),
                                   "seconds": round(took, 1)}

    # 4. discard an 8 MiB draft: file size
    housekeeping.purge_once(database)
    data = os.urandom(8 * MIB)
    sealed = sealing.seal_submission(info["channels"][0],
                                     crypto.b64u_decode(info["installation"]["salt"]),
                                     settings.receipt_iterations, REPORT, None,
                                     [sealing.PlainFile(name="v", type="video/mp4",
                                                        size=len(data), read=lambda: [data])])
    spec = sealed.envelope["files"][0]
    try:
        stamp = api.stamp(spec["stored_size"])
    except TypeError:
        stamp = api.stamp()
    created = api._call("POST", "/api/v1/submissions", {**sealed.envelope, "pow": stamp})
    for index, chunk in enumerate(sealed.chunks[spec["id"]]()):
        api._call("PUT", f"/api/v1/submissions/{created['case_id']}/files/{spec['id']}/chunks/"
                  f"{index}", raw=chunk, token=created["upload_token"])
    housekeeping.purge_once(database)
    full = size(path)
    api._call("DELETE", f"/api/v1/submissions/{created['case_id']}", token=created["upload_token"])
    housekeeping.purge_once(database)
    out["discard_8MiB_draft"] = {"file_bytes_with_draft": full, "file_bytes_after": size(path)}
database.dispose()

# 5. four wrong sign-ins an hour for a day, then the owner
database, settings, path = fresh()


class Clock:
    def __init__(self):
        middle = (int(time.time()) // 30) * 30 + 15
        self.now = dt.datetime.fromtimestamp(middle, dt.UTC)

    def __call__(self):
        return self.now


clock = Clock()
import reviewer.views.accounts  # noqa: E402

accounts.utcnow = clock
reviewer.views.accounts.utcnow = clock
with database.session() as s:
    owner = ta.make_account(s, settings, "owner")
with TestClient(create_app(settings, database=database), base_url=BASE_URL) as client:
    statuses = []
    for _ in range(96):
        statuses.append(ta.login(client, "owner", "wrong", "000000").status_code)
        clock.now += dt.timedelta(minutes=15)
    clock.now -= dt.timedelta(minutes=14)  # the owner comes one minute after the last guess
    from cryptography.hazmat.primitives.hashes import SHA1
    from cryptography.hazmat.primitives.twofactor.totp import TOTP
    code = TOTP(owner.totp_secret, 6, SHA1(), 30).generate(clock.now.timestamp()).decode()
    owner_answer = ta.login(client, "owner", ta.PASSWORD, code)
    out["signin_4_per_hour_24h"] = {"attacker_401s": statuses.count(401),
                                    "owner_status": owner_answer.status_code,
                                    "owner_told": owner_answer.json().get("failed_attempts"),
                                    "audit_rows": count(database, "audit_log")}
database.dispose()
print(json.dumps(out, indent=1))
