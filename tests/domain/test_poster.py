"""Posters: real PDFs and SVGs, their QR code decoded from a rendered page, their fingerprint
compared with the intake page a worker would open."""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image, ImageDraw
from starlette.testclient import TestClient

import crypto
from service import cli
from service.app import create_app
from service.domain import channels, poster, reward_policies
from service.platform.errors import ChuishaoError
from service.platform.i18n import Catalogs
from service.platform.settings import Settings, SettingsError
from tests.conftest import BASE_URL, fast_settings
from tests.console import sign_in
from tests.factories import make_reviewer, make_world

ONION = "http://" + "abcdefghijklmnopqrstuvwxyz234567" + "abcdefghijklmnopqrstuvwx" + ".onion"
CATALOGS = Catalogs.load()
PAGE_POINTS = {"a4": (595.3, 841.9), "a3": (841.9, 1190.6)}
INTAKE_WORDS = re.compile(r'data-fingerprint="(?P<slug>[a-z0-9-]+)">(?P<words>[^<]+)</code>')


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "var", onion_url=ONION)


@pytest.fixture
def world(session, settings):  # type: ignore[no-untyped-def]
    return make_world(session, settings)


def _make(session, settings, channel, *, size="a4", fmt="pdf", lang="zh_CN", policy=None):  # type: ignore[no-untyped-def]
    return poster.make_poster(session, settings, channel, size=size, fmt=fmt, language=lang,
                              translate=CATALOGS.gettext(lang), policy_id=policy)


def _pdf_page(data: bytes) -> tuple[tuple[float, float], str, Image.Image]:
    document = pdfium.PdfDocument(data)
    assert len(document) == 1
    page = document[0]
    text = page.get_textpage().get_text_range()
    image = page.render(scale=150 / 72).to_pil()
    return (page.get_width(), page.get_height()), text, image


def _decode(image: Image.Image) -> list[str]:
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def _intake_words(client: TestClient, slug: str) -> str:
    found = {m["slug"]: m["words"] for m in INTAKE_WORDS.finditer(client.get("/").text)}
    return found[slug]


def _svg_qr_image(svg: str) -> Image.Image:
    """Draw the SVG's QR path (its own geometry, nothing else) at 8 pixels a millimetre."""
    path = re.search(r'<path d="([^"]+)"[^>]*data-url=', svg)
    assert path is not None
    width = float(re.search(r'viewBox="0 0 ([\d.]+)', svg)[1])  # type: ignore[index]
    height = float(re.search(r'viewBox="0 0 [\d.]+ ([\d.]+)', svg)[1])  # type: ignore[index]
    scale = 8
    image = Image.new("L", (int(width * scale), int(height * scale)), 255)
    draw = ImageDraw.Draw(image)
    for x, y, w, h in re.findall(r"M([\d.]+) ([\d.]+)h([\d.]+)v([\d.]+)h-[\d.]+z", path[1]):
        x0, y0 = float(x) * scale, float(y) * scale
        draw.rectangle([x0, y0, x0 + float(w) * scale - 1, y0 + float(h) * scale - 1], fill=0)
    return image


@pytest.mark.parametrize("size", ["a4", "a3"])
def test_pdf_poster_prints_the_line_and_its_qr_opens_the_intake_page(
        size, session, settings, world, client) -> None:  # type: ignore[no-untyped-def]
    made = _make(session, settings, world.channel, size=size)
    assert made.media_type == "application/pdf"
    assert made.filename == f"poster-acme-{size}-zh_CN.pdf"
    (width, height), text, image = _pdf_page(made.data)
    assert (round(width, 1), round(height, 1)) == PAGE_POINTS[size]  # portrait A4 / A3
    # The QR code, read back from the rendered page, opens the intake page with the line chosen.
    assert _decode(image) == [f"{BASE_URL}/?channel=acme"]
    flat = re.sub(r"\s+", "", text)
    for expected in ("某机械厂内部举报", "https://testserver", ONION, "第五十四条",
                     "不得因从业人员对本单位安全生产工作提出批评、检举、控告",
                     "用自己的手机和移动数据举报", "回执码", "隐藏信息", "每件最高240元"):
        assert re.sub(r"\s+", "", expected) in flat, expected
    # The fingerprint words on the wall are the intake page's, and those of the keys it seals to.
    words = _intake_words(client, "acme")
    assert words in text
    api = client.get("/api/v1/channels").json()["channels"][0]
    # Over both kinds of key ids (PROTOCOL 17.5): the recovery key has an X-Wing part.
    key_ids = [bytes.fromhex(r[name]) for r in api["recipients"]
               for name in ("key_id", "xwing_key_id") if name in r]
    assert words == crypto.format_fingerprint(crypto.keyset_fingerprint(key_ids))
    # The Chinese font is embedded as a subset, not referenced.
    assert b"/FontFile3" in made.data or b"/FontFile2" in made.data
    assert len(made.data) < 400_000


def test_english_pdf_poster(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    made = _make(session, settings, world.channel, lang="en")
    _, text, image = _pdf_page(made.data)
    assert _decode(image) == [f"{BASE_URL}/?channel=acme"]
    for expected in ("ACME internal line", "Work Safety Law", "Article 54", "Tor Browser",
                     "write it down", "up to 240", "Key fingerprint"):
        assert expected in text, expected
    assert "第五十四条" not in text


@pytest.mark.parametrize("size", ["a4", "a3"])
def test_svg_poster_draws_its_text_and_a_readable_qr(size, session, settings, world,
                                                      client) -> None:  # type: ignore[no-untyped-def]
    made = _make(session, settings, world.channel, size=size, fmt="svg")
    assert made.media_type == "image/svg+xml"
    svg = made.data.decode()
    width, height = poster.SIZES[size]
    assert f'width="{width:g}mm" height="{height:g}mm"' in svg
    assert _decode(_svg_qr_image(svg)) == [f"{BASE_URL}/?channel=acme"]
    # Text is drawn as glyph outlines (prints without the font); the words stay readable.
    assert "<text" not in svg and "<script" not in svg.lower()
    assert re.search(r'<path id="regular-\d+" d="M', svg)
    labels = re.findall(r'aria-label="([^"]*)"', svg)
    assert _intake_words(client, "acme") in labels
    assert "某机械厂内部举报" in labels


@pytest.mark.parametrize("size", ["a4", "a3"])
def test_wrapped_lines_start_flush(size, session, settings, world) -> None:  # type: ignore[no-untyped-def]
    """A line that wraps starts at the margin: no space carried over from the line above
    (the A3 English poster once began a line with one, shifted right of its neighbours)."""
    faces = {key: poster.face(key) for key in ("regular", "bold", "mono")}
    for lang in ("zh_CN", "en"):
        content = poster.gather(session, settings, world.channel, lang, CATALOGS.gettext(lang))
        for run in poster.layout(content, size, faces).runs:
            assert run.text == run.text.strip(), (lang, run.text)


def test_wrap_never_begins_a_line_with_the_space_it_broke_at() -> None:
    regular = poster.face("regular")
    text = ("Hidden data (place, time, phone) is removed from JPEG and PNG photos; PDF, "
            "Office files and videos are not cleaned.")
    for width in range(60, 400, 2):
        lines = poster.wrap(text, regular, 16.2, width)
        assert all(line == line.strip() for line in lines), (width, lines)
        assert " ".join(lines) == text, width


@pytest.mark.parametrize("size", ["a4", "a3"])
def test_long_names_stay_on_the_page(size, session, settings, world) -> None:  # type: ignore[no-untyped-def]
    """A 200-character name shrinks the text; nothing leaves the page or hides the QR code."""
    long_line = channels.add_channel(session, slug="long", kind="enterprise",
                                     name_zh="某某集团有限公司第三分公司" * 15,
                                     name_en="Workshop " * 22)
    session.commit()
    faces = {key: poster.face(key) for key in ("regular", "bold", "mono")}
    for lang in ("zh_CN", "en"):
        content = poster.gather(session, settings, long_line, lang, CATALOGS.gettext(lang))
        page = poster.layout(content, size, faces)
        width, height = poster.SIZES[size]
        [qr] = page.qr
        for run in page.runs:
            right = run.x + faces[run.face].width(run.text, run.size)
            assert run.x >= 0 and right <= width - 10, run
            assert 0 < run.y <= height - 5, run
            inside_qr = (qr.x <= run.x <= qr.x + qr.size and qr.y <= run.y <= qr.y + qr.size)
            assert not inside_qr, run
        lines = [run.text for run in page.runs]
        assert content.fingerprint in lines and content.address in lines
        assert content.onion in lines  # shrunk to one line, never broken
    svg = _make(session, settings, long_line, size=size, fmt="svg").data.decode()
    assert _decode(_svg_qr_image(svg)) == [f"{BASE_URL}/?channel=long"]


def test_new_reviewer_changes_the_words_on_the_page_and_on_a_new_poster(
        session, settings, world, client) -> None:  # type: ignore[no-untyped-def]
    """A key set changed on the server (here: a recipient added by an administrator) shows on
    the intake page as words that no longer match the poster on the wall."""
    printed = _make(session, settings, world.channel, fmt="svg").data.decode()
    before = _intake_words(client, "acme")
    assert f'aria-label="{before}"' in printed
    admin = make_reviewer(session, "root", roles="admin").user
    newcomer = make_reviewer(session, "newcomer").user
    admin.totp_confirmed = newcomer.totp_confirmed = True
    session.commit()
    csrf = sign_in(client, session, settings, admin)
    response = client.post(f"/console/admin/channels/{world.channel.id}/recipients",
                           data={"user_id": str(newcomer.id), "csrf_token": csrf},
                           follow_redirects=False)
    assert response.status_code == 303
    after = _intake_words(client, "acme")
    assert after != before
    reprinted = _make(session, settings, world.channel, fmt="svg").data.decode()
    assert f'aria-label="{after}"' in reprinted and f'aria-label="{before}"' not in reprinted


def test_intake_page_preselects_the_line_a_poster_names(session, settings, world,
                                                         client) -> None:  # type: ignore[no-untyped-def]
    channels.add_channel(session, slug="district-7", kind="bureau", name_zh="七区应急管理局")
    session.commit()
    checked = re.compile(r'value="([a-z0-9-]+)" required checked')
    assert checked.findall(client.get("/").text) == []
    assert checked.findall(client.get("/?channel=district-7").text) == ["district-7"]
    assert checked.findall(client.get("/?channel=nope").text) == []


def test_reward_sentence_follows_the_active_policy(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    zh = CATALOGS.gettext("zh_CN")
    bureau = channels.add_channel(session, slug="district-7", kind="bureau",
                                  name_zh="七区应急管理局")
    session.commit()
    enterprise = poster.gather(session, settings, world.channel, "zh_CN", zh)
    assert "企业内部隐患举报奖励" in enterprise.reward and "240\u00a0元" in enterprise.reward
    national = poster.gather(session, settings, bureau, "zh_CN", zh)
    assert "安全生产领域举报奖励办法" in national.reward and "300\u00a0000\u00a0元" in national.reward
    assert "第一个有效举报" in national.reward
    admin = make_reviewer(session, "root", roles="admin").user
    for row in reward_policies.policy_rows(session, active_only=True):
        reward_policies.set_policy_active(session, admin, row, False)
    session.commit()
    nothing = poster.gather(session, settings, world.channel, "en", CATALOGS.gettext("en"))
    assert nothing.reward == "This line has no reward policy in force at the moment."
    with pytest.raises(ChuishaoError) as refused:
        poster.gather(session, settings, world.channel, "en", CATALOGS.gettext("en"),
                      policy_id="national-2018")
    assert refused.value.code == "no_policy"


def test_bad_choices_and_closed_lines_are_refused(session, settings, world) -> None:  # type: ignore[no-untyped-def]
    for kwargs, code in (({"size": "a5"}, "size"), ({"fmt": "png"}, "format"),
                         ({"lang": "fr"}, "language")):
        with pytest.raises(ChuishaoError) as refused:
            _make(session, settings, world.channel, **kwargs)
        assert refused.value.code == code
    world.channel.active = False
    session.commit()
    with pytest.raises(ChuishaoError) as refused:
        _make(session, settings, world.channel, fmt="svg")
    assert refused.value.code == "channel_inactive"
    assert CATALOGS.gettext("zh_CN")(refused.value.message).startswith("该渠道已停用")


def test_missing_font_names_the_debian_package(session, settings, world, tmp_path,
                                               monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(poster._FACES, "regular",
                        (tmp_path / "NotoSansCJK-Regular.ttc", 2, "fonts-noto-cjk"))
    with pytest.raises(poster.FontMissing) as missing:
        _make(session, settings, world.channel, fmt="svg")
    for lang in ("en", "zh_CN"):
        text = CATALOGS.gettext(lang)(missing.value.message, **missing.value.params)
        assert "fonts-noto-cjk" in text and "scripts/ensure-fonts.sh" in text
    assert "软件包" in CATALOGS.gettext("zh_CN")(missing.value.message, **missing.value.params)


def test_onion_setting_is_checked() -> None:
    assert Settings.from_environ({"CHUISHAO_ONION_URL": ONION}).onion_url == ONION
    for bad in ("http://example.com", "http://short.onion", ONION + "/x", "javascript:1"):
        with pytest.raises(SettingsError):
            Settings.from_environ({"CHUISHAO_ONION_URL": bad})


# ---------------------------------------------------------------------------- console


def _signed_in(session, settings, client, world, role: str):  # type: ignore[no-untyped-def]
    user = make_reviewer(session, f"{role}-user", world.channel, roles=role).user
    user.totp_confirmed = True
    session.commit()
    sign_in(client, session, settings, user)


def test_admin_prints_a_poster_from_the_console(session, settings, world, client) -> None:  # type: ignore[no-untyped-def]
    _signed_in(session, settings, client, world, "admin")
    listing = client.get("/console/admin/channels")
    poster_url = f"/console/admin/channels/{world.channel.id}/poster"
    assert f'href="{poster_url}"' in listing.text
    page = client.get(poster_url)
    assert page.status_code == 200
    assert f'<code id="poster-fingerprint">{_intake_words(client, "acme")}</code>' in page.text
    assert f"{BASE_URL}/?channel=acme" in page.text
    response = client.get(poster_url + "/file", params={"size": "a3", "format": "pdf",
                                                       "lang": "en"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == \
        'attachment; filename="poster-acme-a3-en.pdf"'
    (width, _), text, image = _pdf_page(response.content)
    assert round(width, 1) == PAGE_POINTS["a3"][0]
    assert _decode(image) == [f"{BASE_URL}/?channel=acme"]
    assert "ACME internal line" in text
    refused = client.get(poster_url + "/file", params={"size": "a5", "format": "pdf"},
                         headers={"Accept": "application/json"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "size"
    missing = client.get("/console/admin/channels/999999/poster/file")
    assert missing.status_code == 404


def test_console_says_which_font_package_is_missing(session, settings, world, client, tmp_path,
                                                    monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _signed_in(session, settings, client, world, "admin")
    monkeypatch.setitem(poster._FACES, "bold",
                        (tmp_path / "NotoSansCJK-Bold.ttc", 2, "fonts-noto-cjk"))
    response = client.get(f"/console/admin/channels/{world.channel.id}/poster/file",
                          params={"size": "a4", "format": "pdf", "lang": "zh_CN"})
    assert response.status_code == 503
    assert "海报字体未安装" in response.text and "fonts-noto-cjk" in response.text


@pytest.mark.parametrize("role", ["reviewer", "approver", "auditor", "finance"])
def test_other_roles_cannot_print_posters(role, session, settings, world, client) -> None:  # type: ignore[no-untyped-def]
    _signed_in(session, settings, client, world, role)
    for path in ("", "/file?size=a4&format=svg"):
        response = client.get(f"/console/admin/channels/{world.channel.id}/poster{path}",
                              follow_redirects=False)
        assert response.status_code == 403, (role, path)


# ---------------------------------------------------------------------------- command line


@pytest.mark.sqlite_only
def test_command_line_poster(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings = fast_settings(tmp_path / "var")
    assert cli.main(["migrate"], settings) == 0
    assert cli.main(["init"], settings) == 0
    assert cli.main(["channel", "add", "plant-3", "--kind", "enterprise",
                     "--name-zh", "三号厂区"], settings) == 0
    out = tmp_path / "wall.svg"
    assert cli.main(["poster", "plant-3", "--size", "a3", "--format", "svg", "--lang", "en",
                     "--output", str(out)], settings) == 0
    assert f"poster written to {out}" in capsys.readouterr().out
    svg = out.read_text()
    assert 'width="297mm" height="420mm"' in svg
    assert _decode(_svg_qr_image(svg)) == [f"{BASE_URL}/?channel=plant-3"]
    # The default name, a PDF in Chinese.
    monkeypatch.chdir(tmp_path)
    assert cli.main(["poster", "plant-3"], settings) == 0
    _, text, _ = _pdf_page((tmp_path / "poster-plant-3-a4-zh_CN.pdf").read_bytes())
    assert "三号厂区" in text
    assert cli.main(["poster", "nowhere", "--lang", "en"], settings) == 2
    assert 'There is no channel "nowhere".' in capsys.readouterr().err
    assert cli.main(["poster", "plant-3", "--lang", "zh_CN", "--policy", "nope"], settings) == 2
    assert "没有名为“nope”的生效奖励办法" in capsys.readouterr().err


@pytest.mark.parametrize(("address", "local"), [
    ("http://127.0.0.1:8000", True), ("http://localhost:8000", True), ("http://[::1]:80", True),
    ("http://127.8.0.2", True), ("https://jubao.example.cn", False),
    ("http://192.168.1.20:8000", False), ("http://abcdefghijklmnopqrstuvwxyz234567abcdefghi"
                                          "jklmnopqrstuvw.onion", False)])
def test_a_loopback_address_is_named_as_one_no_phone_reaches(address, local, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert poster.local_address(fast_settings(tmp_path, base_url=address)) is local


@pytest.mark.sqlite_only
def test_a_poster_for_a_loopback_address_is_warned_about(tmp_path, capsys, database) -> None:  # type: ignore[no-untyped-def]
    # A fresh installation's default address opens on this computer only: a printed poster
    # with it leads workers nowhere, so both ways of printing say so.
    settings = fast_settings(tmp_path / "var", base_url="http://127.0.0.1:8000")
    assert cli.main(["migrate"], settings) == 0
    assert cli.main(["init"], settings) == 0
    assert cli.main(["channel", "add", "plant-3", "--kind", "enterprise",
                     "--name-zh", "三号厂区"], settings) == 0
    capsys.readouterr()
    assert cli.main(["poster", "plant-3", "--output", str(tmp_path / "p.svg"), "--format",
                     "svg"], settings) == 0
    err = capsys.readouterr().err
    assert "本安装的地址是 http://127.0.0.1:8000，只有这台电脑能打开" in err
    public = fast_settings(tmp_path / "var", base_url="https://jubao.example.cn")
    assert cli.main(["poster", "plant-3", "--output", str(tmp_path / "q.svg"), "--format",
                     "svg"], public) == 0
    assert "127.0.0.1" not in capsys.readouterr().err


def test_the_console_poster_page_warns_of_a_loopback_address(session, settings, world,
                                                            client, database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _signed_in(session, settings, client, world, "admin")
    poster_url = f"/console/admin/channels/{world.channel.id}/poster"
    assert 'id="poster-local-address"' not in client.get(poster_url).text
    local = fast_settings(tmp_path / "var", base_url="http://127.0.0.1:8000")
    with TestClient(create_app(local, database=database), base_url=BASE_URL) as other:
        other.cookies.update(client.cookies)
        page = other.get(poster_url + "?lang=en")
        assert page.status_code == 200
        assert 'id="poster-local-address"' in page.text
        assert "只有这台电脑能打开" in page.text
