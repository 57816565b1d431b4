"""Console accounts in a real Chromium against the real app (uvicorn, migrated SQLite).

Invitation -> account made in the browser -> TOTP enrolment -> sign-in -> the private key
lives in IndexedDB as a non-extractable X25519 CryptoKey -> sign-out empties the key store.
The X-Wing pair (protocol v2): made with the account where the browser has the hybrid, or at
the next sign-in for an account without one; kept as a seed wrapped by a session key, opened
on each page into a non-extractable key. Nothing may be requested from anywhere but the live
server.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from PIL import Image
from sqlalchemy import select

import crypto
from service.domain import invitations
from service.domain.models import AuditEntry, Channel, ChannelRecipient, User, utcnow
from tests.browser.live import LiveServer, running_server
from tests.browser.test_reporter_flow import NO_HYBRID

pytestmark = pytest.mark.browser

PASSWORD = "长城 correct horse battery"

KEYS_JS = """
async (arg) => {
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open('chuishao-console', 1);
    req.onupgradeneeded = () => req.result.createObjectStore('keys');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const tx = db.transaction('keys', 'readonly');
  const store = tx.objectStore('keys');
  const get = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const handles = await get(store.getAllKeys());
  const records = await get(store.getAll());
  db.close();
  const out = [];
  for (let i = 0; i < records.length; i++) {
    const key = records[i].privateKey;
    const row = { handle: handles[i], keyId: records[i].keyId,
                  isCryptoKey: key instanceof CryptoKey, type: key.type,
                  extractable: key.extractable, algorithm: key.algorithm.name,
                  usages: key.usages, exported: null, shared: null };
    try { await crypto.subtle.exportKey('pkcs8', key); row.exported = 'exported'; }
    catch (e) { row.exported = e.name; }
    if (arg) {
      const raw = Uint8Array.from(arg.match(/../g).map((h) => parseInt(h, 16)));
      const pub = await crypto.subtle.importKey('raw', raw, { name: 'X25519' }, true, []);
      const bits = new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: pub }, key, 256));
      row.shared = Array.from(bits, (b) => b.toString(16).padStart(2, '0')).join('');
    }
    out.push(row);
  }
  return out;
}
"""


# The session's X-Wing key from the key store, as case pages get it, opening a v2 slot the
# server side sealed to the account's X-Wing public key.
XWING_JS = """
async (arg) => {
  const keys = await import('/static/js/console/keys.js');
  const C = await import('/static/js/crypto/index.js');
  const E = await import('/static/js/crypto/encodings.js');
  const found = await keys.getXWingKey();
  if (!found) return null;
  const key = found.privateKey;
  const row = { keyId: found.keyId, extractable: key.extractable, algorithm: key.algorithm.name,
                usages: key.usages, exported: null, opened: null };
  try { await crypto.subtle.exportKey('raw-seed', key); row.exported = 'exported'; }
  catch (e) { row.exported = e.name; }
  if (arg) row.opened = E.bytesToHex(await C.openKeyV2(E.b64uDecode(arg.slot), key, arg.case_id));
  return row;
}
"""


def xwing_probe(public: bytes) -> dict[str, str]:
    """A case key sealed v2 to ``public``, for XWING_JS to open."""
    case_id = os.urandom(16)
    key = os.urandom(32)
    return {"slot": crypto.b64u_encode(crypto.seal_key_v2(key, public, case_id, "case")),
            "case_id": case_id.hex(), "key": key.hex()}


def check_xwing_store(page: Any, public: bytes, key_id: str) -> None:
    probe = xwing_probe(public)
    row = page.evaluate(XWING_JS, probe)
    assert row is not None, "no X-Wing key in the key store"
    assert row["keyId"] == key_id and row["algorithm"] == "MLKEM768-X25519"
    assert row["extractable"] is False and row["exported"] == "InvalidAccessError"
    assert row["usages"] == ["decapsulateBits"]
    assert row["opened"] == probe["key"]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """The real app on its own migrated SQLite database, served by uvicorn in a thread."""
    with running_server(tmp_path / "live") as server:
        yield server


@pytest.fixture
def page(chromium: Any, live: LiveServer) -> Iterator[Any]:
    context = chromium.new_context(base_url=live.base_url, locale="zh-CN")
    outside: list[str] = []
    errors: list[str] = []

    def only_here(route: Any) -> None:
        if route.request.url.startswith(live.base_url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    # A refused sign-in (401) is expected where a test provokes it; /console/cases may not
    # exist yet (404). Anything else logged as an error fails the test.
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error"
           and "favicon" not in m.location.get("url", "")
           and not re.search(r"status of (401|404)", m.text) else None)
    try:
        yield tab
    finally:
        context.close()
    assert not outside, f"requests to other origins: {outside}"
    assert not errors, f"errors in the page: {errors}"


def totp_now(secret: bytes, offset_steps: int = 0) -> str:
    return TOTP(secret, 6, SHA1(), 30).generate(time.time() + 30 * offset_steps).decode()


def stored_keys(page: Any, public_hex: str | None = None) -> list[dict[str, Any]]:
    return page.evaluate(KEYS_JS, public_hex)  # type: ignore[no-any-return]


def test_invitation_enrolment_login_and_logout(page: Any, live: LiveServer) -> None:
    with live.session() as session:
        channel = session.scalar(select(Channel).where(Channel.slug == live.channel_slug))
        _, token = invitations.create_invitation(session, roles=["reviewer"], hours=1,
                                                 channel=channel)
        channel_id = channel.id

    # 1. The invitation: the browser makes the salt, keys and wrapped key.
    page.goto(f"/console/invite/{token}")
    page.wait_for_selector("#invite-submit:not([disabled])")
    page.fill("#i-username", "wang.fang")
    page.fill("#i-display", "王芳")
    page.fill("#i-password", PASSWORD)
    page.fill("#i-password2", PASSWORD)
    page.click("#invite-submit")
    page.wait_for_url(re.compile(r".*/console/invite/.+/totp$"))

    # 2. TOTP enrolment: the code comes from the secret the page shows.
    secret_text = page.get_attribute("#totp-secret", "data-secret")
    assert page.locator("#totp-qr path").count() == 1
    # The QR code as Chromium draws it reads back as the otpauth:// link.
    drawn = Image.open(io.BytesIO(page.locator("#totp-qr").screenshot())).convert("L")
    read = [barcode.text for barcode in zxingcpp.read_barcodes(drawn)]
    assert read == [page.get_attribute("#totp-uri", "href")]
    assert read[0].startswith(f"otpauth://totp/Chuishao:wang.fang?secret={secret_text}&")
    secret = crypto.b32_decode(secret_text)
    page.fill("#t-code", totp_now(secret))
    page.click("#totp-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/login\?welcome=1$"))
    assert page.locator("#welcome").is_visible()

    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "wang.fang"))
        assert user is not None and user.totp_confirmed and user.display_name == "王芳"
        assert user.totp_secret == secret
        assert session.get(ChannelRecipient, (channel_id, user.id)) is not None
        key_id, public_key, salt = user.key_id, user.public_key, user.user_salt
        wrapped = user.wrapped_private_key
        # The stored hash is of the derived secret, never of the password itself.
        keys = crypto.derive_password(PASSWORD, salt, live.settings.password_iterations)
        assert crypto.verify_auth_secret(keys.auth_secret, user.auth_hash)
        private = crypto.unwrap_private_key(keys.kek, wrapped, bytes.fromhex(key_id))
        assert crypto.key_id(crypto.public_key(private)).hex() == key_id == \
            crypto.key_id(public_key).hex()
        # The X-Wing pair, made in this browser next to the X25519 one, wrapped by the same kek.
        assert user.xwing_public_key is not None and user.xwing_key_id is not None
        xwing_public, xwing_key_id = user.xwing_public_key, user.xwing_key_id
        seed = crypto.unwrap_xwing_seed(keys.kek, user.wrapped_xwing_seed,
                                        bytes.fromhex(xwing_key_id))
        assert crypto.xwing_public_key(seed) == xwing_public
        assert crypto.key_id(xwing_public).hex() == xwing_key_id

    # 3. Sign in (the enrolment spent this step's code: use the next one).
    page.fill("#l-username", "wang.fang")
    page.fill("#l-password", PASSWORD)
    page.fill("#l-code", totp_now(secret, 1))
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/console/cases$"))

    # 4. The key store: one non-extractable X25519 key whose public key is the user's.
    other = X25519PrivateKey.generate()
    other_public = other.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    expected_shared = other.exchange(X25519PublicKey.from_public_bytes(public_key)).hex()
    page.goto("/console/account")
    handle = page.get_attribute('meta[name="key-handle"]', "content")
    assert handle
    records = stored_keys(page, other_public.hex())
    assert len(records) == 1
    record = records[0]
    assert record["handle"] == handle and record["keyId"] == key_id
    assert record["isCryptoKey"] and record["type"] == "private"
    assert record["algorithm"] == "X25519" and record["usages"] == ["deriveBits"]
    assert record["extractable"] is False and record["exported"] == "InvalidAccessError"
    assert record["shared"] == expected_shared
    assert page.locator("#account-key-id").inner_text() == key_id
    assert page.locator("#key-status").is_hidden()  # unlocked: no prompt
    check_xwing_store(page, xwing_public, xwing_key_id)

    # 5. Sign out: the session ends and the key store is emptied.
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/console/login\?out=1$"))
    assert stored_keys(page) == []
    page.goto("/console/account")
    page.wait_for_url(re.compile(r".*/console/login$"))


def test_unlock_after_the_key_store_was_lost(page: Any, live: LiveServer) -> None:
    # An account made as the browser would (Python plays the browser), then signed in.
    salt = os.urandom(16)
    keys = crypto.derive_password(PASSWORD, salt, live.settings.password_iterations)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    secret = os.urandom(20)
    with live.session() as session:
        session.add(User(username="li.lei", display_name="李雷", roles="reviewer", active=True,
                         user_salt=salt, auth_hash=crypto.hash_auth_secret(
                             keys.auth_secret, n=live.settings.scrypt_n),
                         public_key=public, key_id=kid.hex(),
                         wrapped_private_key=crypto.wrap_private_key(keys.kek, private, kid),
                         totp_secret=secret, totp_confirmed=True, totp_last_step=0,
                         created_at=utcnow()))
    page.goto("/console/login")
    page.wait_for_selector("#login-submit:not([disabled])")
    page.fill("#l-username", "li.lei")
    page.fill("#l-password", "not the password")
    page.fill("#l-code", totp_now(secret))
    page.click("#login-submit")
    page.wait_for_selector("#form-error:not([hidden])")
    assert "用户名、密码或验证码错误" in page.inner_text("#form-error")
    page.fill("#l-password", PASSWORD)
    page.fill("#l-code", totp_now(secret))
    page.click("#login-submit")
    # The failed attempt before is reported to the owner before going on.
    page.wait_for_selector("#failed-notice:not([hidden])")
    assert "1 次登录失败" in page.inner_text("#failed-text")
    page.click("#failed-continue")
    page.wait_for_url(re.compile(r".*/console/cases$"))

    # The store is lost (e.g. the browser was restarted): the page offers to unlock.
    page.goto("/console/account")
    page.evaluate("() => new Promise((r) => { const q = indexedDB.deleteDatabase("
                  "'chuishao-console'); q.onsuccess = q.onerror = q.onblocked = () => r(); })")
    page.reload()
    page.wait_for_selector("#key-status:not([hidden]) #unlock-form")
    page.fill("#unlock-password", "wrong")
    page.click("#unlock-form button")
    page.wait_for_selector("#unlock-form .error-box:not([hidden])")
    page.fill("#unlock-password", PASSWORD)
    page.click("#unlock-form button")
    page.wait_for_selector("#key-status", state="hidden")
    records = stored_keys(page)
    assert [r["keyId"] for r in records] == [kid.hex()]
    assert records[0]["extractable"] is False
    # An account from before v2 gained its X-Wing pair at that sign-in; unlocking brings the
    # same one back (no second pair).
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "li.lei"))
        assert user is not None and user.xwing_public_key is not None
        assert user.xwing_key_id is not None
        xwing_public, xwing_key_id = user.xwing_public_key, user.xwing_key_id
        assert crypto.xwing_public_key(crypto.unwrap_xwing_seed(
            keys.kek, user.wrapped_xwing_seed, bytes.fromhex(xwing_key_id))) == xwing_public
        added = session.scalars(select(AuditEntry).where(AuditEntry.action == "account.add_pq")
                                ).all()
        assert [(e.actor, e.outcome) for e in added] == [("li.lei", "ok")]
    check_xwing_store(page, xwing_public, xwing_key_id)


def test_without_the_hybrid_the_account_stays_classical(chromium: Any, live: LiveServer) -> None:
    with live.session() as session:
        _, token = invitations.create_invitation(session, roles=["reviewer"], hours=1)
    context = chromium.new_context(base_url=live.base_url, locale="en")
    context.add_init_script(NO_HYBRID)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(f"/console/invite/{token}")
        page.wait_for_selector("#invite-submit:not([disabled])")
        page.fill("#i-username", "classic")
        page.fill("#i-password", PASSWORD)
        page.fill("#i-password2", PASSWORD)
        page.click("#invite-submit")
        page.wait_for_url(re.compile(r".*/console/invite/.+/totp$"))
        secret = crypto.b32_decode(page.get_attribute("#totp-secret", "data-secret"))
        page.fill("#t-code", totp_now(secret))
        page.click("#totp-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/console/login\?welcome=1$"))
        page.fill("#l-username", "classic")
        page.fill("#l-password", PASSWORD)
        page.fill("#l-code", totp_now(secret, 1))
        page.click("#login-submit")
        page.wait_for_url(re.compile(r".*/console/cases$"))
        page.goto("/console/account")
        assert [r["extractable"] for r in stored_keys(page)] == [False]
        assert page.evaluate(XWING_JS, None) is None
    finally:
        context.close()
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "classic"))
        assert user is not None and user.totp_confirmed
        assert (user.xwing_public_key, user.xwing_key_id, user.wrapped_xwing_seed) == \
            (None, None, None)
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "account.add_pq")) \
            is None


def test_a_password_change_rewraps_the_xwing_seed(page: Any, live: LiveServer) -> None:
    # An account from before v2 signs in (gaining its pair), then changes its password.
    salt = os.urandom(16)
    keys = crypto.derive_password(PASSWORD, salt, live.settings.password_iterations)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    secret = os.urandom(20)
    with live.session() as session:
        session.add(User(username="han.mei", display_name="韩梅", roles="reviewer", active=True,
                         user_salt=salt, auth_hash=crypto.hash_auth_secret(
                             keys.auth_secret, n=live.settings.scrypt_n),
                         public_key=public, key_id=kid.hex(),
                         wrapped_private_key=crypto.wrap_private_key(keys.kek, private, kid),
                         totp_secret=secret, totp_confirmed=True, totp_last_step=0,
                         created_at=utcnow()))
    page.goto("/console/login")
    page.wait_for_selector("#login-submit:not([disabled])")
    page.fill("#l-username", "han.mei")
    page.fill("#l-password", PASSWORD)
    page.fill("#l-code", totp_now(secret))
    page.click("#login-submit")
    page.wait_for_url(re.compile(r".*/console/cases$"))
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "han.mei"))
        assert user is not None and user.xwing_key_id is not None
        xkid = bytes.fromhex(user.xwing_key_id)
        seed = crypto.unwrap_xwing_seed(keys.kek, user.wrapped_xwing_seed, xkid)
    fresh = "一个全新的 passphrase 2026"
    page.goto("/console/account")
    page.wait_for_selector("#password-submit:not([disabled])")
    page.fill("#p-old", PASSWORD)
    page.fill("#p-new", fresh)
    page.fill("#p-new2", fresh)
    page.click("#password-submit")
    page.wait_for_selector("#password-changed")
    with live.session() as session:
        user = session.scalar(select(User).where(User.username == "han.mei"))
        assert user is not None and user.xwing_key_id == xkid.hex()
        new = crypto.derive_password(fresh, user.user_salt, live.settings.password_iterations)
        assert crypto.unwrap_xwing_seed(new.kek, user.wrapped_xwing_seed, xkid) == seed
        assert crypto.unwrap_private_key(new.kek, user.wrapped_private_key, kid) == private
