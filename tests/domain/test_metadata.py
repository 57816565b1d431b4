"""Photo metadata stripping: images generated with Pillow carry every kind of identifying
metadata; after stripping, Pillow decodes the same pixels and finds none of it.

The builders here are shared with tests/browser/test_strip.py, which checks that the
browser module produces the same bytes.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from service.domain.metadata import LABELS, MetadataError, StripResult, strip_metadata

SECRET_NAME = b"Zhang San"  # planted in every metadata field; must never survive
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>Zhang San</dc:creator></x:xmpmeta>'
PDF = b"%PDF-1.7\n1 0 obj << /Author (Zhang San) >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
GPS_IFD = 0x8825


def _pattern(mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Image.Image:
    image = Image.new(mode, size)
    width, height = size
    pixels = [
        ((x * 7) % 256, (y * 11) % 256, (x * y) % 256, (x + y) % 256)[: len(mode)]
        for y in range(height)
        for x in range(width)
    ]
    image.putdata(pixels)  # type: ignore[arg-type]
    return image


def _exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "ACME"
    exif[0x0110] = "Phone 9"
    exif[0x013B] = "Zhang San"  # Artist
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (39.0, 54.0, 27.5)
    gps[3] = "E"
    gps[4] = (116.0, 23.0, 1.0)
    return exif


def _iptc_app13() -> bytes:
    """A Photoshop APP13 segment with an IPTC By-line record (Pillow cannot write one)."""
    record = b"\x1c\x02\x50" + struct.pack(">H", len(SECRET_NAME)) + SECRET_NAME
    resource = b"8BIM" + b"\x04\x04" + b"\x00\x00" + struct.pack(">I", len(record)) + record
    if len(record) % 2:
        resource += b"\x00"
    payload = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def _insert_after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _srgb() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return bytes(profile.tobytes())


def jpeg_with_metadata(**save: object) -> bytes:
    """EXIF with a GPS IFD, XMP, a comment, an ICC profile, IPTC in APP13, and a second
    JPEG (with its own GPS) appended after the end of the image, as phones do."""
    out = io.BytesIO()
    _pattern().save(out, "JPEG", exif=_exif(), comment=b"shot by " + SECRET_NAME, xmp=XMP,
                    icc_profile=_srgb(), quality=90, **save)
    extra = io.BytesIO()
    _pattern(size=(8, 8)).save(extra, "JPEG", exif=_exif())
    return _insert_after_soi(out.getvalue(), _iptc_app13()) + extra.getvalue()


def plain_jpeg(**save: object) -> bytes:
    out = io.BytesIO()
    _pattern().save(out, "JPEG", **save)
    return out.getvalue()


def cmyk_jpeg() -> bytes:
    out = io.BytesIO()
    _pattern("CMYK").save(out, "JPEG", comment=SECRET_NAME)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_metadata() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Zhang San")
    info.add_text("Comment", "Zhang San " * 20, zip=True)
    info.add_itxt("Description", "张三 Zhang San", lang="zh", tkey="描述")
    info.add(b"tIME", struct.pack(">HBBBBB", 2026, 3, 4, 5, 6, 7))
    out = io.BytesIO()
    _pattern("RGBA").save(out, "PNG", pnginfo=info, exif=_exif(), icc_profile=_srgb())
    return out.getvalue()


def all_samples() -> dict[str, bytes]:
    return {
        "jpeg_metadata": jpeg_with_metadata(),
        "jpeg_progressive": jpeg_with_metadata(progressive=True),
        "jpeg_restart": plain_jpeg(restart_marker_blocks=2, exif=_exif(3)),
        "jpeg_cmyk": cmyk_jpeg(),
        "jpeg_plain": plain_jpeg(),
        "png_metadata": png_with_metadata(),
        "pdf": PDF,
    }


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


def assert_clean_jpeg(original: bytes, result: StripResult) -> None:
    assert result.kind == "jpeg" and result.cleaned
    assert pixels(result.data) == pixels(original)
    assert SECRET_NAME not in result.data
    assert b"Phone 9" not in result.data and b"ACME" not in result.data
    assert result.data.endswith(b"\xff\xd9") and result.data.count(b"\xff\xd8") == 1
    with Image.open(io.BytesIO(result.data)) as image:
        exif = image.getexif()
        assert GPS_IFD not in exif and not exif.get_ifd(GPS_IFD)
        assert set(exif) <= {0x0112}  # only the orientation may remain
        assert "photoshop" not in image.info and "comment" not in image.info
        assert "xmp" not in image.info


def test_jpeg_loses_every_identifying_segment() -> None:
    original = jpeg_with_metadata()
    with Image.open(io.BytesIO(original)) as image:  # the fixture really carries it all
        assert image.getexif().get_ifd(GPS_IFD)[2] == (39.0, 54.0, 27.5)
        assert "photoshop" in image.info and image.info["comment"]
    result = strip_metadata(original, "IMG_0001.JPG", "image/jpeg")
    assert_clean_jpeg(original, result)
    assert result.removed == (
        "IPTC/Photoshop", "EXIF (incl. GPS)", "XMP", "comment", "data after the image",
    )
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.getexif()[0x0112] == 6  # upright display survives
        assert image.info["icc_profile"] == _srgb()  # colour stays right
        assert image.info["jfif"]


def test_progressive_and_restart_markers_survive() -> None:
    for original in (jpeg_with_metadata(progressive=True),
                     plain_jpeg(restart_marker_blocks=2, exif=_exif(3))):
        result = strip_metadata(original)
        assert_clean_jpeg(original, result)
        assert "EXIF (incl. GPS)" in result.removed


def test_cmyk_keeps_adobe_segment() -> None:
    original = cmyk_jpeg()
    result = strip_metadata(original)
    assert result.removed == ("comment",)
    assert result.data[2:7] == b"\xff\xee\x00\x0eA"  # APP14 Adobe, still first
    assert pixels(result.data) == pixels(original)


def test_clean_jpeg_is_unchanged_and_cleaning_is_idempotent() -> None:
    original = plain_jpeg()
    result = strip_metadata(original)
    assert result == StripResult(original, "jpeg", True, ())
    dirty = strip_metadata(jpeg_with_metadata())
    again = strip_metadata(dirty.data)
    assert again.data == dirty.data


def test_jfif_thumbnail_and_vendor_segments_dropped() -> None:
    original = plain_jpeg()
    assert original[2:4] == b"\xff\xe0"
    # A JFIF header with a 2x1 RGB thumbnail, a JFXX extension, MPF, APP12 "Ducky".
    jfif = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x02\x01" + b"\x10\x20\x30\x40\x50\x60"
    segments = [
        b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif,
        b"\xff\xe0\x00\x0aJFXX\x00\x10\x00\x00",
        b"\xff\xe2\x00\x08MPF\x00\x00\x00",
        b"\xff\xec\x00\x0bDucky\x00\x01\x02\x03",
    ]
    length = struct.unpack(">H", original[4:6])[0]
    data = original[:2] + b"".join(segments) + original[4 + length :]
    result = strip_metadata(data)
    assert result.removed == (
        "JFIF thumbnail", "MPF (embedded images)", "other metadata",
    )
    assert result.data[2:4] == b"\xff\xe0" and result.data[4:6] == b"\x00\x10"
    assert b"\x10\x20\x30\x40\x50\x60" not in result.data
    assert pixels(result.data) == pixels(original)


def test_png_loses_text_exif_and_time() -> None:
    original = png_with_metadata()
    with Image.open(io.BytesIO(original)) as image:
        assert image.text and image.getexif()
    result = strip_metadata(original, "screen.png", "image/png")
    assert result.kind == "png" and result.cleaned
    assert result.removed == ("PNG text", "PNG time", "PNG eXIf")
    assert pixels(result.data) == pixels(original)
    for kind in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"):
        assert kind not in result.data
    assert SECRET_NAME not in result.data
    with Image.open(io.BytesIO(result.data)) as image:
        assert not image.text and not image.getexif()
        assert image.info["icc_profile"] == _srgb()


def test_png_data_after_iend_dropped() -> None:
    original = png_with_metadata()
    result = strip_metadata(original + b"Zhang San")
    assert "data after the image" in result.removed
    assert result.data == strip_metadata(original).data


def test_other_formats_pass_through_unchanged() -> None:
    for data in (PDF, b"", b"\x00\x00\x00\x18ftypheic", b"PK\x03\x04word"):
        result = strip_metadata(data, "photo.jpg", "image/jpeg")  # names do not decide
        assert result == StripResult(data, "other", False, ())
    jpeg = plain_jpeg()
    assert strip_metadata(jpeg, "report.pdf", "application/pdf").kind == "jpeg"


@pytest.mark.parametrize("name", ["jpeg_plain", "jpeg_progressive", "png_metadata"])
def test_every_truncation_is_refused(name: str) -> None:
    data = all_samples()[name]
    if name == "jpeg_progressive":  # cut inside the main image, not the appended one
        data = data[: data.index(b"\xff\xd9") + 2]
    # Two bytes of a PNG signature are not recognisable as a PNG: they pass as "other".
    for cut in range(2 if name.startswith("jpeg") else 4, len(data)):
        with pytest.raises(MetadataError):
            strip_metadata(data[:cut])


def test_corruptions_are_refused() -> None:
    jpeg = plain_jpeg()
    png = png_with_metadata()
    broken = [
        jpeg[:2] + b"\x00" + jpeg[3:],  # no marker after SOI
        jpeg[:4] + b"\xff\xff" + jpeg[6:],  # segment length beyond the end
        jpeg[:4] + b"\x00\x01" + jpeg[6:],  # segment length below 2
        jpeg[:2] + b"\xff\xd9",  # end of image without image data
        jpeg[:2] + b"\xff\xd8" + jpeg[2:],  # a second start of image
        png[:9] + b"\x7f" + png[10:],  # IHDR length flipped: checksum or header wrong
        png[:20] + bytes([png[20] ^ 1]) + png[21:],  # IHDR payload changed: CRC mismatch
        png[:5] + b"\x00" + png[6:],  # damaged signature
        b"\x89PNG",  # only the start of a signature
        png[:8] + png_chunk(b"IEND", b""),  # no IHDR, no image data
    ]
    for data in broken:
        with pytest.raises(MetadataError):
            strip_metadata(data)
    assert issubclass(MetadataError, ValueError)


_SEEDS = [plain_jpeg(), jpeg_with_metadata(progressive=True)[:4000], png_with_metadata()]


def _check(data: bytes) -> None:
    try:
        result = strip_metadata(data)
    except MetadataError:
        return
    assert result.kind in {"jpeg", "png", "other"}
    assert set(result.removed) <= set(LABELS)
    if result.cleaned:
        assert strip_metadata(result.data).data == result.data  # a second pass changes nothing
    else:
        assert result.data == data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from([b"", b"\xff\xd8", b"\xff\xd8\xff", b"\x89PNG",
                                                  b"\x89PNG\r\n\x1a\n"]))
def test_random_bytes_give_result_or_metadata_error(data: bytes, prefix: bytes) -> None:
    _check(prefix + data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(_SEEDS))),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=6),
    st.one_of(st.none(), st.integers(min_value=0)),
    st.binary(max_size=16),
)
def test_mutated_images_give_result_or_metadata_error(
    seed: int, edits: list[tuple[int, int]], cut: int | None, tail: bytes
) -> None:
    data = bytearray(_SEEDS[seed])
    for where, value in edits:
        data[where % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    _check(bytes(data) + tail)


def test_files_of_tiny_parts_are_refused_fast() -> None:
    """A "photo" of millions of empty segments or chunks is refused before it is walked."""
    import time

    from service.domain.metadata import TooManyParts

    jpeg = b"\xff\xd8" + b"\xff\xfe\x00\x02" * (2 * 1024 * 1024) + b"\xff\xd9"  # 8 MiB
    chunk = struct.pack(">I", 0) + b"zzZz"
    chunk += struct.pack(">I", zlib.crc32(b"zzZz"))
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
           + struct.pack(">I", zlib.crc32(ihdr)) + chunk * (700 * 1024))  # 8.4 MiB
    for data in (jpeg, png):
        started = time.monotonic()
        with pytest.raises(TooManyParts):
            strip_metadata(data, "photo.jpg")
        assert time.monotonic() - started < 1.0


def test_image_data_full_of_stuffed_bytes_is_scanned_fast() -> None:
    """Stuffed 0xFF 0x00 pairs and restart markers in image data are legal and stay; the scan
    over them is one search, not a Python step per pair."""
    import time

    scan = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00"
    data = b"\xff\xd8" + scan + b"\xff\x00\xff\xd0" * (2 * 1024 * 1024) + b"\xff\xd9"
    started = time.monotonic()
    result = strip_metadata(data, "photo.jpg")
    assert time.monotonic() - started < 1.0
    assert result.data == data and result.cleaned
