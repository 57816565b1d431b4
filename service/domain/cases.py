"""Which cases a console user may see, the filtered list, and the single-case access check.

Visibility: a ``ready`` case is visible to a user with a case role (reviewer, approver,
auditor) when the case's channel is in the user's scope (set by an admin, for any role), the
user is a recipient of it (reviewers only), or the user holds a key slot of the case (a
colleague's grant, or a former recipient's old slots). Seeing a case is not reading it: only
a key slot opens the report. An administrator without a case role
sees none: administering users must not open reports.

The list is keyset-paginated on (created_at, id) so every page costs the same however many
cases there are: the ordering walks ``ix_cases_created`` and stops after one page.

The single case's page data for case.js (``case_page_data``) is built here too, from the same
key-slot and file helpers the sealed JSON calls use.

Longer than 500 lines because visibility is one rule: the list query, the single-case
check and the filters are built from the same clauses and must not drift apart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, null, or_, select
from sqlalchemy import case as sql_case
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import crypto
from service.domain import audit, followup, intake, workflow
from service.domain.intake import ID
from service.domain.models import (
    Case,
    CaseEvent,
    Channel,
    ChannelRecipient,
    ChannelScope,
    KeySlot,
    SealedItem,
    StoredFile,
    User,
    utcnow,
)
from service.platform import localtime
from service.platform.db import Database
from service.platform.errors import ChuishaoError, Conflict, InvalidInput, Malformed, NotFound
from service.platform.i18n import N_
from service.platform.settings import Settings

CASE_ROLES = ("reviewer", "approver", "auditor")
PAGE_SIZE = 50
SORTS = ("newest", "oldest", "due")


@dataclass(frozen=True)
class Filters:
    channel: int | None = None
    status: str | None = None
    grade: str | None = None
    overdue: bool = False
    sealed_on_server: bool | None = None
    mine: bool = False
    sort: str = "newest"
    after: str | None = None  # the cursor of the previous page's last row

    @classmethod
    def parse(cls, query: Any) -> Filters:
        """From request query parameters; anything unknown is ignored, not an error."""

        def get(name: str) -> str:
            return str(query.get(name) or "").strip()

        channel = get("channel")
        sealed = get("sealed")
        return cls(
            channel=int(channel) if channel.isdigit() and len(channel) < 10 else None,
            status=get("status") if get("status") in workflow.STATES else None,
            grade=get("grade") if get("grade") in workflow.GRADES else None,
            overdue=get("overdue") == "1",
            sealed_on_server={"1": True, "0": False}.get(sealed),
            mine=get("mine") == "1",
            sort=get("sort") if get("sort") in SORTS else "newest",
            after=get("after")[:200] or None,
        )

    def query_string(self, **changes: Any) -> str:

        values = {"channel": self.channel, "status": self.status, "grade": self.grade,
                  "overdue": "1" if self.overdue else None,
                  "sealed": None if self.sealed_on_server is None
                  else ("1" if self.sealed_on_server else "0"),
                  "mine": "1" if self.mine else None, "sort": self.sort, "after": self.after}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


@dataclass
class Page:
    cases: list[Case]
    next_cursor: str | None


# ---------------------------------------------------------------------------- visibility


def case_channels(session: Session, user: User) -> list[int]:
    """Channels whose plaintext records the user may see and act on: their scope, plus the
    channels they receive (a recipient is a reviewer of the channel)."""
    if not user.has_role(*CASE_ROLES):
        return []
    return sorted(set(session.scalars(
        select(ChannelScope.channel_id).where(ChannelScope.user_id == user.id)
        .union(select(ChannelRecipient.channel_id)
               .where(ChannelRecipient.user_id == user.id)))))


def visible_clause(session: Session, user: User) -> ColumnElement[bool]:
    if not user.has_role(*CASE_ROLES) or not user.active:
        return false()
    channels = case_channels(session, user)
    holds_slot = exists().where(KeySlot.case_id == Case.id, KeySlot.user_id == user.id)
    # The slot test is an indexed probe (ix_key_slots_case_id) per candidate row.
    return and_(Case.ready.is_(True),
                or_(Case.channel_id.in_(channels), holds_slot) if channels else holds_slot)


def visible_channels(session: Session, user: User, also: set[int] | None = None) -> list[Channel]:
    """Channels for the list's filter and rows: those received, plus ``also`` (the channels
    of granted cases on the page). Not a search of every slot the user holds: key_slots has
    no index on the holder, and this runs on every page."""
    ids = set(case_channels(session, user)) | (also or set())
    if not ids:
        return []
    return list(session.scalars(select(Channel).where(Channel.id.in_(ids)).order_by(Channel.id)))


def get_case(session: Session, database: Database | None, user: User, case_id: str) -> Case:
    """The case if ``user`` may see it; otherwise the same 404 as for an unknown id, audited."""
    case = session.get(Case, case_id) if isinstance(case_id, str) and ID.match(case_id) else None
    if case is not None:
        seen = session.scalar(select(Case.id).where(Case.id == case.id,
                                                    visible_clause(session, user)))
        if seen is not None:
            return case
    if database is not None:
        # The request's transaction rolls back on the 404: record it in a transaction of its own.
        audit.record_refusal(database, "case.open", actor_id=user.id,
                             target=str(case_id)[:100])
    raise NotFound()


# ---------------------------------------------------------------------------- the list


def overdue_clause(settings: Settings, now: dt.datetime) -> ColumnElement[bool]:
    """SQL mirror of ``workflow.is_overdue``."""
    accept_cutoff = now - dt.timedelta(days=settings.accept_days)
    return or_(
        and_(Case.status == "new",
             or_(Case.accept_due_at < now,
                 and_(Case.accept_due_at.is_(None), Case.created_at < accept_cutoff))),
        and_(Case.status.in_(("accepted", "verifying")), Case.verify_due_at < now),
        and_(Case.status == "verified", Case.feedback_due_at < now),
        and_(Case.status == "rectifying", Case.rectification_due_at < now),
    )


def encode_cursor(case: Case) -> str:
    raw = f"{case.created_at.timestamp():.0f}:{case.id}"
    return crypto.b64u_encode(raw.encode())


def decode_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if not cursor:
        return None
    try:
        raw = crypto.b64u_decode(cursor).decode()
        stamp, case_id = raw.split(":", 1)
        when = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
    except (ValueError, UnicodeDecodeError, OverflowError, OSError):
        return None
    return (when, case_id) if ID.match(case_id) else None


def list_query(session: Session, settings: Settings, user: User, filters: Filters,
               now: dt.datetime | None = None, limit: int = PAGE_SIZE) -> Select[Any]:
    now = now or utcnow()
    query = select(Case).where(visible_clause(session, user))
    if filters.channel is not None:
        query = query.where(Case.channel_id == filters.channel)
    if filters.status:
        query = query.where(Case.status == filters.status)
    if filters.grade:
        query = query.where(Case.grade == filters.grade)
    if filters.overdue:
        query = query.where(overdue_clause(settings, now))
    if filters.sealed_on_server is not None:
        query = query.where(Case.sealed_on_server.is_(filters.sealed_on_server))
    if filters.mine:
        query = query.where(Case.assigned_to == user.id)
    if filters.sort == "due":
        # Most urgent first: the deadline each case runs against now; cases with none
        # (refused, closed, accepted rectification, a record without a deadline yet) follow,
        # by id. Keyset pages on (no deadline, deadline, id) so every case is reached.
        due = workflow_due_expression(settings)
        after = decode_due_cursor(filters.after)
        if after is not None:
            when, case_id = after
            if when is None:
                query = query.where(due.is_(None), Case.id > case_id)
            else:
                query = query.where(or_(due > when, and_(due == when, Case.id > case_id),
                                        due.is_(None)))
        return query.order_by(due.is_(None).asc(), due.asc(), Case.id.asc()).limit(limit)
    cursor = decode_cursor(filters.after)
    if filters.sort == "oldest":
        if cursor:
            when, case_id = cursor
            query = query.where(Case.created_at >= when,
                                or_(Case.created_at > when, Case.id > case_id))
        return query.order_by(Case.created_at.asc(), Case.id.asc()).limit(limit)
    if cursor:
        when, case_id = cursor
        query = query.where(Case.created_at <= when,
                            or_(Case.created_at < when, Case.id < case_id))
    return query.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)


def workflow_due_expression(settings: Settings) -> ColumnElement[Any]:

    # SQLite and PostgreSQL both order ISO-like timestamps correctly; the accept deadline of
    # a case without one is its creation time (its deadline is a fixed offset from it).
    return sql_case(
        (Case.status == "new", func.coalesce(Case.accept_due_at, Case.created_at)),
        (Case.status == "verified", Case.feedback_due_at),
        (Case.status.in_(("accepted", "verifying")), Case.verify_due_at),
        (Case.status == "rectifying", Case.rectification_due_at),
        else_=null(),
    )


def encode_due_cursor(case: Case, settings: Settings) -> str:
    # The sort key itself, as the database compares it (new cases without an accept
    # deadline sort by their creation time).
    key: dt.datetime | None
    if case.status == "new":
        key = case.accept_due_at or case.created_at
    else:
        key = workflow.due_at(case, settings)
    raw = f"{key.astimezone(dt.UTC).isoformat() if key else '-'}|{case.id}"
    return crypto.b64u_encode(raw.encode())


def decode_due_cursor(cursor: str | None) -> tuple[dt.datetime | None, str] | None:
    if not cursor:
        return None
    try:
        raw = crypto.b64u_decode(cursor).decode()
        stamp, case_id = raw.split("|", 1)
        when = None if stamp == "-" else dt.datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError):
        return None
    if when is not None and when.tzinfo is None:
        return None
    return (when, case_id) if ID.match(case_id) else None


def list_cases(session: Session, settings: Settings, user: User, filters: Filters,
               now: dt.datetime | None = None, limit: int | None = None) -> Page:
    limit = limit or PAGE_SIZE
    rows = list(session.scalars(list_query(session, settings, user, filters, now, limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if not (more and rows):
        cursor = None
    elif filters.sort == "due":
        cursor = encode_due_cursor(rows[-1], settings)
    else:
        cursor = encode_cursor(rows[-1])
    return Page(rows, cursor)


# ---------------------------------------------------------------------------- one case


def slots_of(session: Session, case: Case, user: User, purpose: str = "case") -> dict[str, KeySlot]:
    """The user's slots of one key of a case by suite: v1, v2 or (once re-slotted) both."""
    return {slot.suite: slot for slot in session.scalars(select(KeySlot).where(
        KeySlot.case_id == case.id, KeySlot.purpose == purpose, KeySlot.user_id == user.id,
        KeySlot.key_id.in_(user.key_ids())))}


def preferred(slots: dict[str, KeySlot]) -> KeySlot | None:
    return slots.get(crypto.SUITE_V2) or slots.get(crypto.SUITE)


def slot_for(session: Session, case: Case, user: User, purpose: str = "case") -> KeySlot | None:
    """Whether (and by which slot) the user holds the key: the v2 slot where there is one."""
    return preferred(slots_of(session, case, user, purpose))


def slots_for_cases(session: Session, case_ids: list[str],
                    user: User) -> dict[str, dict[str, KeySlot]]:
    if not case_ids:
        return {}
    rows = session.scalars(select(KeySlot).where(
        KeySlot.case_id.in_(case_ids), KeySlot.purpose == "case", KeySlot.user_id == user.id,
        KeySlot.key_id.in_(user.key_ids())))
    found: dict[str, dict[str, KeySlot]] = {}
    for slot in rows:
        found.setdefault(slot.case_id, {})[slot.suite] = slot
    return found


def slot_fields(slots: dict[str, KeySlot], name: str = "slot") -> dict[str, str]:
    """A user's slots as the console scripts take them: ``name`` the v1 slot and
    ``name``_v2 the v2 one ("" where none); the page opens v2 where it has the X-Wing key."""
    v1, v2 = slots.get(crypto.SUITE), slots.get(crypto.SUITE_V2)
    return {name: _b64(v1.slot if v1 else None), name + "_v2": _b64(v2.slot if v2 else None)}


def report_items(session: Session, case_ids: list[str]) -> dict[str, SealedItem]:
    if not case_ids:
        return {}
    rows = session.scalars(select(SealedItem).where(SealedItem.case_id.in_(case_ids),
                                                    SealedItem.kind == "report"))
    return {item.case_id: item for item in rows}


def complete_files(session: Session, case: Case) -> list[StoredFile]:
    return list(session.scalars(select(StoredFile).where(
        StoredFile.case_id == case.id, StoredFile.complete.is_(True)).order_by(StoredFile.id)))


def channel_reviewers(session: Session, channel_id: int) -> list[User]:
    """Active recipients of the channel who hold the reviewer role."""
    users = session.scalars(
        select(User).join(ChannelRecipient, ChannelRecipient.user_id == User.id)
        .where(ChannelRecipient.channel_id == channel_id, User.active.is_(True))
        .order_by(User.username))
    return [user for user in users if user.has_role("reviewer")]


def same_channel_cases(session: Session, case: Case, limit: int = 200) -> list[Case]:
    """Candidates for a duplicate link, newest first."""
    return list(session.scalars(
        select(Case).where(Case.channel_id == case.channel_id, Case.ready.is_(True),
                           Case.id != case.id)
        .order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)))


# ---------------------------------------------------------------------------- sealed additions
# The server cannot read any of these; it checks their form, who may send them and to whom
# a key may be slotted.


class KeyNotHeld(ChuishaoError):
    status = 403
    code = "key_not_held"
    message = N_("You do not hold this case's key, so you cannot write to it or share it.")


class InternalKeyExists(Conflict):
    code = "internal_key_exists"
    message = N_("Another reviewer created the internal notes key in the meantime. Reload the "
                 "page and write the note again.")


class RecipientsChanged(Conflict):
    code = "keys_changed"
    message = N_("The reviewers of this reporting line changed. Reload the page and try again.")


def require_key(session: Session, case: Case, user: User) -> KeySlot:
    slot = slot_for(session, case, user)
    if slot is None:
        raise KeyNotHeld()
    return slot


def _sealed_item(session: Session, data: Any, *, slots_allowed: bool = False) -> tuple[str, bytes]:
    allowed = {"id", "blob", "kind"} | ({"slots"} if slots_allowed else set())
    if not isinstance(data, dict) or not set(data) <= allowed:
        raise Malformed("item")
    return intake.new_item(session, data)


def add_message(session: Session, case: Case, actor: User, data: Any,
                now: dt.datetime | None = None) -> SealedItem:
    """A message to the reporter, sealed with the case key; the reporter's feed shows it."""
    require_key(session, case, actor)
    item_id, blob = _sealed_item(session, data)
    if isinstance(data, dict) and data.get("kind", "message") != "message":
        raise Malformed("kind")
    now = now or utcnow()
    item = SealedItem(id=item_id, case_id=case.id, kind="message", author="reviewer",
                      user_id=actor.id, blob=blob, created_at=now)
    session.add(item)
    session.add(CaseEvent(case_id=case.id, kind="message", user_id=actor.id,
                          visible_to_reporter=True, data={}, created_at=now))
    case.updated_at = now
    audit.append(session, "case.message", actor=actor, target=case.id, now=now,
                 details={"item": item_id})
    session.flush()
    return item


def internal_recipients(session: Session, case: Case, *,
                        v2_only: bool) -> list[intake.Recipient]:
    """Who must get the internal key: the same recipients intake slots the case key to (each
    by either of its keys, as there; with ``v2_only`` those with an X-Wing key), minus the
    reporter. Never the reporter: the internal key is for reviewer-only notes."""
    channel = session.get(Channel, case.channel_id)
    assert channel is not None
    return list(intake.channel_keys(session, channel, v2_only=v2_only).recipients)


def has_internal_key(session: Session, case: Case) -> bool:
    return session.scalar(select(KeySlot.id).where(
        KeySlot.case_id == case.id, KeySlot.purpose == "internal").limit(1)) is not None


def _b64(data: bytes | None) -> str:
    return crypto.b64u_encode(data) if data else ""


def case_page_data(session: Session, settings: Settings, case: Case,
                   user: User) -> dict[str, Any]:
    """What the case page hands case.js: the user's key slots, the sealed conversation and
    files, and the colleagues a key can be granted to. Ciphertext only; the browser decrypts."""
    reviewers = channel_reviewers(session, case.channel_id)
    holders = {slot.user_id for slot in case.slots if slot.purpose == "case"}
    slots = slots_of(session, case, user)
    internal = slots_of(session, case, user, "internal")
    # The identity is never on the page: only POST .../identity hands it out, audited. The
    # reporter's own order, never interleaved with reviewers' finer than the granularity.
    items = followup.conversation_order(case, list(session.scalars(
        select(SealedItem).where(SealedItem.case_id == case.id,
                                 SealedItem.kind != "identity"))), settings)
    files = complete_files(session, case)
    complete_meta = {f.meta_item_id for f in files}
    authors = {u.id: u.display_name or u.username for u in reviewers}
    return {
        "case_id": case.id,
        **slot_fields(slots),
        **slot_fields(internal, "internal_slot"),
        "internal_exists": has_internal_key(session, case),
        "internal_recipients": [intake.recipient_info(r)
                                for r in internal_recipients(
                                    session, case, v2_only=settings.require_v2)],
        "colleagues": [{"user_id": u.id, "name": u.display_name or u.username,
                        **intake.recipient_info(intake.recipient_of(u))}
                       for u in reviewers if u.id not in holders],
        "items": [{"id": i.id, "kind": i.kind, "author": i.author,
                   "name": authors.get(i.user_id or 0, ""), "created": i.created_at.isoformat(),
                   # Shown as the page shows every time: the installation's zone, labelled;
                   # a reporter's item as the span its coarse time stands for.
                   "shown": localtime.show(i.created_at, granularity=(
                       settings.time_granularity_seconds if i.author == "reporter" else None)),
                   "blob": _b64(i.blob)}
                  for i in items if i.kind != "file-meta" or i.id in complete_meta],
        "files": [{"id": f.id, "meta_item_id": f.meta_item_id, "chunk_count": f.chunk_count,
                   "stored_size": f.stored_size, "author": f.author} for f in files],
        "can_write": user.has_role("reviewer") and bool(slots),
    }


def parse_slots(raw: Any, purposes: tuple[str, ...]) -> list[intake.SlotSpec]:
    """Slots a reviewer's page sealed, of either suite (its length checked by the suite)."""
    if not isinstance(raw, list) or not 0 < len(raw) <= 200:
        raise Malformed("slots")
    parsed = []
    for entry in raw:
        if not isinstance(entry, dict) or entry.get("purpose") not in purposes \
                or entry.get("suite", crypto.SUITE) not in intake.SLOT_SIZES:
            raise Malformed("slot")
        suite = str(entry.get("suite", crypto.SUITE))
        slot = intake.parse_b64(entry.get("slot"), "slot")
        if len(slot) != intake.SLOT_SIZES[suite]:
            raise Malformed("slot")
        parsed.append(intake.SlotSpec(str(entry["purpose"]),
                                      intake.parse_id(entry.get("key_id"), "key_id"), suite,
                                      slot))
    pairs = [(spec.purpose, spec.key_id) for spec in parsed]
    if len(set(pairs)) != len(pairs):
        raise Malformed("slots")
    return parsed


def store_slots(session: Session, case: Case, slots: list[KeySlot]) -> None:
    try:
        with session.begin_nested():
            session.add_all(slots)
            session.flush()
    except IntegrityError:
        # Someone slotted the same key for the same holder first (a race): nothing is kept.
        raise InternalKeyExists() from None


def add_note(session: Session, case: Case, actor: User, data: Any, *, v2_only: bool,
             now: dt.datetime | None = None) -> SealedItem:
    """An internal note sealed with the case's internal key. The first note brings the
    internal key's slots: one per reviewer of the channel and one for the recovery key."""
    require_key(session, case, actor)
    item_id, blob = _sealed_item(session, data, slots_allowed=True)
    if isinstance(data, dict) and data.get("kind", "note") != "note":
        raise Malformed("kind")
    now = now or utcnow()
    raw_slots = data.get("slots") if isinstance(data, dict) else None
    exists_already = has_internal_key(session, case)
    if raw_slots and exists_already:
        raise InternalKeyExists()
    if not raw_slots and not exists_already:
        raise InvalidInput(N_("The first note must bring the internal key for every reviewer."),
                           code="internal_key_missing")
    if raw_slots:
        allowed = internal_recipients(session, case, v2_only=v2_only)
        parsed = parse_slots(raw_slots, ("internal",))
        by_key = {key_id: r for r in allowed
                  for key_id in (r.key_id, r.xwing_key_id) if key_id is not None}
        if any(spec.key_id not in by_key for spec in parsed):
            raise InvalidInput(N_("The internal key may be given only to reviewers of this "
                                  "reporting line and to the recovery key."),
                               code="internal_slot_refused", status=403)
        holders = [by_key[spec.key_id] for spec in parsed]
        # v1 under an X-Wing key id (or v2 under an X25519 one) opens for no one.
        if any(r.suite_of(spec.key_id) != spec.suite for r, spec in zip(holders, parsed,
                                                                        strict=True)):
            raise Malformed("slot suite")
        # Each recipient exactly once, by either of its keys.
        if sorted(r.key_id for r in holders) != sorted(r.key_id for r in allowed):
            raise RecipientsChanged()
        store_slots(session, case, [
            KeySlot(case_id=case.id, purpose="internal", key_id=spec.key_id, suite=spec.suite,
                    slot=spec.slot, created_at=now, holder=r.holder, user_id=r.user_id)
            for r, spec in zip(holders, parsed, strict=True)])
    item = SealedItem(id=item_id, case_id=case.id, kind="note", author="reviewer",
                      user_id=actor.id, blob=blob, created_at=now)
    session.add(item)
    session.add(CaseEvent(case_id=case.id, kind="note", user_id=actor.id,
                          visible_to_reporter=False, data={}, created_at=now))
    audit.append(session, "case.note", actor=actor, target=case.id, now=now,
                 details={"item": item_id, "internal_key_created": bool(raw_slots)})
    session.flush()
    return item


GRANT_V2_ONLY = N_("This installation requires post-quantum sealing: a case can be given only "
                   "to a colleague who has a post-quantum key, from a browser that has it too. "
                   "Ask the colleague to sign in again in an up-to-date Chromium-based browser.")


def add_grant(session: Session, case: Case, actor: User, data: Any, *, v2_only: bool,
              now: dt.datetime | None = None) -> list[KeySlot]:
    """A reviewer holding the case key slots it (and the internal key) to a colleague; with
    ``v2_only`` (the installation requires v2) only by v2 slots."""
    require_key(session, case, actor)
    if not isinstance(data, dict):
        raise Malformed("grant")
    colleague_id = data.get("user_id")
    colleague = next((u for u in channel_reviewers(session, case.channel_id)
                      if isinstance(colleague_id, int) and u.id == colleague_id), None)
    if colleague is None:
        raise InvalidInput(N_("Access can be given only to a reviewer of this reporting line."),
                           code="grantee", status=403)
    parsed = parse_slots(data.get("slots"), ("case", "internal"))
    internal = has_internal_key(session, case)
    now = now or utcnow()
    new = []
    recipient = intake.recipient_of(colleague)
    if len({spec.purpose for spec in parsed}) != len(parsed):
        raise Malformed("slots")  # one slot per key: v2 where the colleague has an X-Wing key
    for spec in parsed:
        if recipient.suite_of(spec.key_id) is None:
            raise Malformed("key_id")
        if recipient.suite_of(spec.key_id) != spec.suite:
            raise Malformed("slot suite")
        if v2_only and spec.suite != crypto.SUITE_V2:
            raise InvalidInput(GRANT_V2_ONLY, code="v2_required")
        if spec.purpose == "internal" and not internal:
            raise Malformed("slot")
        if slot_for(session, case, colleague, spec.purpose) is not None:
            continue  # held already (the internal key reaches every recipient on first use)
        new.append(KeySlot(case_id=case.id, purpose=spec.purpose, holder="reviewer",
                           user_id=colleague.id, suite=spec.suite, key_id=spec.key_id,
                           slot=spec.slot, created_at=now))
    if not new:
        raise Conflict(N_("This colleague already has access."), code="already_granted")
    if not any(slot.purpose == "case" for slot in new) and slot_for(
            session, case, colleague) is None:
        raise Malformed("slots")
    store_slots(session, case, new)
    if any(slot.purpose == "case" and slot.suite == crypto.SUITE for slot in new):
        case.classical_only = True  # a v1 case-key slot (PROTOCOL 17.7)
    audit.append(session, "case.grant", actor=actor, target=case.id, now=now,
                 details={"user_id": colleague.id, "purposes": [s.purpose for s in new]})
    return new


def identity_items(session: Session, case: Case, actor: User) -> list[SealedItem]:
    """The case's identity item, served only from here (never on the case page), so every
    look at the reporter's identity is on the record (docs/RULES.md, confidentiality) in the very
    transaction that hands it out. Only a holder of the case key gets it: nobody else could
    open it. Every case has one (a stand-in when the reporter gave none), so asking tells
    nothing before the item is opened."""
    require_key(session, case, actor)
    items = list(session.scalars(select(SealedItem).where(
        SealedItem.case_id == case.id, SealedItem.kind == "identity")
        .order_by(SealedItem.position, SealedItem.id)))
    audit.append(session, "case.identity_viewed", actor=actor, target=case.id)
    return items


def file_chunk(session: Session, case: Case, file_id: str, index: int) -> bytes:
    file = intake.find_file(session, case, file_id)
    if not file.complete:
        raise NotFound()
    return intake.read_chunk(session, file, index)


__all__ = ["Filters", "Page", "get_case", "list_cases", "list_query", "workflow"]
