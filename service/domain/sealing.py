"""Building a sealed submission from plaintext: the reporter's side of intake, in Python.

Used by the no-JavaScript form (sealed on the server at once) and by ``chuishao submit``
(sealed on the operator's machine). The browser does the same in service/static/js/intake.js.
Nothing here touches the database: it turns plaintext into the envelope of docs/API.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import crypto
from service.platform import offload

STORED_TAG = 16


@dataclass(frozen=True)
class PlainFile:
    name: str
    type: str
    size: int
    # Called once to read the content; may stream from disk or memory.
    read: Callable[[], Iterable[bytes]]
    removed: tuple[str, ...] = ()
    cleaned: bool = False


@dataclass
class SealedSubmission:
    envelope: dict[str, Any]
    receipt: str
    case_key: bytes
    reporter_public: bytes
    # file id (hex) -> generator of the stored chunks, in order
    chunks: dict[str, Callable[[], Iterator[bytes]]] = field(default_factory=dict)


def stored_layout(size: int) -> tuple[int, int]:
    """(stored size, chunk count) of a file of ``size`` bytes under protocol v1."""
    padded = crypto.padme(size + 1)
    count = math.ceil(padded / crypto.CHUNK_SIZE)
    return padded + STORED_TAG * count, count


def seal_submission(channel: dict[str, Any], salt: bytes, iterations: int,
                    report: dict[str, Any], identity: dict[str, Any] | None,
                    files: list[PlainFile], *, receipt: str | None = None,
                    inline_limit: int = 0, hybrid: bool = True,
                    reporter_v2: bool = True) -> SealedSubmission:
    """Seal a report to every recipient of ``channel`` (as listed by GET /api/v1/channels).

    With ``hybrid`` (always, but for tests of older clients) the slots of recipients with an
    X-Wing key are v2, and so is the reporter's (to the receipt's X-Wing key) unless
    ``reporter_v2`` is false; the case is classical-only while any slot is not. A browser
    without the hybrid follows up through the server (PROTOCOL 17.7).

    When the files' stored size is at most ``inline_limit`` in total, their chunks travel in
    the envelope itself and the submission completes in one request.
    """
    receipt = receipt or crypto.new_receipt()
    # On the server, derived before the database gate (views.public.prepare_new_receipt).
    keys = offload.prepared(crypto.derive_receipt, receipt, salt, iterations)
    case_id = crypto.new_id()
    case_key = crypto.new_key()
    slots = []
    for recipient in channel["recipients"]:
        suite, public = recipient_key(recipient, hybrid)
        slots.append(_slot(suite, case_key, public, case_id))
    if hybrid and reporter_v2:
        slots.append(_slot(crypto.SUITE_V2, case_key, keys.xwing_public, case_id))
    else:
        slots.append(_slot(crypto.SUITE, case_key, keys.public, case_id))
    items = [_item(case_key, case_id, "report", report)]
    if identity:
        items.append(_item(case_key, case_id, "identity", identity))
    sealed = SealedSubmission({}, receipt, case_key, keys.public)
    file_specs: list[dict[str, Any]] = []
    for plain in files:
        file_id, meta_id = crypto.new_id(), crypto.new_id()
        file_key, prefix = crypto.new_key(), crypto.new_key()[:7]
        meta = {"name": plain.name, "type": plain.type, "size": plain.size,
                "key": crypto.b64u_encode(file_key), "prefix": crypto.b64u_encode(prefix),
                "removed": list(plain.removed), "cleaned": plain.cleaned}
        items.append({"id": meta_id.hex(), "kind": "file-meta",
                      "blob": crypto.b64u_encode(
                          crypto.seal_item(case_key, case_id, meta_id, "file-meta", meta))})
        stored_size, count = stored_layout(plain.size)
        file_specs.append({"id": file_id.hex(), "meta_item_id": meta_id.hex(),
                           "stored_size": stored_size, "chunk_count": count})
        sealed.chunks[file_id.hex()] = _chunker(file_key, prefix, case_id, file_id, plain)
    if file_specs and sum(spec["stored_size"] for spec in file_specs) <= inline_limit:
        for spec in file_specs:
            spec["chunks"] = [crypto.b64u_encode(chunk) for chunk in sealed.chunks[spec["id"]]()]
    sealed.envelope = {
        "channel": channel["id"], "case_id": case_id.hex(),
        "lookup_hash": keys.lookup_hash.hex(), "slots": slots, "items": items,
        "files": file_specs,
    }
    return sealed


def recipient_key(recipient: Mapping[str, Any], hybrid: bool = True) -> tuple[str, bytes]:
    """The sealing policy (PROTOCOL 17.7), for case keys and claim keys alike: the suite and
    public key a slot for ``recipient`` (as intake.recipient_info lists it) is sealed with:
    v2 where it has an X-Wing key (and the sealer the hybrid), v1 otherwise."""
    v2 = hybrid and "xwing_public_key" in recipient
    public = crypto.b64u_decode(recipient["xwing_public_key" if v2 else "public_key"])
    if crypto.key_id(public).hex() != recipient["xwing_key_id" if v2 else "key_id"]:
        raise ValueError("a recipient's key id does not match its public key")
    return (crypto.SUITE_V2 if v2 else crypto.SUITE), public


def _slot(suite: str, case_key: bytes, public: bytes, case_id: bytes) -> dict[str, str]:
    return {"purpose": "case", "suite": suite, "key_id": crypto.key_id(public).hex(),
            "slot": crypto.b64u_encode(crypto.seal_slot(suite, case_key, public, case_id))}


def _item(case_key: bytes, case_id: bytes, kind: str, obj: dict[str, Any]) -> dict[str, str]:
    item_id = crypto.new_id()
    return {"id": item_id.hex(), "kind": kind,
            "blob": crypto.b64u_encode(crypto.seal_item(case_key, case_id, item_id, kind, obj))}


def _chunker(file_key: bytes, prefix: bytes, case_id: bytes, file_id: bytes,
             plain: PlainFile) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        return crypto.seal_file(file_key, prefix, case_id, file_id, plain.read(), plain.size)

    return chunks


def seal_item_for_case(case_key: bytes, case_id: str, kind: str,
                       obj: dict[str, Any]) -> dict[str, str]:
    """One more item (a reply, say) for an existing case."""
    return _item(case_key, bytes.fromhex(case_id), kind, obj)
