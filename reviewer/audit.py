"""The audit trail: every console action and attempt, in an append-only hash chain.

Each entry's hash covers the previous entry's hash and the entry's own fields in canonical
JSON, so changing, removing or reordering any entry breaks every hash after it. ``prev_hash``
is unique, so two writers racing for the same head cannot fork the chain: the loser retries.

Successful actions are appended in the request's own transaction (atomic with the action).
Refused attempts are appended through ``record_refusal`` in a transaction of their own,
because the request's transaction is rolled back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import Database, run_after_request
from service.models import AuditEntry, User, utcnow

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
