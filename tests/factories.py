"""Real objects for tests: an initialised installation, channels, reviewers with real keys."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from starlette.testclient import TestClient

import crypto
from service.client import Client
from service.domain import channels, installation, xwing_keys
from service.domain.models import Channel, ChannelRecipient, User, utcnow
from service.platform.settings import Settings


@dataclass
class Reviewer:
    user: User
    private_key: bytes
    xwing_seed: bytes | None = None  # where the account has its X-Wing pair (protocol v2)


@dataclass
class World:
    settings: Settings
    recovery_private: bytes
    channel: Channel
    reviewers: list[Reviewer]
    recovery_xwing_seed: bytes | None = None


def make_reviewer(session: Session, username: str, channel: Channel | None = None,
                  roles: str = "reviewer", *, xwing: bool = False) -> Reviewer:
    private, public = crypto.generate_keypair()
    user = User(username=username, display_name=username, roles=roles, active=True,
                user_salt=os.urandom(16), auth_hash="scrypt$unused", public_key=public,
                key_id=crypto.key_id(public).hex(), wrapped_private_key=b"\x01" * 77,
                totp_last_step=0, created_at=utcnow())
    session.add(user)
    session.flush()
    if channel is not None:
        session.add(ChannelRecipient(channel_id=channel.id, user_id=user.id,
                                     created_at=utcnow()))
        session.flush()
    seed = None
    if xwing:
        seed = add_xwing(session, user)
    return Reviewer(user, private, seed)


def add_xwing(session: Session, user: User) -> bytes:
    """Give an account its X-Wing pair as its browser does at sign-in; returns the seed."""
    seed, public = crypto.generate_xwing_keypair()
    kid = crypto.key_id(public)
    # The kek is the browser's (from the password): any 32 bytes here, the server cannot tell.
    xwing_keys.add_xwing_key(session, user, xwing_keys.XWingKey(
        public, kid.hex(), crypto.wrap_xwing_seed(os.urandom(32), seed, kid)))
    session.flush()
    return seed


def make_world(session: Session, settings: Settings, reviewers: int = 2) -> World:
    done = installation.initialise(session, settings)
    channel = channels.add_channel(session, slug="acme", kind="enterprise",
                                   name_zh="某机械厂内部举报", name_en="ACME internal line")
    people = [make_reviewer(session, f"reviewer{i}", channel) for i in range(reviewers)]
    session.commit()
    return World(settings, crypto.decode_recovery_secret(done.recovery_secret), channel, people,
                 crypto.decode_recovery_secret(done.recovery_xwing_secret, "xwing"))


def open_reporter_slot(feed: dict[str, Any], keys: crypto.ReceiptKeys, case_id: str) -> bytes:
    """The case key from the reporter's follow-up feed: its slot, by the suite it names."""
    suite = feed["slot_suite"]
    private = keys.xwing_seed if suite == crypto.SUITE_V2 else keys.private
    return crypto.open_slot(suite, crypto.b64u_decode(feed["slot"]), private,
                            bytes.fromhex(case_id))


def testclient_transport(client: TestClient):  # type: ignore[no-untyped-def]
    def send(method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        response = client.request(method, path, content=body, headers=headers)
        return response.status_code, response.content

    return send


def api_client(client: TestClient) -> Client:
    return Client(testclient_transport(client), language="en")


def open_as(private_key: bytes | crypto.ReceiptKeys, session: Session, case_id: str, *,
            xwing_seed: bytes | None = None) -> tuple[bytes, dict[str, Any]]:
    """Open a case as a reviewer would: find our slot, open the case key, open the items.

    With ``xwing_seed`` (or receipt keys, which carry one) a v2 slot is looked for first."""
    from sqlalchemy import select

    from service.domain.models import KeySlot, SealedItem

    if isinstance(private_key, crypto.ReceiptKeys):
        private_key, xwing_seed = private_key.private, private_key.xwing_seed
    candidates = [(crypto.SUITE, private_key, crypto.public_key(private_key))]
    if xwing_seed is not None:
        candidates.insert(0, (crypto.SUITE_V2, xwing_seed, crypto.xwing_public_key(xwing_seed)))
    slot = None
    for suite, private, public in candidates:
        slot = session.scalar(select(KeySlot).where(KeySlot.case_id == case_id,
                                                    KeySlot.key_id == crypto.key_id(public).hex(),
                                                    KeySlot.purpose == "case"))
        if slot is not None:
            assert slot.suite == suite
            break
    assert slot is not None, "no slot for this key"
    case_key = crypto.open_slot(slot.suite, slot.slot, private, bytes.fromhex(case_id))
    items = {}
    # Internal notes are sealed with the internal key, not the case key.
    # Each author's own order (row order says nothing: ids and rowids are random).
    for item in session.scalars(select(SealedItem).where(SealedItem.case_id == case_id,
                                                         SealedItem.kind != "note")
                                .order_by(SealedItem.author, SealedItem.position,
                                          SealedItem.id)):
        try:
            content = crypto.open_item(case_key, bytes.fromhex(case_id),
                                       bytes.fromhex(item.id), item.kind, item.blob)
        except crypto.OpenError:
            if item.kind == "identity":
                continue  # the stand-in of a reporter who gave none (service/domain/intake.py)
            raise
        items.setdefault(item.kind, []).append(content)
    return case_key, items


def form_token(client: TestClient) -> str:
    """The one-time token the no-JavaScript report form carries, as a browser gets it."""
    match = re.search(r'name="form_token" value="([^"]+)"', client.get("/").text)
    assert match, "the report form carries no form token"
    return match.group(1)


def with_token(client: TestClient, data: dict[str, str]) -> dict[str, str]:
    return {**data, "form_token": form_token(client)}
