"""What a file really is, judged by its first bytes, and the neutral name it travels under.

The reporter's browser runs the same rules (static/js/filetypes.js); both must give the same
answer for the same bytes (tests/browser/test_filetypes.py).

Why: a file name like ``IMG_20261130_221503.jpg`` carries the capture time that cleaning the
EXIF just removed, and a name chosen by the reporter may carry their own. So every file is
named ``photo-1.jpg`` / ``照片-1.jpg`` (extension from the detected type) unless the reporter
asks to keep the original name. The name a browser gives (``x.jpg``) and the type it derives
from it are never trusted: a program renamed ``.jpg`` is a program, not a cleaned photo.

Only JPEG and PNG can be cleaned (service/domain/metadata.py). HEIC/HEIF photos and videos keep
their
location and time; they are flagged with a reason of their own so the reporter can decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.domain.metadata import JPEG_SOI, PNG_SIGNATURE
from service.platform.i18n import N_

# How many leading bytes decide the type (the browser reads exactly this much).
HEAD_BYTES = 65536

FAMILY_NAMES = {
    "photo": N_("photo-{number}"),
    "video": N_("video-{number}"),
    "audio": N_("recording-{number}"),
    "file": N_("file-{number}"),
}
# Why a file cannot be cleaned, per family that needs more than the general sentence.
UNCLEAN_REASONS = {
    "heif": N_("HEIC/HEIF photos keep where and when they were taken; they cannot be cleaned "
               "here. Send a screenshot of the photo instead, or set the camera to JPEG "
               "(“Most compatible”)."),
    "video": N_("Videos keep where and when they were recorded and the phone model; they "
                "cannot be cleaned here."),
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_ZIP_FAMILY = ("docx", "xlsx", "pptx", "odt", "ods", "odp", "zip")
_OLE_FAMILY = ("doc", "xls", "ppt", "msg")


@dataclass(frozen=True)
class FileType:
    kind: str  # jpeg, png, gif, webp, heif, avif, mp4, mov, webm, avi, ..., text, other
    mime: str
    ext: str
    family: str  # photo, video, audio, file: the word of the neutral name

    @property
    def cleanable(self) -> bool:
        return self.kind in ("jpeg", "png")

    @property
    def reason_key(self) -> str:
        """Which UNCLEAN_REASONS entry explains this file, or ""."""
        if self.kind in ("heif", "avif"):
            return "heif"
        return "video" if self.family == "video" else ""


def _utf8_text(head: bytes, truncated: bool) -> bool:
    if b"\x00" in head:
        return False
    # A multi-byte character may be cut at the end of the head: allow up to 3 missing bytes.
    for cut in range(4 if truncated else 1):
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def _iso_media(head: bytes) -> FileType:
    """ISO base media (``ftyp`` box): HEIF/AVIF stills, MP4/MOV/3GP video, M4A audio."""
    size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    end = min(size, len(head)) if size >= 16 else 16
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AUDIO_BRANDS:
        return FileType("m4a", "audio/mp4", "m4a", "audio")
    if major == b"qt  ":
        return FileType("mov", "video/quicktime", "mov", "video")
    if major.startswith(b"3g"):
        return FileType("3gp", "video/3gpp", "3gp", "video")
    if brands & _HEIF_BRANDS and major not in (b"isom", b"mp41", b"mp42"):
        return FileType("heif", "image/heic", "heic", "photo")
    if brands & _AVIF_BRANDS:
        return FileType("avif", "image/avif", "avif", "photo")
    if major in (b"mif1", b"msf1"):
        return FileType("heif", "image/heif", "heif", "photo")
    return FileType("mp4", "video/mp4", "mp4", "video")


def _original_ext(filename: str) -> str:
    base = filename.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def detect(data: bytes, filename: str = "") -> FileType:
    """The type of a file from its first ``HEAD_BYTES`` bytes.

    ``filename`` is consulted only inside a detected family whose members the bytes cannot
    tell apart (an OLE file is a .doc, .xls or .ppt); it never decides the family itself.
    """
    head = bytes(data[:HEAD_BYTES])
    truncated = len(data) > HEAD_BYTES
    # The stripper's own tests (service/domain/metadata.py): every such file is cleaned or refused.
    if head[:2] == JPEG_SOI:
        return FileType("jpeg", "image/jpeg", "jpg", "photo")
    if head[:4] == PNG_SIGNATURE[:4]:
        return FileType("png", "image/png", "png", "photo")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return FileType("gif", "image/gif", "gif", "photo")
    if head[:4] == b"RIFF" and len(head) >= 12:
        riff = head[8:12]
        if riff == b"WEBP":
            return FileType("webp", "image/webp", "webp", "photo")
        if riff == b"AVI ":
            return FileType("avi", "video/x-msvideo", "avi", "video")
        if riff == b"WAVE":
            return FileType("wav", "audio/wav", "wav", "audio")
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_media(head)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return FileType("webm", "video/webm", "webm", "video")
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return FileType("mp3", "audio/mpeg", "mp3", "audio")
    if head[:5] == b"#!AMR":
        return FileType("amr", "audio/amr", "amr", "audio")
    if head[:5] == b"%PDF-":
        return FileType("pdf", "application/pdf", "pdf", "file")
    if head[:4] == b"PK\x03\x04":
        return _zip(head, _original_ext(filename))
    if head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        ext = _original_ext(filename)
        return FileType("ole", "application/x-ole-storage",
                        ext if ext in _OLE_FAMILY else "doc", "file")
    if head[:2] == b"MZ":
        return FileType("exe", "application/x-msdownload", "exe", "file")
    if head[:4] == b"\x7fELF":
        return FileType("elf", "application/octet-stream", "bin", "file")
    if head and _utf8_text(head, truncated):
        return FileType("text", "text/plain", "txt", "file")
    return FileType("other", "application/octet-stream", "bin", "file")


def _zip(head: bytes, original: str) -> FileType:
    # Office Open XML keeps its parts in folders named after the application.
    for marker, ext, mime in (
        (b"word/", "docx", "application/vnd.openxmlformats-officedocument."
                           "wordprocessingml.document"),
        (b"xl/", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (b"ppt/", "pptx", "application/vnd.openxmlformats-officedocument."
                          "presentationml.presentation"),
    ):
        if marker in head:
            return FileType(ext, mime, ext, "file")
    if b"mimetypeapplication/vnd.oasis.opendocument." in head:
        ext = original if original in ("odt", "ods", "odp") else "odt"
        return FileType(ext, "application/vnd.oasis.opendocument", ext, "file")
    ext = original if original in _ZIP_FAMILY else "zip"
    return FileType("zip", "application/zip", ext, "file")


def neutral_name(kind: FileType, number: int, translate: Callable[..., str]) -> str:
    """``photo-3.jpg`` in the reporter's language."""
    word = translate(FAMILY_NAMES[kind.family], number=number)
    return f"{word}.{kind.ext}"
