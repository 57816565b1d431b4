"""The no-JavaScript path: the server seals at once, with the same code, and forgets.

The plaintext lives only in this request's memory: photos whole (to be cleaned), other files
a piece at a time from a spool sealed under a key only the request holds
(service/platform/spool.py, read in by service/web/upload.py); the case is marked "sealed on
server" so reviewers know the weaker guarantee applied. For a returning reporter without
JavaScript the server derives the receipt keys for that one request, and hands the browser a
short-lived capability (the case key sealed under a server-held key) so a reply can be sealed
without asking for the receipt again.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

import crypto
from service.domain import filetypes, followup, intake, reportform, sealing
from service.domain.installation import get_installation
from service.domain.metadata import MetadataError, StripResult, TooManyParts, strip_metadata
from service.domain.models import Case, StoredFile, utcnow
from service.platform import offload
from service.platform.errors import ChuishaoError, InvalidInput, NotFound, NotSetUp
from service.platform.i18n import N_
from service.platform.settings import Settings


def _installation(session: Session) -> Any:
    installation = get_installation(session)
    if installation is None:
        raise NotSetUp()
    return installation


def channel_info(session: Session, slug: str, *, v2_only: bool) -> dict[str, Any]:
    channel = intake.find_channel(session, slug)
    keys = intake.channel_keys(session, channel, v2_only=v2_only)
    return {"id": channel.slug,
            "recipients": [intake.recipient_info(r) for r in keys.recipients]}


def seal_on_server(session: Session, settings: Settings, channel_slug: str,
                   report: dict[str, Any], identity: dict[str, Any] | None,
                   files: list[sealing.PlainFile], receipt: str | None = None) -> str:
    """Seal and store a whole case in this transaction; returns the receipt (``receipt``,
    whose keys were derived before the gate, or a new one)."""
    installation = _installation(session)
    info = channel_info(session, channel_slug, v2_only=settings.require_v2)
    sealed = sealing.seal_submission(info, installation.salt, settings.receipt_iterations,
                                     report, identity, files, receipt=receipt)
    envelope = intake.parse_envelope(sealed.envelope, settings)
    case, _token = intake.create_submission(session, settings, envelope, sealed_on_server=True)
    for spec in envelope.files:
        stored = session.get(StoredFile, spec.id)
        assert stored is not None
        store_sealed(session, stored, sealed.chunks[spec.id]())
    if envelope.files:
        intake.finish_submission(session, settings, case)
    return sealed.receipt


# ---------------------------------------------------------------------------- follow-up


@dataclass(frozen=True)
class OpenedItem:
    id: str
    kind: str
    author: str
    created: dt.datetime
    content: dict[str, Any]


@dataclass(frozen=True)
class OpenedCase:
    case: Case
    case_key: bytes
    items: list[OpenedItem]
    files: list[tuple[StoredFile, dict[str, Any]]]


def case_of_receipt(session: Session, settings: Settings,
                    receipt_text: str) -> tuple[Case, crypto.ReceiptKeys]:
    """The case a typed receipt opens, and the receipt's keys (the follow-up page and the
    claim without JavaScript)."""
    # Checked before anything is looked up: a mistyped receipt costs no derivation or query.
    try:
        receipt = crypto.normalize_receipt(receipt_text)
    except crypto.ReceiptMistyped:
        raise InvalidInput(followup.RECEIPT_MISTYPED, code="receipt_mistyped") from None
    except ValueError:
        raise InvalidInput(followup.RECEIPT_FORMAT, code="receipt_format") from None
    installation = _installation(session)
    # Derived off the event loop before the request took its database gate (see
    # views.public.prepare_receipt); computed here only outside a request.
    keys = offload.prepared(crypto.derive_receipt, receipt, installation.salt,
                            settings.receipt_iterations)
    return followup.find_case_by_secret(session, keys.lookup_secret), keys


def open_with_receipt(session: Session, settings: Settings, receipt_text: str) -> OpenedCase:
    case, keys = case_of_receipt(session, settings, receipt_text)
    slot = followup.reporter_slot(session, case)
    try:
        if slot is None:
            raise crypto.OpenError()
        private = keys.xwing_seed if slot.suite == crypto.SUITE_V2 else keys.private
        case_key = crypto.open_slot(slot.suite, slot.slot, private, bytes.fromhex(case.id))
    except crypto.OpenError:
        raise followup.ReceiptUnknown() from None
    return open_case(session, settings, case, case_key)


def open_case(session: Session, settings: Settings, case: Case, case_key: bytes) -> OpenedCase:
    case_id = bytes.fromhex(case.id)
    items = []
    metas: dict[str, dict[str, Any]] = {}
    for item in followup.visible_items(session, case, settings):
        try:
            content = crypto.open_item(case_key, case_id, bytes.fromhex(item.id), item.kind,
                                       item.blob)
        except crypto.OpenError:
            content = {"unreadable": True}
        if item.kind == "file-meta":
            metas[item.id] = content
        items.append(OpenedItem(item.id, item.kind, item.author,
                                intake.coarse_time(settings, item.created_at), content))
    files = [(f, metas.get(f.meta_item_id, {})) for f in intake.files_of(session, case)
             if f.complete and f.author == "reporter"]
    return OpenedCase(case, case_key, items, files)


class CapabilityInvalid(ChuishaoError):
    status = 401
    code = "followup_expired"
    message = N_("Your follow-up session has ended. Enter your receipt again.")


def _capability_key(secret_key: str) -> bytes:
    return crypto.token_key(secret_key.encode(), "no-js-followup-capability")


def issue_capability(secret_key: str, case_id: str, case_key: bytes, minutes: int,
                     now: dt.datetime | None = None) -> str:
    """The case key, sealed under a key only the server holds, valid for ``minutes``."""
    now = now or utcnow()
    expires = int(now.timestamp()) + minutes * 60
    body = struct.pack(">Q", expires) + case_key
    return crypto.seal_token(_capability_key(secret_key), case_id.encode(), body)


def open_capability(secret_key: str, case_id: str, token: str,
                    now: dt.datetime | None = None) -> bytes:
    now = now or utcnow()
    try:
        body = crypto.open_token(_capability_key(secret_key), case_id.encode(), token)
    except crypto.OpenError:
        raise CapabilityInvalid() from None
    if len(body) != 40 or struct.unpack(">Q", body[:8])[0] < now.timestamp():
        raise CapabilityInvalid()
    return body[8:]


@dataclass(frozen=True)
class Upload:
    """One file of a no-JavaScript post as it arrived (service/web/upload.py): its first bytes
    (which judge its type), its size, and its content, whole in memory where it must be
    cleaned (``data``, a picture) or streamed back from a sealed spool (``read``)."""

    name: str
    head: bytes
    size: int
    data: bytes | None
    read: Callable[[], Iterable[bytes]]


def check_file_size(settings: Settings, size: int) -> None:
    if size > settings.max_file_bytes:
        raise InvalidInput(N_("A file is larger than the limit of {mb} MB."), status=413,
                           mb=settings.max_file_bytes // (1024 * 1024))


def strip_or_refuse(data: bytes, name: str, content_type: str,
                    settings: Settings) -> StripResult:
    """A no-JavaScript picture, size-checked first, then stripped of its metadata; a file that
    cannot be cleaned safely is refused with a message naming it (nothing is sent)."""
    check_file_size(settings, len(data))
    try:
        return strip_metadata(data, name, content_type)
    except TooManyParts:
        raise InvalidInput(N_("The picture “{name}” is built in an unusual way (far too many "
                              "parts), so its hidden data could not be removed safely. Nothing "
                              "was sent. Save it again with a photo app, or send a screenshot "
                              "of it."), code="file_too_complex", name=name) from None
    except MetadataError:
        raise InvalidInput(N_("The picture “{name}” is damaged, so its hidden data could "
                              "not be removed. Nothing was sent."), name=name) from None


@dataclass(frozen=True)
class CleanedUpload:
    """One file of a no-JavaScript post: cleaned where it can be, under the name it is sent as."""

    original: str
    name: str
    type: str
    size: int
    read: Callable[[], Iterable[bytes]]
    removed: tuple[str, ...]
    cleaned: bool


def clean_uploads(uploads: list[Upload], *, first_number: int, keep_names: bool,
                  unclean: str, translate: Callable[..., str], settings: Settings,
                  ) -> tuple[list[CleanedUpload], list[str]]:
    """The files to seal, and the original names of those left out at the reporter's choice.

    Every type is judged by its bytes first, so a file that cannot be cleaned is named to the
    reporter (and nothing is sealed) unless they chose to send or to leave out such files.
    Only pictures are read here (held whole); the rest is streamed when it is sealed.
    """
    kinds = [filetypes.detect(upload.head, upload.name) for upload in uploads]
    unclean_kinds = [(upload.name, kind) for upload, kind in zip(uploads, kinds, strict=True)
                     if not kind.cleanable]
    if unclean_kinds and not unclean:
        refused = reportform.UncleanNotChosen(names=", ".join(name for name, _ in unclean_kinds))
        refused.reasons = tuple(dict.fromkeys(
            filetypes.UNCLEAN_REASONS[kind.reason_key] for _, kind in unclean_kinds
            if kind.reason_key))
        raise refused
    cleaned: list[CleanedUpload] = []
    left_out: list[str] = []
    number = first_number
    for upload, kind in zip(uploads, kinds, strict=True):
        if not kind.cleanable and unclean == reportform.UNCLEAN_DROP:
            left_out.append(upload.name)
            continue
        final = upload.name if keep_names else filetypes.neutral_name(kind, number, translate)
        number += 1
        if kind.cleanable:
            # The reader holds every picture whole (it judges types by the same rule).
            assert upload.data is not None
            result = strip_or_refuse(upload.data, upload.name, kind.mime, settings)
            cleaned.append(CleanedUpload(upload.name, final[:200], kind.mime, len(result.data),
                                         functools.partial(list, [result.data]),
                                         tuple(result.removed), result.cleaned))
        else:
            check_file_size(settings, upload.size)
            cleaned.append(CleanedUpload(upload.name, final[:200], kind.mime, upload.size,
                                         upload.read, (), False))
    return cleaned, left_out


def store_sealed(session: Session, file: StoredFile, chunks: Iterable[bytes]) -> None:
    """A file's sealed chunks, stored in batches as they are sealed: memory holds one batch."""
    batch: list[bytes] = []
    first = 0
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) == intake.BATCH_CHUNKS:
            intake.store_batch(session, file, first, len(batch), b"".join(batch))
            first += len(batch)
            batch.clear()
    if batch:
        intake.store_batch(session, file, first, len(batch), b"".join(batch))


def add_file_on_server(session: Session, settings: Settings, opened: OpenedCase,
                       upload: CleanedUpload) -> StoredFile:
    """Evidence added from the no-JavaScript follow-up page, already cleaned: sealed, stored.

    Runs in a worker thread (service.platform.offload): the sealing is CPU work."""
    # The case's file quota before anything else.
    followup.check_file_room(session, settings, opened.case)
    file_id, meta_id = crypto.new_id(), crypto.new_id()
    file_key, prefix = crypto.new_key(), crypto.new_key()[:7]
    case_id = bytes.fromhex(opened.case.id)
    meta = {"name": upload.name, "type": upload.type,
            "size": upload.size, "key": crypto.b64u_encode(file_key),
            "prefix": crypto.b64u_encode(prefix), "removed": list(upload.removed),
            "cleaned": upload.cleaned}
    stored_size, count = sealing.stored_layout(upload.size)
    blob = crypto.seal_item(opened.case_key, case_id, meta_id, "file-meta", meta)
    file = followup.add_file(session, settings, opened.case, {
        "file": {"id": file_id.hex(), "meta_item_id": meta_id.hex(), "stored_size": stored_size,
                 "chunk_count": count},
        "meta": {"id": meta_id.hex(), "blob": crypto.b64u_encode(blob)},
    })
    store_sealed(session, file, crypto.seal_file(file_key, prefix, case_id, file_id,
                                                 upload.read(), upload.size))
    intake.complete_file(session, file)
    # As the JavaScript path's finish does: the case's reviewers hear of new evidence.
    followup.note_reporter_activity(session, settings, opened.case)
    return file


def decrypt_file(session: Session, opened: OpenedCase, stored: StoredFile,
                 meta: dict[str, Any]) -> Iterator[bytes]:
    """Plaintext of a stored file, chunk by chunk (for the no-JavaScript download)."""
    try:
        file_key = crypto.b64u_decode(str(meta["key"]))
        prefix = crypto.b64u_decode(str(meta["prefix"]))
        size = int(meta["size"])
    except (KeyError, ValueError, TypeError):
        raise NotFound() from None
    chunks = (intake.read_chunk(session, stored, index) for index in range(stored.chunk_count))
    return crypto.open_file(file_key, prefix, bytes.fromhex(opened.case.id),
                            bytes.fromhex(stored.id), chunks, size)


def attachment_header(meta: dict[str, Any]) -> str:
    name = str(meta.get("name") or "file")
    ascii_name = "".join(ch if ch.isascii() and ch.isalnum() or ch in "._-" else "_"
                         for ch in name) or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
