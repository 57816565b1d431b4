"""The audit trail: every console action and attempt, in an append-only hash chain.

Each entry's hash covers the previous entry's hash and the entry's own fields in canonical
JSON, so changing, removing or reordering any entry breaks every hash after it. ``prev_hash``
is unique, so two writers racing for the same head cannot fork the chain: the loser retries.

Successful actions are appended in the request's own transaction (atomic with the action).
Refused attempts are appended through ``record_refusal`` in a transaction of their own,
because the request's transaction is rolled back.

An entry a reporter's action causes is not appended at once: its place between staff entries
would date the action to the second. ``defer`` holds it, stamped with the start of its time
bucket, and ``release_deferred`` (housekeeping) enters every held entry of a bucket after the
bucket has ended, in random order.

The chain proves itself only to someone holding a head from outside the database: whoever
can write the database can recompute every hash. ``check_anchors`` compares the chain with
heads the auditor kept (from signed export manifests, signed heads, or typed in).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import crypto
from service.domain.installation import canonical_json, pinned_signature_ok
from service.domain.models import AuditEntry, DeferredAuditEntry, User, utcnow
from service.platform.db import Database, run_after_request

GENESIS = "0" * 64
RETRIES = 8


HASHED = (AuditEntry.id, AuditEntry.created_at, AuditEntry.actor_id, AuditEntry.actor,
          AuditEntry.action, AuditEntry.target, AuditEntry.outcome, AuditEntry.details)


def _canonical(entry: Any) -> bytes:
    fields = {
        "id": entry.id,
        "created_at": entry.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_id": entry.actor_id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "details": entry.details,
    }
    return json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(prev_hash: str, entry: Any) -> str:
    """SHA-256 over the previous hash, a newline and the entry's canonical JSON."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + _canonical(entry)).hexdigest()


def head(session: Session) -> tuple[int, str]:
    """(id, hash) of the newest entry, or (0, GENESIS)."""
    row = session.execute(select(AuditEntry.id, AuditEntry.hash)
                          .order_by(AuditEntry.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (0, GENESIS)


def append(session: Session, action: str, *, actor: User | None = None, target: str = "",
           outcome: str = "ok", details: dict[str, Any] | None = None,
           now: dt.datetime | None = None) -> AuditEntry:
    """Append one entry inside the caller's transaction."""
    now = now or utcnow()
    for _attempt in range(RETRIES):
        last_id, last_hash = head(session)
        entry = AuditEntry(
            id=last_id + 1, created_at=now, actor_id=actor.id if actor else None,
            actor=actor.username if actor else "", action=action, target=target[:100],
            outcome=outcome, details=details or {}, prev_hash=last_hash,
        )
        entry.hash = entry_hash(last_hash, entry)
        try:
            with session.begin_nested():
                session.add(entry)
                session.flush()
            return entry
        except IntegrityError:
            continue  # someone else took this head; the savepoint dropped our entry
    raise RuntimeError("audit chain is too busy; try again")


def record_refusal(database: Database, action: str, *, actor_id: int | None = None,
                   actor: str = "", target: str = "",
                   details: dict[str, Any] | None = None) -> None:
    """Append a refused attempt in its own transaction, so it survives the rollback.

    Within a request it is written right after the request's transaction has ended.
    """
    now = utcnow()  # the moment of the attempt, not of the write

    def write(session: Session) -> None:
        user = session.get(User, actor_id) if actor_id else None
        extra = {"claimed_actor": actor} if actor and user is None else {}
        append(session, action, actor=user, target=target, outcome="refused",
               details={**(details or {}), **extra}, now=now)

    run_after_request(database, write)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    count: int
    head: str
    first_bad_id: int | None
    problem: str


def verify_chain(session: Session, batch: int = 1000) -> ChainReport:
    """Walk the chain from the start; report the first entry that does not fit."""
    expected_prev = GENESIS
    expected_id = 1
    count = 0
    last_id = 0
    while True:
        # Plain rows, not ORM objects: memory stays flat however long the chain is.
        rows = list(session.execute(
            select(*HASHED, AuditEntry.prev_hash, AuditEntry.hash)
            .where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)))
        if not rows:
            break
        for entry in rows:
            if entry.id != expected_id:
                return ChainReport(False, count, expected_prev, entry.id,
                                   f"entry {expected_id} is missing")
            if entry.prev_hash != expected_prev:
                return ChainReport(False, count, expected_prev, entry.id,
                                   "does not follow the previous entry")
            if entry_hash(entry.prev_hash, entry) != entry.hash:
                return ChainReport(False, count, expected_prev, entry.id,
                                   "its content was changed after it was written")
            expected_prev = entry.hash
            expected_id += 1
            count += 1
            last_id = entry.id
    return ChainReport(True, count, expected_prev, None, "")


# ---------------------------------------------------------------------------- reporters' entries


def defer(session: Session, action: str, *, bucket_start: dt.datetime, granularity: int,
          target: str = "", outcome: str = "ok",
          details: dict[str, Any] | None = None) -> None:
    """Hold an entry a reporter's action caused until its time bucket has ended.

    ``bucket_start`` is the action's time already rounded down to the granularity.
    """
    session.add(DeferredAuditEntry(
        id=crypto.new_id().hex(), created_at=bucket_start,
        release_at=bucket_start + dt.timedelta(seconds=granularity), action=action,
        target=target[:100], outcome=outcome, details=details or {}))


def release_deferred(session: Session, now: dt.datetime | None = None) -> int:
    """Enter every held entry whose bucket has ended; returns how many.

    They go in after every staff entry of their bucket, in random order (their ids are
    random), each stamped with its bucket's start: neither place nor time tells more than
    the bucket.
    """
    now = now or utcnow()
    held = list(session.execute(
        select(DeferredAuditEntry.id, DeferredAuditEntry.created_at, DeferredAuditEntry.action,
               DeferredAuditEntry.target, DeferredAuditEntry.outcome,
               DeferredAuditEntry.details)
        .where(DeferredAuditEntry.release_at <= now).order_by(DeferredAuditEntry.id)))
    entered = 0
    for entry in held:
        # Taken by deleting it first: two housekeeping rounds at once (the server's and a
        # cron job's) cannot both enter it.
        taken = session.execute(delete(DeferredAuditEntry)
                                .where(DeferredAuditEntry.id == entry.id))
        if getattr(taken, "rowcount", 0) != 1:
            continue
        append(session, entry.action, target=entry.target, outcome=entry.outcome,
               details=entry.details, now=entry.created_at)
        entered += 1
    return entered


# ---------------------------------------------------------------------------- anchors

HEAD_SCHEMA = "chuishao.audit-head/1"
EXPORT_SCHEMA = "chuishao.export-manifest/1"
_ANCHOR = re.compile(r"^([0-9]{1,12}):([0-9a-f]{64})$")


class AnchorError(ValueError):
    """An anchor that cannot be read or whose signature does not check out."""


@dataclass(frozen=True)
class Anchor:
    """A chain head held outside the database: entry ``entry`` had hash ``head``."""

    entry: int
    head: str
    source: str


def parse_anchor(text: str, source: str = "--expect-head") -> Anchor:
    """``ENTRY:HASH``, as ``chuishao audit verify`` prints it."""
    match = _ANCHOR.match(text.strip().lower())
    if match is None:
        raise AnchorError(f"{source}: give ENTRY:HASH, e.g. 108:b4a8…, as `chuishao audit "
                          "verify` prints it")
    return Anchor(int(match[1]), match[2], source)


def anchor_from_document(text: str, pinned_key: bytes | None, source: str) -> Anchor:
    """The head named by a signed export manifest or a signed head.

    The signature is checked against the pinned key; with ``pinned_key`` None (asked for
    explicitly) the document's own key is used, which proves nothing about who signed it.
    """
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        schema = document.get("schema")
        if schema == EXPORT_SCHEMA:
            entry, head_hash = document["audit_chain"]["entry"], document["audit_chain"]["head"]
        elif schema == HEAD_SCHEMA:
            entry, head_hash = document["entry"], document["head"]
        else:
            raise ValueError("neither an export manifest nor a signed audit head")
        anchor = parse_anchor(f"{int(entry)}:{head_hash}", source)
    except (ValueError, KeyError, TypeError) as exc:
        raise AnchorError(f"{source}: cannot be read: {exc}") from None
    problem = pinned_signature_ok(document, pinned_key)
    if problem:
        raise AnchorError(f"{source}: {problem}")
    return anchor


def signed_head(session: Session, signing_key: bytes,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """The current head, signed with the installation's key: for the auditor to keep."""
    entry, head_hash = head(session)
    public = crypto.signing_public_key(signing_key)
    document: dict[str, Any] = {
        "schema": HEAD_SCHEMA, "entry": entry, "head": head_hash,
        "signed_at": (now or utcnow()).astimezone(dt.UTC).isoformat(timespec="seconds"),
        "installation_key_id": hashlib.sha256(public).digest()[:16].hex(),
        "public_key": crypto.b64u_encode(public),
    }
    document["signature"] = crypto.b64u_encode(crypto.sign(signing_key,
                                                           canonical_json(document)))
    return document


def check_anchors(session: Session, anchors: Iterable[Anchor]) -> list[str]:
    """What does not fit between the chain and the heads held outside it (empty: all fit).

    With the chain itself intact from the start (``verify_chain``), an entry whose hash is
    the one held proves every entry up to it unchanged; a missing entry means the chain was
    cut back.
    """
    problems = []
    last = head(session)[0]
    for anchor in anchors:
        found = session.scalar(select(AuditEntry.hash).where(AuditEntry.id == anchor.entry))
        if found is None:
            problems.append(f"{anchor.source}: entry {anchor.entry} is gone, the chain now "
                            f"ends at entry {last}: its newest entries were removed")
        elif found != anchor.head:
            problems.append(f"{anchor.source}: entry {anchor.entry} now has hash {found}, not "
                            f"{anchor.head}: the chain was rewritten at or before entry "
                            f"{anchor.entry}")
    return problems
