"""The SVG poster as a browser draws it: Chromium renders it, the QR code is read back from the
screenshot, and the glyph outlines really paint (no font needed on the printing machine)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from service.domain import poster
from service.platform.i18n import Catalogs
from tests.conftest import BASE_URL
from tests.factories import make_world

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("size", ["a4", "a3"])
def test_chromium_renders_the_svg_poster(size: str, chromium: Any, session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session, settings)
    made = poster.make_poster(session, settings, world.channel, size=size, fmt="svg",
                              language="zh_CN", translate=Catalogs.load().gettext("zh_CN"))
    width_mm, height_mm = poster.SIZES[size]
    px = 4  # pixels per millimetre, about 100 dpi
    page = chromium.new_page(viewport={"width": int(width_mm * px),
                                       "height": int(height_mm * px)})
    try:
        svg = made.data.decode().split("\n", 1)[1]  # the XML declaration cannot sit in HTML
        svg = svg.replace(f'width="{width_mm:g}mm" height="{height_mm:g}mm"',
                          'width="100%" height="100%"', 1)
        page.set_content("<!doctype html><html><body style='margin:0'>" + svg + "</body></html>")
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    finally:
        page.close()
    assert [b.text for b in zxingcpp.read_barcodes(shot)] == [f"{BASE_URL}/?channel=acme"]
    # The title is drawn in white on the red band: glyph outlines were painted there.
    band = shot.crop((0, 0, shot.width, int(35 * px * width_mm / 210)))
    colours = band.getcolors(maxcolors=1 << 16) or []
    white = sum(count for count, rgb in colours if min(rgb) > 240)
    red = sum(count for count, rgb in colours if rgb[0] > 150 and rgb[1] < 60 and rgb[2] < 60)
    assert red > band.width * band.height * 0.5
    assert white > band.width * band.height * 0.03
