"""Remove identifying metadata from photos before they are sealed.

The same rules run in the reporter's browser (static/js/strip.js); this module is the
no-JavaScript path and the reference: both must produce the same bytes for the same input.

JPEG: the segment structure is walked and every APPn/COM segment that can carry identifying
data (EXIF with GPS and camera serials, XMP, IPTC/Photoshop, MPF indexes of embedded images,
vendor blocks) is dropped. APP0 JFIF (without its thumbnail), APP2 ICC_PROFILE and APP14 Adobe
stay because decoders need them for correct colour. Entropy-coded data is copied unchanged.
Anything after the end-of-image marker (phones append extra images and vendor trailers there)
is dropped. The EXIF orientation alone survives, in a minimal EXIF segment, so photos taken
upright on a phone do not reach reviewers sideways.

PNG: the signature and every chunk CRC are verified; text, eXIf, tIME and C2PA chunks are
dropped, everything else is kept.

Other formats are returned unchanged and reported as not cleaned. Pure Python: no image
library parses attacker-supplied data here.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from service.platform.i18n import LIST_SEPARATOR, N_

JPEG_SOI = b"\xff\xd8"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LABEL_EXIF = N_("EXIF (incl. GPS)")
LABEL_XMP = N_("XMP")
LABEL_IPTC = N_("IPTC/Photoshop")
LABEL_COMMENT = N_("comment")
LABEL_JFIF_THUMBNAIL = N_("JFIF thumbnail")
LABEL_MPF = N_("MPF (embedded images)")
LABEL_TRAILER = N_("data after the image")
LABEL_PNG_TEXT = N_("PNG text")
LABEL_PNG_EXIF = N_("PNG eXIf")
LABEL_PNG_TIME = N_("PNG time")
LABEL_C2PA = N_("C2PA content credentials")
LABEL_OTHER = N_("other metadata")
# Every label ``removed`` can hold, so a caller can translate them all.
LABELS = (
    LABEL_EXIF, LABEL_XMP, LABEL_IPTC, LABEL_COMMENT, LABEL_JFIF_THUMBNAIL, LABEL_MPF,
    LABEL_C2PA, LABEL_OTHER, LABEL_TRAILER, LABEL_PNG_TEXT, LABEL_PNG_EXIF, LABEL_PNG_TIME,
)

# What each label means to a reporter, for the receipt (both paths): plain words, not formats.
PLAIN_WORDS = {
    LABEL_EXIF: N_("where it was taken (GPS), the camera model, when it was taken"),
    LABEL_PNG_EXIF: N_("where it was taken (GPS), the camera model, when it was taken"),
    LABEL_XMP: N_("editing records"),
    LABEL_IPTC: N_("author and caption notes"),
    LABEL_COMMENT: N_("comments"),
    LABEL_JFIF_THUMBNAIL: N_("a small preview copy"),
    LABEL_MPF: N_("extra embedded pictures"),
    LABEL_TRAILER: N_("data hidden after the picture"),
    LABEL_PNG_TEXT: N_("text notes"),
    LABEL_PNG_TIME: N_("when it was last changed"),
    LABEL_C2PA: N_("content credentials (which device or app made it)"),
    LABEL_OTHER: N_("other hidden data"),
}


def plain_removed(labels: list[str] | tuple[str, ...], translate: Callable[..., str]) -> str:
    """What was removed from one picture, in plain words, joined the language's way."""
    words = dict.fromkeys(translate(PLAIN_WORDS.get(label, LABEL_OTHER)) for label in labels)
    return translate(LIST_SEPARATOR).join(words)


_PNG_DROP = {
    b"tEXt": LABEL_PNG_TEXT,
    b"zTXt": LABEL_PNG_TEXT,
    b"iTXt": LABEL_PNG_TEXT,
    b"eXIf": LABEL_PNG_EXIF,
    b"tIME": LABEL_PNG_TIME,
    b"caBX": LABEL_C2PA,
}


class MetadataError(ValueError):
    """The file claims to be a JPEG or PNG but its structure is broken."""


class TooManyParts(MetadataError):
    """The file has far more segments or chunks than any real picture of its size: refused
    rather than walked, so an odd file cannot keep a worker busy for seconds."""


# Parts (JPEG markers and restart/stuffing steps in the image data, PNG chunks) a file may
# have: a fixed allowance plus one per KiB. Real pictures stay far below; a file of 4-byte
# segments would need a quarter million per MiB.
PARTS_ALLOWANCE = 1024
BYTES_PER_PART = 1024
# The first 0xFF in image data that starts a marker (not a stuffed 0x00 nor a restart).
_MARKER_IN_SCAN = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])", re.DOTALL)


def _parts_budget(data: bytes) -> int:
    return PARTS_ALLOWANCE + len(data) // BYTES_PER_PART


@dataclass(frozen=True)
class StripResult:
    data: bytes
    kind: Literal["jpeg", "png", "other"]
    cleaned: bool
    removed: tuple[str, ...]


def strip_metadata(data: bytes, filename: str = "", content_type: str = "") -> StripResult:
    """Return ``data`` without identifying metadata.

    ``filename`` and ``content_type`` are accepted so callers can pass what they have, but the
    kind is decided by the bytes alone: a renamed file must not dodge cleaning.
    """
    del filename, content_type
    data = bytes(data)
    if data[:2] == JPEG_SOI:
        out, removed = _strip_jpeg(data)
        return StripResult(out, "jpeg", True, removed)
    # A file that starts like a PNG but is damaged is refused, not passed through as "other".
    if data[:4] == PNG_SIGNATURE[:4]:
        out, removed = _strip_png(data)
        return StripResult(out, "png", True, removed)
    return StripResult(data, "other", False, ())


class _Labels:
    """Removed-item labels in order of first appearance, without repeats."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, label: str) -> None:
        if label not in self.items:
            self.items.append(label)


# ---------------------------------------------------------------------------------------- JPEG


def _strip_jpeg(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    n = len(data)
    out = [JPEG_SOI]
    labels = _Labels()
    pos = 2
    seen_scan = False
    orientation_written = False
    budget = _parts_budget(data)
    while True:
        budget -= 1
        if budget < 0:
            raise TooManyParts("JPEG has too many segments")
        if pos >= n:
            raise MetadataError("JPEG ends before its end-of-image marker")
        if data[pos] != 0xFF:
            raise MetadataError("JPEG segment does not start with a marker")
        while pos < n and data[pos] == 0xFF:  # fill bytes may precede any marker
            pos += 1
        if pos >= n:
            raise MetadataError("JPEG ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            if not seen_scan:
                raise MetadataError("JPEG has no image data")
            out.append(b"\xff\xd9")
            if pos < n:
                labels.add(LABEL_TRAILER)
            break
        if marker == 0x01:  # TEM: no length, no payload
            out.append(b"\xff\x01")
            continue
        if marker == 0x00 or marker == 0xD8 or 0xD0 <= marker <= 0xD7:
            raise MetadataError("unexpected JPEG marker")
        if pos + 2 > n:
            raise MetadataError("JPEG ends inside a segment length")
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2 or pos + length > n:
            raise MetadataError("JPEG segment length is invalid")
        payload = data[pos + 2 : pos + length]
        end = pos + length
        if marker == 0xDA:  # SOS: header, then entropy-coded data up to the next marker
            scan_end = _entropy_end(data, end)
            out.append(data[pos - 2 : scan_end])
            seen_scan = True
            pos = scan_end
            continue
        keep, label, replacement = _judge_segment(marker, payload)
        if label:
            labels.add(label)
        if replacement is not None:
            out.append(_segment(marker, replacement))
        elif keep:
            out.append(b"\xff" + bytes([marker]) + data[pos:end])
        if label == LABEL_EXIF and not orientation_written:
            orientation_written = True
            orientation = _exif_orientation(payload)
            if orientation is not None:
                out.append(_segment(0xE1, _minimal_exif(orientation)))
        pos = end
    return b"".join(out), tuple(labels.items)


def _entropy_end(data: bytes, pos: int) -> int:
    """Index of the 0xFF that starts the first marker after entropy-coded data at ``pos``.

    One regular-expression search (stuffed bytes and restart markers skipped inside it), so
    image data full of them costs no Python loop."""
    found = _MARKER_IN_SCAN.search(data, pos)
    if found is None:
        raise MetadataError("JPEG image data is truncated")
    return found.start()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def _judge_segment(marker: int, payload: bytes) -> tuple[bool, str, bytes | None]:
    """(keep as is, label of what was removed or "", replacement payload or None)."""
    if marker == 0xFE:
        return False, LABEL_COMMENT, None
    if not 0xE0 <= marker <= 0xEF:
        return True, "", None  # tables, frame headers, restart intervals: needed to decode
    app = marker - 0xE0
    if app == 0:
        if payload.startswith(b"JFIF\x00"):
            # The JFIF header may embed an uncompressed thumbnail of the original picture.
            if len(payload) > 14 or (len(payload) == 14 and (payload[12] or payload[13])):
                return False, LABEL_JFIF_THUMBNAIL, payload[:12] + b"\x00\x00"
            return True, "", None
        if payload.startswith(b"JFXX\x00"):
            return False, LABEL_JFIF_THUMBNAIL, None
    elif app == 1:
        if payload.startswith(b"Exif\x00"):
            return False, LABEL_EXIF, None
        if payload.startswith((b"http://ns.adobe.com/xap/1.0/\x00",
                                b"http://ns.adobe.com/xmp/extension/\x00")):
            return False, LABEL_XMP, None
    elif app == 2:
        if payload.startswith(b"ICC_PROFILE\x00"):
            return True, "", None
        if payload.startswith(b"MPF\x00"):
            return False, LABEL_MPF, None
    elif app == 11:
        if payload.startswith(b"JP"):  # JUMBF boxes, where C2PA manifests live
            return False, LABEL_C2PA, None
    elif app == 13:
        return False, LABEL_IPTC, None
    elif app == 14 and payload.startswith(b"Adobe"):
        return True, "", None
    return False, LABEL_OTHER, None


def _exif_orientation(payload: bytes) -> int | None:
    """The IFD0 Orientation value (2..8) of an EXIF payload, or None; never raises."""
    tiff = payload[6:]
    if len(tiff) < 8 or payload[:6] != b"Exif\x00\x00":
        return None
    if tiff[:4] == b"II*\x00":
        order: Literal["little", "big"] = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd < 8 or ifd + 2 > len(tiff):
        return None
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            return None
        tag = int.from_bytes(tiff[entry : entry + 2], order)
        if tag != 0x0112:
            continue
        kind = int.from_bytes(tiff[entry + 2 : entry + 4], order)
        number = int.from_bytes(tiff[entry + 4 : entry + 8], order)
        if kind != 3 or number != 1:
            return None
        value = int.from_bytes(tiff[entry + 8 : entry + 10], order)
        return value if 2 <= value <= 8 else None
    return None


def _minimal_exif(orientation: int) -> bytes:
    """An EXIF payload with one IFD0 entry, Orientation, and nothing else."""
    return (
        b"Exif\x00\x00"
        b"MM\x00*\x00\x00\x00\x08"  # big-endian TIFF header, IFD0 at offset 8
        b"\x00\x01"  # one entry
        b"\x01\x12\x00\x03\x00\x00\x00\x01" + bytes([0, orientation, 0, 0])
        + b"\x00\x00\x00\x00"  # no next IFD
    )


# ----------------------------------------------------------------------------------------- PNG


def _is_chunk_type(kind: bytes) -> bool:
    return all(0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A for c in kind)


def _strip_png(data: bytes) -> tuple[bytes, tuple[str, ...]]:
    if data[:8] != PNG_SIGNATURE:
        raise MetadataError("PNG signature is damaged")
    n = len(data)
    out = [PNG_SIGNATURE]
    labels = _Labels()
    pos = 8
    first = True
    seen_data = False
    budget = _parts_budget(data)
    while True:
        budget -= 1
        if budget < 0:
            raise TooManyParts("PNG has too many chunks")
        if pos + 12 > n:
            raise MetadataError("PNG ends before its IEND chunk")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if length > 0x7FFFFFFF or not _is_chunk_type(kind):
            raise MetadataError("PNG chunk header is invalid")
        end = pos + 12 + length
        if end > n:
            raise MetadataError("PNG chunk is truncated")
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            raise MetadataError("PNG chunk checksum does not match")
        if first and (kind != b"IHDR" or length != 13):
            raise MetadataError("PNG does not start with IHDR")
        first = False
        label = _PNG_DROP.get(kind)
        if label:
            labels.add(label)
        else:
            out.append(data[pos:end])
            if kind == b"IDAT":
                seen_data = True
        pos = end
        if kind == b"IEND":
            break
    if not seen_data:
        raise MetadataError("PNG has no image data")
    if pos < n:
        labels.add(LABEL_TRAILER)
    return b"".join(out), tuple(labels.items)
