"""Console accounts' X-Wing key pairs (PROTOCOL 17.5), with Python playing the browser.

An account made in a browser with the hybrid has the pair from the start; one made before v2
(or without the hybrid) gains it at a sign-in through POST /console/api/account/xwing-key.
The server checks sizes, the wrap's version byte and that the key id is the public key's; it
never sees the seed.
"""

from __future__ import annotations

import os

from sqlalchemy import select

import crypto
from reviewer.auditview import FIELD_LABELS, SENTENCES
from service.domain import invitations
from service.domain.models import AuditEntry, User
from tests.reviewer.test_accounts import (
    JSON,
    PASSWORD,
    audit_rows,
    b64,
    clock,  # noqa: F401  (fixture)
    committed_client,  # noqa: F401  (fixture)
    csrf_of,
    login,
    make_account,
    prelogin,
)

XWING_PATH = "/console/api/account/xwing-key"


def xwing_fields(kek: bytes) -> tuple[bytes, dict[str, str]]:
    """A fresh pair as the browser sends it: (seed, the three JSON fields)."""
    seed, public = crypto.generate_xwing_keypair()
    kid = crypto.key_id(public)
    return seed, {"xwing_public_key": b64(public), "xwing_key_id": kid.hex(),
                  "wrapped_xwing_seed": b64(crypto.wrap_xwing_seed(kek, seed, kid))}


def new_account_body(settings, username: str) -> tuple[crypto.PasswordKeys, dict[str, str]]:  # type: ignore[no-untyped-def]
    salt = os.urandom(16)
    keys = crypto.derive_password(PASSWORD, salt, settings.password_iterations)
    private, public = crypto.generate_keypair()
    kid = crypto.key_id(public)
    return keys, {"username": username, "display_name": "", "user_salt": b64(salt),
                  "auth_secret": b64(keys.auth_secret), "public_key": b64(public),
                  "wrapped_private_key": b64(crypto.wrap_private_key(keys.kek, private, kid))}


def bad_variants(fields: dict[str, str]) -> list[dict[str, str | None]]:
    other = crypto.generate_xwing_keypair()[1]
    wrapped = crypto.b64u_decode(fields["wrapped_xwing_seed"])
    return [
        {"xwing_public_key": b64(crypto.b64u_decode(fields["xwing_public_key"])[:-1])},
        {"xwing_public_key": b64(other)},  # the key id is no longer this key's
        {"xwing_key_id": "00" * 16},
        {"xwing_key_id": fields["xwing_key_id"].upper()},
        {"wrapped_xwing_seed": b64(b"\x01" + wrapped[1:])},  # the X25519 wrap's version
        {"wrapped_xwing_seed": b64(wrapped + b"\x00")},
        {"wrapped_xwing_seed": b64(wrapped[:-1])},
        {"wrapped_xwing_seed": None},
        {"xwing_key_id": None},
        {"xwing_public_key": "not base64!"},
    ]


def test_an_account_made_with_the_hybrid_has_both_pairs(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    _, token = invitations.create_invitation(session, roles=["reviewer"], hours=2)
    session.commit()
    csrf = csrf_of(client, f"/console/invite/{token}")
    keys, body = new_account_body(settings, "hybrid")
    seed, fields = xwing_fields(keys.kek)
    for change in bad_variants(fields):
        refused = client.post(f"/console/invite/{token}", json={**body, **fields, **change},
                              headers={"X-CSRF-Token": csrf, **JSON})
        assert refused.status_code == 400, change
    assert session.scalar(select(User)) is None
    made = client.post(f"/console/invite/{token}", json={**body, **fields},
                       headers={"X-CSRF-Token": csrf, **JSON})
    assert made.status_code == 200, made.text
    user = session.scalar(select(User).where(User.username == "hybrid"))
    assert user is not None and user.xwing_key_id == fields["xwing_key_id"]
    assert user.xwing_public_key == crypto.b64u_decode(fields["xwing_public_key"])
    kid = bytes.fromhex(fields["xwing_key_id"])
    assert crypto.unwrap_xwing_seed(keys.kek, user.wrapped_xwing_seed, kid) == seed
    assert seed.hex() not in repr([getattr(user, c.key) for c in User.__table__.columns])
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "account.register",
                                                    AuditEntry.outcome == "ok"))
    assert entry is not None and entry.details["xwing_key_id"] == fields["xwing_key_id"]


def test_an_account_made_without_the_hybrid_stays_classical(client, session, settings) -> None:  # type: ignore[no-untyped-def]
    _, token = invitations.create_invitation(session, roles=["reviewer"], hours=2)
    session.commit()
    csrf = csrf_of(client, f"/console/invite/{token}")
    _, body = new_account_body(settings, "classic")
    made = client.post(f"/console/invite/{token}", json=body, headers={"X-CSRF-Token": csrf, **JSON})
    assert made.status_code == 200, made.text
    user = session.scalar(select(User).where(User.username == "classic"))
    assert user is not None
    assert (user.xwing_public_key, user.xwing_key_id, user.wrapped_xwing_seed) == (None, None, None)


def test_an_existing_account_gains_its_pair_once(clock, committed_client, committed_database,  # type: ignore[no-untyped-def]  # noqa: F811
                                                 settings) -> None:
    client = committed_client
    with committed_database.session() as session:
        wei = make_account(session, settings, "wei", roles="finance")
    signed = login(client, "wei", PASSWORD, clock.code(wei.totp_secret))
    assert signed.status_code == 200
    answer = signed.json()
    assert "wrapped_xwing_seed" not in answer and "xwing_key_id" not in answer
    csrf = answer["csrf_token"]
    assert csrf == csrf_of(client, "/console/account")  # the new session's token
    keys = crypto.derive_password(PASSWORD, crypto.b64u_decode(prelogin(client, csrf, "wei")
                                                               ["salt"]),
                                  settings.password_iterations)
    seed, fields = xwing_fields(keys.kek)

    assert client.post(XWING_PATH, json=fields, headers=JSON).status_code == 403  # CSRF
    for change in bad_variants(fields):
        refused = client.post(XWING_PATH, json={**fields, **change},
                              headers={"X-CSRF-Token": csrf, **JSON})
        assert refused.status_code == 400, change
    added = client.post(XWING_PATH, json=fields, headers={"X-CSRF-Token": csrf, **JSON})
    assert added.status_code == 200, added.text
    assert added.json()["xwing_key_id"] == fields["xwing_key_id"]
    mine = client.get("/console/api/me/key").json()
    assert mine["xwing_key_id"] == fields["xwing_key_id"]
    kid = bytes.fromhex(mine["xwing_key_id"])
    assert crypto.unwrap_xwing_seed(keys.kek, crypto.b64u_decode(mine["wrapped_xwing_seed"]),
                                    kid) == seed

    # A second pair would strand the v2 slots sealed to the first: refused, and audited.
    _, again = xwing_fields(keys.kek)
    twice = client.post(XWING_PATH, json=again, headers={"X-CSRF-Token": csrf, **JSON})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "xwing_key_exists"
    with committed_database.session() as session:
        user = session.get(User, wei.user_id)
        assert user is not None and user.xwing_key_id == fields["xwing_key_id"]
    rows = audit_rows(committed_database)
    assert rows.count(("account.add_pq", "ok", "")) == 1
    assert ("account.add_pq", "refused", "xwing_key_exists") in rows
    assert ("account.add_pq", "refused", "invalid") in rows
    with committed_database.session() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "account.add_pq",
                                                        AuditEntry.outcome == "ok"))
        assert entry is not None and entry.actor == "wei"
        assert entry.details == {"xwing_key_id": fields["xwing_key_id"]}

    # The next sign-in hands the browser the wrapped seed next to the X25519 key.
    client.cookies.clear()
    clock.tick()
    answer = login(client, "wei", PASSWORD, clock.code(wei.totp_secret)).json()
    assert answer["xwing_key_id"] == fields["xwing_key_id"]
    assert answer["wrapped_xwing_seed"] == fields["wrapped_xwing_seed"]


def test_the_same_pair_cannot_belong_to_two_accounts(clock, client, session, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    first = make_account(session, settings, "first")
    second = make_account(session, settings, "second")
    keys = crypto.derive_password(PASSWORD, os.urandom(16), settings.password_iterations)
    _, fields = xwing_fields(keys.kek)
    for account in (first, second):
        client.cookies.clear()
        clock.tick()
        csrf = login(client, account.username, PASSWORD,
                     clock.code(account.totp_secret)).json()["csrf_token"]
        status = client.post(XWING_PATH, json=fields,
                             headers={"X-CSRF-Token": csrf, **JSON}).status_code
        assert status == (200 if account is first else 400)


def test_the_audit_trail_words_it_in_both_languages(app) -> None:  # type: ignore[no-untyped-def]
    catalogs = app.state.catalogs
    for source in (SENTENCES["account.add_pq"], FIELD_LABELS["xwing_key_id"]):
        assert catalogs.gettext("zh_CN")(source) != source
        assert catalogs.gettext("en")(source) == source


def test_a_password_change_rewraps_the_seed_too(clock, client, session, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    jin = make_account(session, settings, "jin")
    csrf = login(client, "jin", PASSWORD, clock.code(jin.totp_secret)).json()["csrf_token"]
    pre = prelogin(client, csrf, "jin")
    old = crypto.derive_password(PASSWORD, crypto.b64u_decode(pre["salt"]), pre["iterations"])
    seed, fields = xwing_fields(old.kek)
    assert client.post(XWING_PATH, json=fields,
                       headers={"X-CSRF-Token": csrf, **JSON}).status_code == 200
    kid = bytes.fromhex(client.get("/console/api/me/key").json()["key_id"])
    xkid = bytes.fromhex(fields["xwing_key_id"])
    new_salt = os.urandom(16)
    new = crypto.derive_password("another long passphrase", new_salt, pre["iterations"])
    body = {"old_auth_secret": b64(old.auth_secret), "new_user_salt": b64(new_salt),
            "new_auth_secret": b64(new.auth_secret),
            "new_wrapped_private_key": b64(crypto.wrap_private_key(new.kek, jin.private_key,
                                                                   kid))}
    # Without the seed wrapped again the seed would be lost with the old password.
    refused = client.post("/console/api/account/password", json=body,
                          headers={"X-CSRF-Token": csrf, **JSON})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "xwing_rewrap"
    body["new_wrapped_xwing_seed"] = b64(crypto.wrap_xwing_seed(new.kek, seed, xkid))
    changed = client.post("/console/api/account/password", json=body,
                          headers={"X-CSRF-Token": csrf, **JSON})
    assert changed.status_code == 200, changed.text
    session.expire_all()
    user = session.get(User, jin.user_id)
    assert user is not None and user.xwing_key_id == fields["xwing_key_id"]
    assert crypto.unwrap_xwing_seed(new.kek, user.wrapped_xwing_seed, xkid) == seed


def test_a_classical_account_cannot_send_a_seed_with_its_password(clock, client, session,  # type: ignore[no-untyped-def]  # noqa: F811
                                                                  settings) -> None:
    ling = make_account(session, settings, "ling")
    csrf = login(client, "ling", PASSWORD, clock.code(ling.totp_secret)).json()["csrf_token"]
    body = {"old_auth_secret": b64(os.urandom(32)), "new_user_salt": b64(os.urandom(16)),
            "new_auth_secret": b64(os.urandom(32)),
            "new_wrapped_private_key": b64(b"\x01" + os.urandom(76)),
            "new_wrapped_xwing_seed": b64(b"\x02" + os.urandom(60))}
    refused = client.post("/console/api/account/password", json=body,
                          headers={"X-CSRF-Token": csrf, **JSON})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "xwing_rewrap"
