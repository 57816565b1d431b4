"""Anonymous intake: sealed submissions, chunked uploads, and the all-or-nothing finish.

Both intake paths end here. A JavaScript client seals in the browser and sends an envelope;
the no-JavaScript form is sealed by ``service.domain.serverseal`` with the same crypto and then goes
through the very same functions, so the stored shape cannot differ.

What the server checks without being able to read anything: the envelope's form, that the
case key is slotted to exactly the channel's current recipients plus the recovery key plus
one reporter key, each slot of a suite its recipient has a key for (v2 needs an X-Wing key),
that sealed sizes are padded as the protocol demands, and that file chunks have exactly the
lengths their declared layout implies. A case with any v1 slot is marked classical-only, or
refused where the installation requires suite v2.

Longer than 500 lines because the checks and the all-or-nothing finish are one
transaction's story; split, the order of the checks would be invisible.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, union_all
from sqlalchemy.orm import Session, make_transient_to_detached

import crypto
from service.domain import notify, quota
from service.domain.channels import SLUG
from service.domain.models import (
    Case,
    CaseEvent,
    Channel,
    ChannelRecipient,
    FileChunk,
    Installation,
    KeySlot,
    SealedItem,
    StoredFile,
    User,
    ceil_time,
    floor_time,
    has_role,
    table_of,
    utcnow,
)
from service.platform import tokens
from service.platform.errors import (
    ChuishaoError,
    Conflict,
    InvalidInput,
    Malformed,
    NotFound,
    NotSetUp,
    TooLarge,
)
from service.platform.i18n import N_
from service.platform.settings import Settings

ID = re.compile(r"^[0-9a-f]{32}$")
HASH = re.compile(r"^[0-9a-f]{64}$")
# Item wire format: version (1) + nonce (12) + padded plaintext + tag (16).
ITEM_OVERHEAD = 1 + 12 + 16
MIN_PADDED = 256
MAX_ITEM_PADDED = 256 * 1024
SLOT_SIZES = {crypto.SUITE: crypto.SLOT_SIZE, crypto.SUITE_V2: crypto.SLOT_SIZE_V2}
STORED_CHUNK = crypto.CHUNK_SIZE + 16
# Chunks one batch request may carry (docs/API.md 4.3): 4 MiB of ciphertext, one commit.
BATCH_CHUNKS = 64
# Kinds a reporter may send at intake, with how many of each.
INTAKE_KINDS = {"report": (1, 1), "identity": (0, 1), "file-meta": (0, 10_000)}
# Every stored case has an identity item, so the plaintext kind column does not tell which
# reporters gave one: when none comes, the server stores random bytes of a small identity
# item's size in its place, which no key opens (docs/PROTOCOL.md section 6.1).
IDENTITY_STAND_IN_BYTES = ITEM_OVERHEAD + MIN_PADDED


class UnknownChannel(InvalidInput):
    code = "unknown_channel"
    message = N_("This reporting line does not exist or is closed.")


class SubmissionNotFound(ChuishaoError):
    # One answer for unknown, finished, expired and wrong-token: it tells an outsider nothing.
    status = 404
    code = "submission_not_found"
    message = N_("This upload is no longer open. If your report was not confirmed with a "
                 "receipt, please submit it again.")


class KeysChanged(ChuishaoError):
    status = 409
    code = "keys_changed"
    message = N_("The reviewers of this reporting line changed while you were writing. "
                 "Nothing was sent; please submit again.")


class V2Required(ChuishaoError):
    # Every slot must be v2 on this installation (settings.require_v2): the report page of a
    # browser without the hybrid says so before sealing; this is what any other client gets.
    status = 400
    code = "v2_required"
    message = N_("This service accepts only reports sealed with post-quantum encryption, "
                 "which this browser cannot do. Nothing was sent. Open this page in another, "
                 "up-to-date browser (your phone's own browser), or send the report with the "
                 "form that works without JavaScript.")


class V2NotReady(ChuishaoError):
    # v2 is required but the recovery key has no X-Wing part: the console says so to admins.
    status = 503
    code = "v2_not_ready"
    message = N_("This service cannot take reports right now: its setup is not finished. "
                 "Nothing was sent. Please try again later.")


class UploadIncomplete(ChuishaoError):
    status = 409
    code = "upload_incomplete"
    message = N_("Some parts of your files have not arrived yet. Resume the upload or discard it.")


@dataclass(frozen=True)
class SlotSpec:
    purpose: str
    key_id: str
    suite: str
    slot: bytes


@dataclass(frozen=True)
class ItemSpec:
    id: str
    kind: str
    blob: bytes


@dataclass(frozen=True)
class FileSpec:
    id: str
    meta_item_id: str
    stored_size: int
    chunk_count: int
    # Every stored chunk, when the file travels inside the submission (small files).
    chunks: tuple[bytes, ...] | None = None


@dataclass(frozen=True)
class Envelope:
    channel: str
    case_id: str
    lookup_hash: str
    slots: tuple[SlotSpec, ...]
    items: tuple[ItemSpec, ...]
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class Recipient:
    key_id: str
    public_key: bytes
    user_id: int | None  # None for the installation recovery key
    holder: str
    # The X-Wing key (protocol v2), where the recipient has one; else v1 slots only.
    xwing_key_id: str | None = None
    xwing_public_key: bytes | None = None

    def suite_of(self, key_id: str) -> str | None:
        """The suite a slot addressed to ``key_id`` must have, or None if not this holder's."""
        if key_id == self.key_id:
            return crypto.SUITE
        if self.xwing_key_id is not None and key_id == self.xwing_key_id:
            return crypto.SUITE_V2
        return None


@dataclass(frozen=True)
class ChannelKeys:
    channel_id: int
    recipients: tuple[Recipient, ...]
    fingerprint: bytes


# ---------------------------------------------------------------------------- helpers


def with_identity(items: tuple[ItemSpec, ...]) -> list[ItemSpec]:
    """The items as stored: a stand-in identity right after the report when none was sent
    (where clients put a real one)."""
    if any(item.kind == "identity" for item in items):
        return list(items)
    stand_in = ItemSpec(crypto.new_id().hex(), "identity",
                        b"\x01" + secrets.token_bytes(IDENTITY_STAND_IN_BYTES - 1))
    at = next((i + 1 for i, item in enumerate(items) if item.kind == "report"), len(items))
    return [*items[:at], stand_in, *items[at:]]


def coarse_time(settings: Settings, now: dt.datetime | None = None) -> dt.datetime:
    """Stored times are rounded down so they cannot link a report to a moment of activity."""
    return floor_time(now or utcnow(), settings.time_granularity_seconds)


def coarse_deadline(settings: Settings, moment: dt.datetime) -> dt.datetime:
    """An expiry a reporter's action sets, rounded up: issue time plus a fixed delay, to the
    second, would date the action (it is kept while the draft or upload is open)."""
    return ceil_time(moment, settings.time_granularity_seconds)


def parse_b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * MAX_ITEM_PADDED:
        raise Malformed(what)
    try:
        return crypto.b64u_decode(value)
    except ValueError:
        raise Malformed(what) from None


def parse_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID.match(value):
        raise Malformed(what)
    return value


def parse_int(value: Any, what: str, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise Malformed(what)
    return value


def check_item_blob(blob: bytes) -> None:
    """A sealed item must carry a PADMÉ-padded plaintext of at least 256 bytes."""
    padded = len(blob) - ITEM_OVERHEAD
    if (not blob or blob[0] != 0x01 or padded < MIN_PADDED or padded > MAX_ITEM_PADDED
            or crypto.padme(padded) != padded):
        raise Malformed("item")


def new_item(session: Session, data: dict[str, Any]) -> tuple[str, bytes]:
    """The id and blob of one more sealed item for a case (a reply, a message, a note),
    checked as intake checks them; an id already stored is a resend, refused."""
    item_id = parse_id(data.get("id"), "item id")
    blob = parse_b64(data.get("blob"), "item")
    check_item_blob(blob)
    if session.get(SealedItem, item_id) is not None:
        raise InvalidInput(N_("This message was already sent."), code="duplicate_item")
    return item_id, blob


def file_layout_ok(stored_size: int, chunk_count: int, max_file_bytes: int) -> bool:
    """Stored size and chunk count must be those of a padded STREAM of some real size."""
    if chunk_count < 1:
        return False
    padded = stored_size - 16 * chunk_count
    if padded < 1 or crypto.padme(padded) != padded:
        return False
    if padded > crypto.padme(max_file_bytes + 1):
        return False
    return chunk_count == math.ceil(padded / crypto.CHUNK_SIZE)


def expected_chunk_length(stored_size: int, chunk_count: int, index: int) -> int:
    if index < chunk_count - 1:
        return STORED_CHUNK
    return stored_size - STORED_CHUNK * (chunk_count - 1)


# ---------------------------------------------------------------------------- envelope


def parse_envelope(data: Any, settings: Settings) -> Envelope:
    if not isinstance(data, dict):
        raise Malformed("envelope")
    channel = data.get("channel")
    if not isinstance(channel, str) or not 0 < len(channel) <= 64:
        raise InvalidInput(N_("Choose a reporting line."))
    case_id = parse_id(data.get("case_id"), "case_id")
    lookup = data.get("lookup_hash")
    if not isinstance(lookup, str) or not HASH.match(lookup):
        raise Malformed("lookup_hash")
    raw_slots, raw_items, raw_files = data.get("slots"), data.get("items"), data.get("files", [])
    if not isinstance(raw_slots, list) or not 0 < len(raw_slots) <= 200:
        raise Malformed("slots")
    if not isinstance(raw_items, list) or not 0 < len(raw_items) <= settings.max_files + 2:
        raise Malformed("items")
    if not isinstance(raw_files, list):
        raise Malformed("files")
    if len(raw_files) > settings.max_files:
        raise TooLarge(N_("At most {count} files can be attached."), count=settings.max_files)
    slots = []
    for raw in raw_slots:
        if (not isinstance(raw, dict) or raw.get("purpose") != "case"
                or raw.get("suite") not in SLOT_SIZES):
            raise Malformed("slot")
        suite = raw["suite"]
        blob = parse_b64(raw.get("slot"), "slot")
        if len(blob) != SLOT_SIZES[suite]:
            raise Malformed("slot")
        slots.append(SlotSpec("case", parse_id(raw.get("key_id"), "key_id"), suite, blob))
    items = []
    for raw in raw_items:
        if not isinstance(raw, dict) or raw.get("kind") not in INTAKE_KINDS:
            raise Malformed("item kind")
        blob = parse_b64(raw.get("blob"), "item")
        check_item_blob(blob)
        items.append(ItemSpec(parse_id(raw.get("id"), "item id"), raw["kind"], blob))
    files = []
    inline_total = 0
    for raw in raw_files:
        if not isinstance(raw, dict):
            raise Malformed("file")
        spec = FileSpec(
            parse_id(raw.get("id"), "file id"), parse_id(raw.get("meta_item_id"), "file meta"),
            parse_int(raw.get("stored_size"), "file size", 2**40), parse_int(raw.get("chunk_count"),
                                                                   "chunks", 2**32),
        )
        if raw.get("chunks") is not None:
            inline_total += spec.stored_size
            if inline_total > settings.max_inline_bytes:
                raise TooLarge()
            spec = FileSpec(spec.id, spec.meta_item_id, spec.stored_size, spec.chunk_count,
                            _inline_chunks(raw["chunks"], spec))
        if spec.stored_size - 16 * spec.chunk_count > crypto.padme(settings.max_file_bytes + 1):
            raise TooLarge(N_("A file is larger than the limit of {mb} MB."),
                           mb=settings.max_file_bytes // (1024 * 1024))
        if not file_layout_ok(spec.stored_size, spec.chunk_count, settings.max_file_bytes):
            raise Malformed("file size")
        files.append(spec)
    envelope = Envelope(channel, case_id, lookup, tuple(slots), tuple(items), tuple(files))
    _check_structure(envelope)
    quota.check_intake(settings, items=len(items),
                       message_bytes=sum(len(item.blob) for item in items),
                       file_bytes=declared_bytes(envelope))
    return envelope


def declared_bytes(envelope: Envelope) -> int:
    """What the submission's files will occupy once uploaded: their stamp is priced on it."""
    return sum(spec.stored_size for spec in envelope.files)


def _inline_chunks(raw: Any, spec: FileSpec) -> tuple[bytes, ...]:
    if not isinstance(raw, list) or len(raw) != spec.chunk_count:
        raise Malformed("chunks")
    chunks = tuple(parse_b64(value, "chunk") for value in raw)
    for index, chunk in enumerate(chunks):
        if len(chunk) != expected_chunk_length(spec.stored_size, spec.chunk_count, index):
            raise Malformed("chunk length")
    return chunks


def _check_structure(envelope: Envelope) -> None:
    ids = [item.id for item in envelope.items] + [f.id for f in envelope.files]
    if len(set(ids)) != len(ids) or envelope.case_id in ids:
        raise Malformed("duplicate id")
    for kind, (low, high) in INTAKE_KINDS.items():
        count = sum(1 for item in envelope.items if item.kind == kind)
        if not low <= count <= high:
            raise Malformed(kind)
    metas = {item.id for item in envelope.items if item.kind == "file-meta"}
    referenced = [f.meta_item_id for f in envelope.files]
    if sorted(referenced) != sorted(metas) or len(set(referenced)) != len(referenced):
        raise Malformed("file meta")
    key_ids = [slot.key_id for slot in envelope.slots]
    if len(set(key_ids)) != len(key_ids):
        raise Malformed("slots")


# ---------------------------------------------------------------------------- channel keys


def sealed_to(user: Any) -> bool:
    """Whether a recipient row of ``user`` gets new cases' keys: an active reviewer only,
    whatever rows exist, so a role taken away never keeps keys coming (service/domain/recipients.py
    also removes the rows). ``user``: a User, or a row of its columns (intake reads those)."""
    return bool(user.active) and has_role(user.roles, "reviewer")


def recipient_of(user: Any, holder: str = "reviewer") -> Recipient:
    """A reviewer (or a finance officer) as a recipient: with the X-Wing key where the
    account has one (PROTOCOL 17.5), which then gets v2 slots. A User or a row of its
    columns."""
    return Recipient(user.key_id, user.public_key, user.id, holder, user.xwing_key_id,
                     user.xwing_public_key)


def recovery_recipient(installation: Any) -> Recipient:
    """From an Installation or a row of its recovery columns."""
    return Recipient(installation.recovery_key_id, installation.recovery_public_key, None,
                     "recovery", installation.recovery_xwing_key_id,
                     installation.recovery_xwing_public_key)


# Intake's statements, built once on the tables: building a statement costs more than
# SQLite takes to run it, and reading plain columns instead of ORM objects (a User per
# reviewer) more again. Intake is the hot path.
_cases, _slots, _items, _files, _chunks, _events = (
    table_of(model) for model in (Case, KeySlot, SealedItem, StoredFile, FileChunk, CaseEvent))
_users, _channels, _receives, _installation = (
    table_of(model) for model in (User, Channel, ChannelRecipient, Installation))
def _keys_statement(where: Any) -> Any:
    """A channel's id, the recovery key and the channel's active recipients, in one query:
    a row per recipient (its columns NULL when none is active; the recovery columns NULL when
    the installation is not set up), no row when no channel matches."""
    return (
        select(_channels.c.id.label("channel_id"), _installation.c.id.label("installation_id"),
               _installation.c.recovery_key_id, _installation.c.recovery_public_key,
               _installation.c.recovery_xwing_key_id, _installation.c.recovery_xwing_public_key,
               _users.c.id, _users.c.roles, _users.c.active, _users.c.key_id,
               _users.c.public_key, _users.c.xwing_key_id, _users.c.xwing_public_key)
        .select_from(
            _channels.outerjoin(_installation, _installation.c.id == 1)
            .outerjoin(_receives, _receives.c.channel_id == _channels.c.id)
            .outerjoin(_users, (_users.c.id == _receives.c.user_id)
                       & _users.c.active.is_(True)))
        .where(where)
        .order_by(_users.c.id))


_KEYS_OF_CHANNEL = _keys_statement(_channels.c.id == bindparam("channel"))
# Intake's: the open channel of a slug and its keys in one round trip.
_KEYS_OF_OPEN_CHANNEL = _keys_statement((_channels.c.slug == bindparam("slug"))
                                        & _channels.c.active.is_(True))
# Any id the envelope brings already stored.
_TAKEN = union_all(
    select(_cases.c.id).where((_cases.c.id == bindparam("case"))
                              | (_cases.c.lookup_hash == bindparam("lookup"))),
    select(_items.c.id).where(_items.c.id.in_(bindparam("items", expanding=True))),
    select(_files.c.id).where(_files.c.id.in_(bindparam("files", expanding=True))),
).limit(1)
_INSERT = {table.name: insert(table)
           for table in (_cases, _slots, _items, _files, _chunks, _events)}


def channel_keys(session: Session, channel: Channel | int, *, v2_only: bool) -> ChannelKeys:
    """The keys a new case of ``channel`` (or the channel of that id) is sealed to. With
    ``v2_only`` (the installation requires suite v2) a reviewer without an X-Wing key is left
    out, so every slot can be v2; the console names them (``classical_recipients``). The
    recovery key is never left out."""
    channel_id = channel if isinstance(channel, int) else channel.id
    rows = session.connection().execute(_KEYS_OF_CHANNEL, {"channel": channel_id}).all()
    return _keys_of(rows, v2_only=v2_only)


def open_channel_keys(session: Session, slug: str, *, v2_only: bool) -> ChannelKeys:
    """``channel_keys`` of the open channel called ``slug``: intake's one query for it."""
    rows: Sequence[Any] = ()
    if _slug_ok(slug):
        rows = session.connection().execute(_KEYS_OF_OPEN_CHANNEL, {"slug": slug}).all()
    return _keys_of(rows, v2_only=v2_only)


def _slug_ok(slug: object) -> bool:
    # Checked before the query: PostgreSQL refuses some strings (NUL) outright.
    return isinstance(slug, str) and SLUG.match(slug) is not None


def _keys_of(rows: Sequence[Any], *, v2_only: bool) -> ChannelKeys:
    if not rows:
        raise UnknownChannel()
    if rows[0].installation_id is None:
        raise NotSetUp()
    recipients = [recipient_of(row) for row in rows
                  if row.id is not None and sealed_to(row)
                  and not (v2_only and row.xwing_key_id is None)]
    recipients.append(recovery_recipient(rows[0]))
    # Over the ids of both kinds (PROTOCOL 17.5): withholding X-Wing keys changes it.
    fingerprint = crypto.keyset_fingerprint(
        bytes.fromhex(key_id) for r in recipients
        for key_id in (r.key_id, r.xwing_key_id) if key_id is not None)
    return ChannelKeys(int(rows[0].channel_id), tuple(recipients), fingerprint)


def recipient_info(recipient: Recipient) -> dict[str, Any]:
    """One recipient as clients see it; the X-Wing key only where it has one (v2 slot)."""
    info: dict[str, Any] = {"key_id": recipient.key_id,
                            "public_key": crypto.b64u_encode(recipient.public_key),
                            "holder": recipient.holder}
    if recipient.xwing_public_key is not None:
        info["xwing_key_id"] = recipient.xwing_key_id
        info["xwing_public_key"] = crypto.b64u_encode(recipient.xwing_public_key)
    return info


def fingerprint_words(session: Session, channel: Channel, *, v2_only: bool) -> str:
    """The key-set fingerprint as a reporter compares it: the intake page and posters."""
    return crypto.format_fingerprint(channel_keys(session, channel, v2_only=v2_only).fingerprint)


def find_channel(session: Session, slug: str) -> Channel:
    """The open channel called ``slug`` (intake reads its keys with open_channel_keys)."""
    channel = None
    if _slug_ok(slug):
        channel = session.scalars(select(Channel).where(
            Channel.slug == slug, Channel.active.is_(True))).first()
    if channel is None:
        raise UnknownChannel()
    return channel


# ---------------------------------------------------------------------------- submission


def create_submission(session: Session, settings: Settings, envelope: Envelope, *,
                      sealed_on_server: bool = False,
                      now: dt.datetime | None = None) -> tuple[Case, str]:
    """Store a sealed case as a draft; returns it and the upload token (shown once).

    The hot path of every report: its reads and writes are Core statements on the session's
    connection, one per table, and the returned case joins the session without a flush."""
    now = now or utcnow()
    keys = open_channel_keys(session, envelope.channel, v2_only=settings.require_v2)
    channel_id = keys.channel_id
    holders = slot_holders(keys, envelope.slots)
    classical_only = any(slot.suite == crypto.SUITE for slot in envelope.slots)
    if classical_only and settings.require_v2:
        # After the stamp is spent (api.create_submission), as keys_changed is. A listed
        # holder without an X-Wing key can only be the recovery key (reviewers without one
        # are left out): no client could do better, so the reporter is not sent elsewhere.
        if any(holder is not None and holder.xwing_key_id is None for holder in holders):
            raise V2NotReady()
        raise V2Required()
    write = session.connection().execute
    taken = write(_TAKEN, {"case": envelope.case_id, "lookup": envelope.lookup_hash,
                           "items": [item.id for item in envelope.items],
                           "files": [f.id for f in envelope.files]})
    if taken.first() is not None:
        # Random 128-bit ids do not collide by chance: this is a replayed envelope.
        raise InvalidInput(N_("This report was already submitted."), code="duplicate_submission")
    stamp = coarse_time(settings, now)  # one timestamp for every object of the submission
    token = secrets.token_urlsafe(32)
    # Complete on arrival (no files, or all inline): stored ready, no draft, no second write.
    complete = all(spec.chunks is not None for spec in envelope.files)
    values = dict(
        id=envelope.case_id, channel_id=channel_id, created_at=stamp, updated_at=stamp,
        status="new", sealed_on_server=sealed_on_server, classical_only=classical_only,
        lookup_hash=envelope.lookup_hash,
        version=1, ready=complete, upload_token_hash=None if complete else tokens.digest(token),
        draft_expires_at=None if complete else coarse_deadline(
            settings, now + dt.timedelta(hours=settings.draft_hours)),
        accept_due_at=stamp + dt.timedelta(days=settings.accept_days) if complete else None,
    )
    write(_INSERT["cases"], [values])
    # In the session as if loaded (the columns left to their defaults load when first read):
    # later changes to it (finish, tests) are flushed as usual.
    case = Case(**values)
    make_transient_to_detached(case)
    session.add(case)
    write(_INSERT["key_slots"], [
        {"case_id": case.id, "purpose": "case", "key_id": slot.key_id, "suite": slot.suite,
         "slot": slot.slot, "created_at": stamp,
         "holder": holder.holder if holder else "reporter",
         "user_id": holder.user_id if holder else None}
        for slot, holder in zip(envelope.slots, holders, strict=True)])
    write(_INSERT["sealed_items"], [
        {"id": item.id, "case_id": case.id, "kind": item.kind, "author": "reporter",
         "blob": item.blob, "created_at": stamp, "position": position}
        for position, item in enumerate(with_identity(envelope.items), start=1)])
    if envelope.files:
        expires = coarse_deadline(settings, now + dt.timedelta(hours=settings.draft_hours))
        write(_INSERT["files"], [
            {"id": spec.id, "case_id": case.id, "meta_item_id": spec.meta_item_id,
             "stored_size": spec.stored_size, "chunk_count": spec.chunk_count,
             "complete": spec.chunks is not None, "author": "reporter", "created_at": stamp,
             "upload_expires_at": None if spec.chunks is not None else expires}
            for spec in envelope.files])
        chunks = [{"file_id": spec.id, "index": index, "data": chunk}
                  for spec in envelope.files for index, chunk in enumerate(spec.chunks or ())]
        if chunks:
            write(_INSERT["file_chunks"], chunks)
    if complete:
        write(_INSERT["case_events"], [{
            "case_id": case.id, "kind": "received", "visible_to_reporter": True, "data": {},
            "created_at": stamp}])
        notify.new_case(session, settings, case, stamp,
                        readers=[h.user_id for h in holders if h and h.holder == "reviewer"])
    return case, token


def holders_of(recipients: Iterable[Recipient],
               slots: Iterable[SlotSpec]) -> list[Recipient | None]:
    """Each slot's recipient by either of its key ids (None: no recipient's). Case-key and
    claim-key slots alike (PROTOCOL 15, 17.7)."""
    by_key = {key_id: r for r in recipients
              for key_id in (r.key_id, r.xwing_key_id) if key_id is not None}
    holders: list[Recipient | None] = []
    for slot in slots:
        recipient = by_key.get(slot.key_id)
        # A v2 slot under a holder's X25519 key id (or v1 under its X-Wing id) opens for
        # no one: refused rather than stored as a case its reviewer cannot read.
        if recipient is not None and recipient.suite_of(slot.key_id) != slot.suite:
            raise Malformed("slot suite")
        holders.append(recipient)
    return holders


def serves_each_once(recipients: Iterable[Recipient], holders: list[Recipient | None]) -> bool:
    """Whether every recipient holds exactly one of the slots, by either of its key ids."""
    served = [r.key_id for r in holders if r is not None]
    return sorted(served) == sorted(r.key_id for r in recipients)


def slot_holders(keys: ChannelKeys, slots: tuple[SlotSpec, ...]) -> list[Recipient | None]:
    """Each slot's recipient (None: the reporter's); KeysChanged unless every recipient has
    exactly one slot, by either of its keys, and one slot is left for the reporter."""
    holders = holders_of(keys.recipients, slots)
    if (not serves_each_once(keys.recipients, holders)
            or sum(holder is None for holder in holders) != 1):
        raise KeysChanged()
    return holders


def open_submission(session: Session, case_id: str, token: str | None,
                    now: dt.datetime | None = None) -> Case:
    """The draft named by case id and upload token, or SubmissionNotFound."""
    now = now or utcnow()
    if not token or not isinstance(case_id, str) or not ID.match(case_id):
        raise SubmissionNotFound()
    case = session.get(Case, case_id)
    if (case is None or case.ready or case.upload_token_hash is None
            or not hmac.compare_digest(case.upload_token_hash, tokens.digest(token))
            or case.draft_expires_at is None or case.draft_expires_at <= now):
        raise SubmissionNotFound()
    return case


def store_chunk(session: Session, file: StoredFile, index: int, data: bytes) -> None:
    """Store one encrypted chunk; sending the same index again replaces it (resume)."""
    if file.complete:
        raise Conflict(N_("This file is complete already."), code="file_complete")
    if not 0 <= index < file.chunk_count:
        raise Malformed("chunk index")
    if len(data) != expected_chunk_length(file.stored_size, file.chunk_count, index):
        raise Malformed("chunk length")
    existing = session.get(FileChunk, (file.id, index))
    if existing is None:
        session.add(FileChunk(file_id=file.id, index=index, data=data))
    else:
        existing.data = data
    session.flush()


def store_batch(session: Session, file: StoredFile, first: int, count: int,
                data: bytes) -> None:
    """Store chunks ``first … first + count − 1``, sent back to back; whole or not at all.

    Their lengths follow from the file's layout, so the body needs no framing of its own: a
    length that is not exactly theirs refuses the whole batch. Sending stored indexes again
    replaces them (resume)."""
    if file.complete:
        raise Conflict(N_("This file is complete already."), code="file_complete")
    if not 1 <= count <= BATCH_CHUNKS:
        raise InvalidInput(N_("Send between 1 and {limit} chunks at a time. Nothing of this "
                              "request was stored."), limit=BATCH_CHUNKS)
    if not 0 <= first < file.chunk_count or first + count > file.chunk_count:
        raise InvalidInput(N_("These chunks go past the end of the file, which has {count} "
                              "chunks. Nothing of this request was stored."),
                           count=file.chunk_count)
    last = first + count - 1
    expected = STORED_CHUNK * (count - 1) + expected_chunk_length(
        file.stored_size, file.chunk_count, last)
    if len(data) != expected:
        raise InvalidInput(N_("The chunks {first} to {last} of this file must be {expected} "
                              "bytes together, not {received}. Nothing of this request was "
                              "stored."),
                           first=first, last=last, expected=expected, received=len(data))
    view = memoryview(data)
    session.execute(delete(FileChunk).where(FileChunk.file_id == file.id,
                                            FileChunk.index.between(first, last)))
    session.execute(insert(FileChunk), [
        {"file_id": file.id, "index": first + n,
         "data": bytes(view[n * STORED_CHUNK:min((n + 1) * STORED_CHUNK, expected)])}
        for n in range(count)])


def find_file(session: Session, case: Case, file_id: str) -> StoredFile:
    if not isinstance(file_id, str) or not ID.match(file_id):
        raise NotFound()
    file = session.get(StoredFile, file_id)
    if file is None or file.case_id != case.id:
        raise NotFound()
    return file


def received_chunks(session: Session, file: StoredFile) -> list[int]:
    return list(session.scalars(
        select(FileChunk.index).where(FileChunk.file_id == file.id).order_by(FileChunk.index)))


def complete_file(session: Session, file: StoredFile) -> None:
    have = session.scalar(select(func.count()).select_from(FileChunk)
                          .where(FileChunk.file_id == file.id))
    if have != file.chunk_count:
        raise UploadIncomplete()
    file.complete = True
    file.upload_expires_at = None


def finish_submission(session: Session, settings: Settings, case: Case) -> None:
    """All files present: the case becomes visible, atomically, and the token dies."""
    for file in session.scalars(select(StoredFile).where(StoredFile.case_id == case.id,
                                                         StoredFile.complete.is_(False))):
        complete_file(session, file)
    _make_ready(session, case, settings)


def _make_ready(session: Session, case: Case, settings: Settings) -> None:
    case.ready = True
    case.accept_due_at = case.created_at + dt.timedelta(days=settings.accept_days)
    case.upload_token_hash = None
    case.draft_expires_at = None
    session.add(CaseEvent(case_id=case.id, kind="received", visible_to_reporter=True, data={},
                          created_at=case.created_at))
    session.flush()
    notify.new_case(session, settings, case, coarse_time(settings))


def discard_case_data(session: Session, case_id: str) -> None:
    file_ids = select(StoredFile.id).where(StoredFile.case_id == case_id)
    session.execute(delete(FileChunk).where(FileChunk.file_id.in_(file_ids)))
    session.execute(delete(StoredFile).where(StoredFile.case_id == case_id))
    session.execute(delete(SealedItem).where(SealedItem.case_id == case_id))
    session.execute(delete(KeySlot).where(KeySlot.case_id == case_id))
    session.execute(delete(CaseEvent).where(CaseEvent.case_id == case_id))
    session.execute(delete(Case).where(Case.id == case_id))


def discard_file(session: Session, file: StoredFile) -> None:
    session.execute(delete(FileChunk).where(FileChunk.file_id == file.id))
    session.execute(delete(SealedItem).where(SealedItem.id == file.meta_item_id))
    session.delete(file)
    session.flush()


def purge_expired(session: Session, now: dt.datetime | None = None) -> int:
    """Drop drafts and follow-up uploads that were never finished: discarded whole."""
    now = now or utcnow()
    count = 0
    for case_id in list(session.scalars(select(Case.id).where(
            Case.ready.is_(False), Case.draft_expires_at <= now))):
        discard_case_data(session, case_id)
        count += 1
    for file in list(session.scalars(select(StoredFile).where(
            StoredFile.complete.is_(False), StoredFile.upload_expires_at <= now))):
        discard_file(session, file)
        count += 1
    return count


def list_open_channels(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).where(Channel.active.is_(True))
                                .order_by(Channel.kind, Channel.id)))


def files_of(session: Session, case: Case) -> list[StoredFile]:
    return list(session.scalars(select(StoredFile).where(StoredFile.case_id == case.id)
                                .order_by(StoredFile.id)))


def read_chunk(session: Session, file: StoredFile, index: int) -> bytes:
    chunk = session.get(FileChunk, (file.id, index))
    if chunk is None:
        raise NotFound()
    return chunk.data


def register_file(session: Session, settings: Settings, case: Case, data: Any, *,
                  author: str, created_at: dt.datetime, user_id: int | None = None,
                  now: dt.datetime | None = None) -> StoredFile:
    """A file added to an existing case (reporter's follow-up, reviewer's evidence): its sealed
    description and its size, checked like intake's; chunks follow, it stays hidden until
    complete, and is dropped whole if never finished."""
    if not isinstance(data, dict) or not isinstance(data.get("file"), dict) \
            or not isinstance(data.get("meta"), dict):
        raise Malformed("file")
    raw_file, raw_meta = data["file"], data["meta"]
    meta_id = parse_id(raw_meta.get("id"), "file meta")
    blob = parse_b64(raw_meta.get("blob"), "item")
    check_item_blob(blob)
    file_id = parse_id(raw_file.get("id"), "file id")
    if raw_file.get("meta_item_id") != meta_id or file_id == meta_id:
        raise Malformed("file meta")
    stored = parse_int(raw_file.get("stored_size"), "file size", 2**40)
    count = parse_int(raw_file.get("chunk_count"), "chunks", 2**32)
    if stored - 16 * count > crypto.padme(settings.max_file_bytes + 1):
        raise TooLarge(N_("A file is larger than the limit of {mb} MB."),
                       mb=settings.max_file_bytes // (1024 * 1024))
    if not file_layout_ok(stored, count, settings.max_file_bytes):
        raise Malformed("file size")
    if session.get(SealedItem, meta_id) is not None or session.get(StoredFile, file_id) \
            is not None:
        raise InvalidInput(N_("This message was already sent."), code="duplicate_item")
    now = now or utcnow()
    session.add(SealedItem(id=meta_id, case_id=case.id, kind="file-meta", author=author,
                           user_id=user_id, blob=blob, created_at=created_at))
    session.flush()
    file = StoredFile(id=file_id, case_id=case.id, meta_item_id=meta_id, stored_size=stored,
                      chunk_count=count, complete=False, author=author, created_at=created_at,
                      upload_expires_at=coarse_deadline(
                          settings, now + dt.timedelta(hours=settings.draft_hours)))
    session.add(file)
    session.flush()
    return file
