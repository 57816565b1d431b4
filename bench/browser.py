"""The browser side in real Chromium against the real app, each against a floor measured in the
same page in the same run.

(a) The reviewer's case list. A reviewer with a real password-wrapped key (PBKDF2 at
--iterations, default 600 000 as in production) receives N cases (default 100) submitted
through the real intake API. Unlock: keys.unlockWithPassword() on the locked list page (fetch
the wrapped key and the salt, PBKDF2, unwrap into a non-extractable X25519 key, store it in
IndexedDB), repeated --unlocks times. Then cases.js decrypts every row's summary (HPKE open of
the reviewer's key slot, then the report item): timed from the unlock event to the last row,
and on --reloads reloads of the page with the key already stored, from navigation start to the
last row. The list is made to show all N cases on one page (bench only: the server process
sets service.domain.cases.PAGE_SIZE = N; production shows 50). Floor: the same N openKey + openItem
calls on the same bytes through crypto/index.js in the same page, sequential as cases.js does
them, no DOM; the same calls concurrently are printed for comparison. Unlock's own floor is
derivePassword() alone (PBKDF2 at the same count).

(b) A large attachment (default 100 MB of random bytes, written once to a temporary file) set on
the reporter's form with set_input_files and submitted: intake.js seals it in 64 KiB chunks and
uploads them in batches of 64; timed from the click to the receipt on screen. Floor: raw WebCrypto
AES-256-GCM of the same bytes (the same File, read into memory beforehand) in 64 KiB pieces,
sequentially, in the same page, no upload. Proof of work is at difficulty 0 and the receipt's
PBKDF2 at 1000 iterations (bench only), so the figure is the file's.

The server is the real app (service.app.create_app, the settings of `chuishao serve`) under
uvicorn in a subprocess on a fresh SQLite database; all traffic stays on 127.0.0.1 and every
wait is bounded.

Usage: python bench/browser.py [--iterations 600000] [--cases 100] [--file-mb 100]
                               [--unlocks 3] [--reloads 5] [--part all|list|upload]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    free_port,
    prepare_installation,
    server_env,
    server_process,
)

CHROMIUM = os.environ.get("CHUISHAO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-gpu",
                 "--no-first-run", "--disable-quic"]
PASSWORD = "correct horse battery staple 基准"
USERNAME = "bench-unlock"
DECRYPT_GOAL_MS = 1000.0
REPORT = {"v": 1, "unit": "某机械厂", "location": "三号车间", "category": "hazard",
          "description": "液氨储罐阀门泄漏，已经两周没有修理。夜班时气味很重，"
          "巡检记录没有写。", "seen_at": "", "insider": "", "language": "zh_CN"}


# ---------------------------------------------------------------------------- the server


def serve(page_size: int) -> None:
    """The app as `chuishao serve` runs it, with the case list's page size set (bench only)."""
    import uvicorn

    from service.app import create_app
    from service.domain import cases
    from service.platform import logs
    from service.platform.settings import Settings

    cases.PAGE_SIZE = page_size
    settings = Settings.from_environ()
    logs.configure(settings.log_level)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.port, access_log=False,
                proxy_headers=False, server_header=False, log_config=logs.UVICORN_LOG_CONFIG,
                log_level=settings.log_level.lower())


def add_unlocking_reviewer(database_url: str, iterations: int) -> int:
    """A reviewer of channel acme whose private key is wrapped under PASSWORD, as the
    invitation page wraps it."""
    from sqlalchemy import select

    import crypto
    from service.domain.models import Channel, ChannelRecipient, User, utcnow
    from service.platform.db import Database

    private, public = crypto.generate_keypair()
    key_id = crypto.key_id(public)
    salt = os.urandom(16)
    derived = crypto.derive_password(PASSWORD, salt, iterations)
    database = Database.from_url(database_url)
    try:
        with database.session() as session:
            channel = session.scalar(select(Channel).where(Channel.slug == "acme"))
            assert channel is not None
            user = User(username=USERNAME, display_name="基准审核员", roles="reviewer",
                        active=True, user_salt=salt,
                        auth_hash=crypto.hash_auth_secret(derived.auth_secret, n=2**10),
                        public_key=public, key_id=key_id.hex(),
                        wrapped_private_key=crypto.wrap_private_key(derived.kek, private, key_id),
                        totp_last_step=0, created_at=utcnow())
            session.add(user)
            session.flush()
            session.add(ChannelRecipient(channel_id=channel.id, user_id=user.id,
                                         created_at=utcnow()))
            session.flush()
            return int(user.id)
    finally:
        database.dispose()


def session_cookie(env: dict[str, str], database_url: str, user_id: int) -> tuple[str, str]:
    from reviewer import auth
    from service.domain.models import User
    from service.platform.db import Database
    from service.platform.settings import Settings

    settings = Settings.from_environ(env)
    database = Database.from_url(database_url)
    try:
        with database.session() as session:
            user = session.get(User, user_id)
            assert user is not None
            return auth.session_cookie(settings), auth.start_session(session, settings, user)
    finally:
        database.dispose()


def submit_cases(base: str, count: int) -> None:
    from service.client import Client, urllib_transport

    client = Client(urllib_transport(base), language="zh-CN")
    for n in range(count):
        client.submit("acme", {**REPORT, "location": f"{n + 1}号车间"})


# ---------------------------------------------------------------------------- in the page

# Runs before the page's own scripts on every navigation: notes when rows get decrypted.
OBSERVER = """
(() => {
  const mark = { first: null, done: null, count: 0, unlocked: null, receipt: null };
  window.__bench = mark;
  document.addEventListener('chuishao:unlocked', () => { mark.unlocked = performance.now(); });
  new MutationObserver(() => {
    if (mark.receipt === null && document.getElementById('receipt-code')) {
      mark.receipt = performance.now();
    }
    const rows = document.querySelectorAll('tr.case-row');
    if (!rows.length || mark.done !== null) return;
    const n = document.querySelectorAll('tr.case-row[data-decrypted="1"]').length;
    if (n && mark.first === null) mark.first = performance.now();
    mark.count = n;
    if (n === rows.length) mark.done = performance.now();
  }).observe(document, { subtree: true, childList: true, attributes: true,
                         attributeFilter: ['data-decrypted'] });
})();
"""

UNLOCK = """
async (password) => {
  const keys = await import('/static/js/console/keys.js');
  const start = performance.now();
  await keys.unlockWithPassword(null, password);
  return { start, end: performance.now() };
}
"""

PBKDF2_ALONE = """
async ([password, iterations]) => {
  const c = await import('/static/js/crypto/index.js');
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const start = performance.now();
  await c.derivePassword(password, salt, iterations);
  return performance.now() - start;
}
"""

CLEAR_KEYS = """
async () => { const keys = await import('/static/js/console/keys.js'); await keys.clearKeys(); }
"""

OPEN_FLOOR = """
async (repeats) => {
  const c = await import('/static/js/crypto/index.js');
  const keys = await import('/static/js/console/keys.js');
  const { privateKey } = await keys.getPrivateKey();
  const rows = [...document.querySelectorAll('tr.case-row')].map((r) => ({
    caseId: r.dataset.caseId, itemId: r.dataset.itemId,
    slot: c.b64uDecode(r.dataset.slot), blob: c.b64uDecode(r.dataset.itemBlob) }));
  const one = async (r) => {
    const key = await c.openKey(r.slot, privateKey, r.caseId);
    try { return await c.openItem(key, r.caseId, r.itemId, 'report', r.blob); }
    finally { key.fill(0); }
  };
  const sequential = [], concurrent = [];
  let opened = 0;
  for (let k = 0; k < repeats; k++) {
    let start = performance.now();
    for (const r of rows) { if ((await one(r)).unit) opened += 1; }
    sequential.push(performance.now() - start);
    start = performance.now();
    await Promise.all(rows.map(one));
    concurrent.push(performance.now() - start);
  }
  return { rows: rows.length, opened: opened / repeats, sequential, concurrent };
}
"""

ENCRYPT_FLOOR = """
async ([repeats, piece]) => {
  const file = document.getElementById('f-files').files[0];
  const data = new Uint8Array(await file.arrayBuffer());
  const key = await crypto.subtle.importKey('raw', crypto.getRandomValues(new Uint8Array(32)),
                                            { name: 'AES-GCM' }, false, ['encrypt']);
  const aad = new Uint8Array(49);
  const times = [];
  let out = 0;
  for (let k = 0; k < repeats; k++) {
    const start = performance.now();
    for (let i = 0, n = 0; i < data.length; i += piece, n++) {
      const iv = new Uint8Array(12);
      new DataView(iv.buffer).setUint32(7, n);
      const sealed = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: aad }, key, data.subarray(i, i + piece));
      out += sealed.byteLength;
    }
    times.push(performance.now() - start);
  }
  return { size: file.size, times, out };
}
"""

START_UPLOAD = """
() => {
  performance.clearResourceTimings();
  performance.setResourceTimingBufferSize(100000);
  window.__bench.receipt = null;
  const start = performance.now();
  document.getElementById('submit-report').click();
  return start;
}
"""

UPLOAD_TIMINGS = """
() => {
  const entries = performance.getEntriesByType('resource');
  const chunks = entries.filter((e) => e.name.includes('/batch/') || e.name.includes('/chunks/'));
  const create = entries.find((e) => /\\/api\\/v1\\/submissions$/.test(e.name));
  const finish = entries.find((e) => e.name.endsWith('/finish'));
  return {
    chunks: chunks.length,
    created: create ? create.responseEnd : null,
    firstChunk: chunks.length ? chunks[0].startTime : null,
    lastChunk: chunks.length ? chunks[chunks.length - 1].responseEnd : null,
    chunkWait: chunks.reduce((n, e) => n + (e.responseEnd - e.startTime), 0),
    finish: finish ? finish.responseEnd : null,
  };
}
"""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.0f}" for v in values)


# ---------------------------------------------------------------------------- (a) the list


def bench_list(chromium: Any, base: str, cookie: tuple[str, str], args: argparse.Namespace,
               errors: list[str]) -> dict[str, float]:
    context = chromium.new_context(base_url=base, locale="zh-CN")
    context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base}])
    context.add_init_script(OBSERVER)
    page = watched(context, errors, base)
    wait_ms = 120_000
    unlocks, after_unlock = [], []
    for _ in range(args.unlocks):
        page.goto("/console/cases")
        page.evaluate(CLEAR_KEYS)
        page.reload()
        rows = page.locator("tr.case-row").count()
        if rows != args.cases:
            raise RuntimeError(f"the list shows {rows} rows, expected {args.cases}")
        page.locator("#key-status:not([hidden])").wait_for(timeout=wait_ms)  # locked
        span = page.evaluate(UNLOCK, PASSWORD)
        page.wait_for_function("window.__bench.done !== null", timeout=wait_ms)
        mark = page.evaluate("window.__bench")
        unlocks.append(span["end"] - span["start"])
        after_unlock.append(mark["done"] - mark["unlocked"])
    pbkdf2 = [page.evaluate(PBKDF2_ALONE, [PASSWORD, args.iterations])
              for _ in range(args.unlocks)]
    loads, phases, firsts, responses = [], [], [], []
    for _ in range(args.reloads):
        page.reload()
        page.wait_for_function("window.__bench.done !== null", timeout=wait_ms)
        mark = page.evaluate("window.__bench")
        nav = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
        loads.append(mark["done"])
        firsts.append(mark["first"])
        responses.append(nav["responseEnd"])
        phases.append(nav["domContentLoadedEventEnd"])
    summary = page.locator("tr.case-row .summary-text").first.inner_text()
    if "某机械厂" not in summary or "液氨储罐" not in summary:
        errors.append(f"unexpected summary: {summary!r}")
    floor = page.evaluate(OPEN_FLOOR, args.floor_repeats)
    if floor["rows"] != args.cases or floor["opened"] != args.cases:
        errors.append(f"floor opened {floor['opened']} of {floor['rows']} rows")
    context.close()
    seq, conc = median(floor["sequential"]), median(floor["concurrent"])
    n = args.cases
    print(f"(a) case list, {n} cases, PBKDF2 {args.iterations} iterations")
    print(f"  unlock (fetch wrapped key + salt, PBKDF2, unwrap, store)  median "
          f"{median(unlocks):7.0f} ms  [{fmt(unlocks)}]")
    print(f"      floor: PBKDF2 alone (derivePassword)                  median "
          f"{median(pbkdf2):7.0f} ms  [{fmt(pbkdf2)}]   ratio "
          f"{median(unlocks) / median(pbkdf2):.2f}x")
    print(f"  unlock event -> {n} summaries decrypted                  median "
          f"{median(after_unlock):7.0f} ms  [{fmt(after_unlock)}]   ratio "
          f"{median(after_unlock) / seq:.2f}x floor")
    print(f"  page load (navigation start) -> {n} decrypted, key stored  median "
          f"{median(loads):7.0f} ms  [{fmt(loads)}]   ratio {median(loads) / seq:.2f}x floor")
    print(f"      HTML received at {median(responses):.0f} ms, DOMContentLoaded "
          f"{median(phases):.0f} ms, first row decrypted {median(firsts):.0f} ms, last row "
          f"{median(loads):.0f} ms (medians)")
    print(f"  floor: {n} x (openKey + openItem) via crypto/index.js, sequential  median "
          f"{seq:7.1f} ms  [{fmt(floor['sequential'])}]; concurrent (Promise.all) "
          f"{conc:.1f} ms")
    met = median(after_unlock) < DECRYPT_GOAL_MS
    print(f"  goal (all {n} decrypted under {DECRYPT_GOAL_MS:.0f} ms after unlock): "
          f"{'met' if met else 'NOT met'} ({median(after_unlock):.0f} ms)")
    return {"unlock": median(unlocks), "after_unlock": median(after_unlock),
            "load": median(loads), "floor": seq}


# ---------------------------------------------------------------------------- (b) upload


def make_file(directory: Path, megabytes: int) -> Path:
    path = directory / "evidence.bin"
    with path.open("wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1024 * 1024))
    return path


def bench_upload(chromium: Any, base: str, path: Path, args: argparse.Namespace,
                 database_url: str, errors: list[str]) -> dict[str, float]:
    context = chromium.new_context(base_url=base, locale="zh-CN")
    context.add_init_script(OBSERVER)
    page = watched(context, errors, base)
    page.goto("/")
    page.wait_for_selector("#report-form[data-enhanced='true']", state="attached")
    page.fill("#f-unit", "某机械厂")
    page.fill("#f-location", "三号车间 液氨储罐区")
    page.select_option("#f-category", "hazard")
    page.fill("#f-description", "液氨储罐阀门泄漏，已经两周没有修理。附现场录像。")
    page.set_input_files("#f-files", str(path))
    floor = page.evaluate(ENCRYPT_FLOOR, [args.floor_repeats, 65536])
    if floor["size"] != path.stat().st_size:
        errors.append(f"the page's file has {floor['size']} bytes")
    start = page.evaluate(START_UPLOAD)
    page.wait_for_selector("#receipt-panel:not([hidden]) #receipt-code", timeout=900_000)
    page.wait_for_function("window.__bench.receipt !== null", timeout=10_000)
    done = page.evaluate("window.__bench.receipt")
    timing = page.evaluate(UPLOAD_TIMINGS)
    context.close()
    total = done - start
    stored = stored_file(database_url)
    mb = path.stat().st_size / 1e6
    enc = median(floor["times"])
    print(f"(b) {args.file_mb} MiB ({mb:.1f} MB) attachment through intake.js (seal + upload, "
          f"64 KiB chunks in batches)")
    print(f"  click -> receipt on screen        {total:8.0f} ms  ({mb / total * 1000:.1f} MB/s)"
          f"   ratio {total / enc:.1f}x floor")
    if timing["firstChunk"] is not None:
        print(f"      of which: before the first chunk {timing['firstChunk'] - start:.0f} ms, "
              f"{timing['chunks']} batch PUTs {timing['lastChunk'] - timing['firstChunk']:.0f}"
              f" ms (waiting on responses {timing['chunkWait']:.0f} ms, "
              f"{timing['chunkWait'] / max(timing['chunks'], 1):.1f} ms per request), finish "
              f"{(timing['finish'] or timing['lastChunk']) - timing['lastChunk']:.0f} ms")
    print(f"  floor: AES-256-GCM of the same bytes in 64 KiB pieces  median {enc:8.0f} ms "
          f"({mb / enc * 1000:.0f} MB/s)  [{fmt(floor['times'])}]")
    print(f"  stored on the server: {stored}")
    return {"upload": total, "floor": enc}


def stored_file(database_url: str) -> str:
    from sqlalchemy import func, select

    from service.domain.models import Case, FileChunk, StoredFile
    from service.platform.db import Database

    database = Database.from_url(database_url)
    try:
        with database.session() as session:
            files = list(session.scalars(select(StoredFile).join(Case, Case.id ==
                                                                 StoredFile.case_id)
                                         .where(Case.ready.is_(True),
                                                StoredFile.complete.is_(True))))
            if len(files) != 1:
                return f"{len(files)} complete files (expected 1)"
            size = session.scalar(select(func.sum(func.length(FileChunk.data)))
                                  .where(FileChunk.file_id == files[0].id))
            return (f"1 complete file, {files[0].chunk_count} chunks, {size} bytes "
                    f"(stored_size {files[0].stored_size})")
    finally:
        database.dispose()


# ---------------------------------------------------------------------------- driver


def watched(context: Any, errors: list[str], base: str) -> Any:
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}")
            if m.type == "error" and "favicon" not in m.location.get("url", "") else None)
    page.on("request", lambda r: None if r.url.startswith(base + "/")
            else errors.append(f"request elsewhere: {r.url}"))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=600_000,
                        help="PBKDF2 iterations of the reviewer's password (600000)")
    parser.add_argument("--cases", type=int, default=100, help="cases on the list (100)")
    parser.add_argument("--file-mb", type=int, default=100, help="attachment size (100 MiB)")
    parser.add_argument("--unlocks", type=int, default=3, help="unlocks timed (3)")
    parser.add_argument("--reloads", type=int, default=5, help="page loads timed (5)")
    parser.add_argument("--floor-repeats", type=int, default=5, help="floor repeats (5)")
    parser.add_argument("--part", choices=("all", "list", "upload"), default="all")
    parser.add_argument("--workdir", type=Path,
                        help="keep the database, the file and the server log here")
    parser.add_argument("--serve", type=int, metavar="PAGE_SIZE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if not (1000 <= args.iterations <= 10_000_000 and 1 <= args.cases <= 500
            and 1 <= args.file_mb <= 190 and 1 <= args.unlocks <= 10
            and 1 <= args.reloads <= 20 and 1 <= args.floor_repeats <= 10):
        parser.error("out of range: --iterations 1000..10M, --cases 1..500, --file-mb 1..190, "
                     "--unlocks 1..10, --reloads 1..20, --floor-repeats 1..10")
    from playwright.sync_api import sync_playwright

    print(f"browser bench: Chromium {CHROMIUM}, the real app on SQLite; part {args.part}")
    errors: list[str] = []
    with contextlib.ExitStack() as stack:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=False)
            work = args.workdir
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chuishao-bench-")))
        port = free_port()
        env = server_env(work / "data", port, None, CHUISHAO_POW_DIFFICULTY="0",
                         CHUISHAO_RECEIPT_ITERATIONS="1000",
                         CHUISHAO_PASSWORD_ITERATIONS=str(args.iterations),
                         CHUISHAO_MAX_FILE_BYTES=str(200 * 1024 * 1024),
                         CHUISHAO_SCRYPT_N=str(2**10))
        installation = prepare_installation(env, reviewers=1)
        user_id = add_unlocking_reviewer(installation.database_url, args.iterations)
        argv_ = [sys.executable, str(Path(__file__).resolve()), "--serve", str(args.cases)]
        base = stack.enter_context(server_process(argv_, env, port, work / "server.log"))
        if args.part in ("all", "list"):
            started = time.perf_counter()
            submit_cases(base, args.cases)
            print(f"submitted {args.cases} cases through the intake API in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        playwright = stack.enter_context(sync_playwright())
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(chromium.close)
        if args.part in ("all", "list"):
            bench_list(chromium, base, session_cookie(env, installation.database_url, user_id),
                       args, errors)
        if args.part in ("all", "upload"):
            started = time.perf_counter()
            path = make_file(work, args.file_mb)
            print(f"wrote {args.file_mb} MiB of random bytes to {path.name} in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            bench_upload(chromium, base, path, args, installation.database_url, errors)
    for error in errors:
        print(f"  error: {error}")
    if errors:
        print("FAILED: see the errors above")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
