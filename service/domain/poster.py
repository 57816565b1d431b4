"""Printable posters that put a reporting line on the workplace wall (A4/A3, PDF/SVG).

One layout, two outputs: the page is laid out once, in millimetres, as text runs, boxes and a
QR code; the PDF (fpdf2) embeds a subset of the CJK font, the SVG draws every glyph as a path,
so both print the same on a machine that has no Chinese font. The poster carries only what is
public anyway: the line's name, its address, the key-set fingerprint the intake page shows.

Longer than 500 lines because the one layout and its two renderers (PDF, SVG) must stay
in step, measured in the same units.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

from fontTools.pens.svgPathPen import SVGPathPen
from fontTools.ttLib import TTCollection, TTFont
from fpdf import FPDF
from sqlalchemy.orm import Session

from service.domain import intake, qr, reward_policies
from service.domain.models import Channel, utcnow
from service.domain.models.rewards import RewardPolicyVersion
from service.domain.rewards import format_yuan
from service.platform.errors import ChuishaoError, InvalidInput
from service.platform.i18n import LANGUAGES, N_
from service.platform.settings import Settings

# Debian's fonts, installed by scripts/ensure-fonts.sh: Noto Sans CJK SC for the text (face 2
# of each collection), DejaVu Sans Mono for addresses and the fingerprint (0 and O differ).
NOTO = Path("/usr/share/fonts/opentype/noto")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_FACES: dict[str, tuple[Path, int, str]] = {
    "regular": (NOTO / "NotoSansCJK-Regular.ttc", 2, "fonts-noto-cjk"),
    "bold": (NOTO / "NotoSansCJK-Bold.ttc", 2, "fonts-noto-cjk"),
    "mono": (DEJAVU / "DejaVuSansMono.ttf", 0, "fonts-dejavu-core"),
}

SIZES = {"a4": (210.0, 297.0), "a3": (297.0, 420.0)}
FORMATS = {"pdf": "application/pdf", "svg": "image/svg+xml"}
PT = 25.4 / 72  # millimetres per point
NBSP = "\u00a0"  # binds a number to its unit on the poster

RED = (190, 22, 34)
INK = (20, 20, 20)
MUTED = (90, 90, 90)
WHITE = (255, 255, 255)


_RENDERING = threading.Lock()


class FontMissing(ChuishaoError):
    status = 503
    code = "font_missing"
    message = N_("The poster font is not installed: install the Debian package {package} "
                 "(scripts/ensure-fonts.sh does it).")


# ---------------------------------------------------------------------------- content


@dataclass(frozen=True)
class PosterContent:
    language: str
    title: str
    subtitle: str
    channel_name: str
    channel_kind: str
    scan_label: str
    type_label: str
    address: str  # what a worker types
    qr_url: str  # what the QR code opens: the address with the line preselected
    choose_line: str
    onion_label: str
    onion: str
    fingerprint_label: str
    fingerprint: str
    fingerprint_note: str
    safety_title: str
    safety: tuple[str, ...]
    law_title: str
    law: str
    law_source: str
    reward_title: str
    reward: str
    footer: str


LOCAL_ADDRESS = N_("This installation's address is {address}, which only this computer can "
                   "open: a worker's phone cannot reach it. Set base_url (CHUISHAO_BASE_URL) to "
                   "the address workers reach before printing.")


def local_address(settings: Settings) -> bool:
    """The address on the poster is one a phone cannot open (loopback: the default of a
    fresh installation), so a printed poster would lead nowhere."""
    host = (urlsplit(settings.base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def intake_address(settings: Settings, channel: Channel) -> str:
    """The intake page with this line preselected (see service/web/public.py index)."""
    return f"{settings.base_url.rstrip('/')}/?channel={channel.slug}"


def _amount(fen: int) -> str:
    """300 000 yuan, not 300 000.00; the groups never break across lines."""
    text = format_yuan(fen)
    return (text[:-3] if text.endswith(".00") else text).replace(" ", NBSP)


def choose_policy(session: Session, channel: Channel,
                  policy_id: str | None = None) -> RewardPolicyVersion | None:
    """The active policy the poster names: the one asked for, else the newest one an
    administrator uploaded, else the shipped one that suits the kind of line."""
    rows = reward_policies.policy_rows(session, active_only=True)
    if policy_id:
        for row in rows:
            if row.policy_id == policy_id:
                return row
        raise InvalidInput(N_('There is no active reward policy "{policy}".'), code="no_policy",
                           policy=policy_id)
    uploaded = sorted((row for row in rows if not row.shipped), key=lambda row: -row.id)
    if uploaded:
        return uploaded[0]
    preferred = "national-2018" if channel.kind == "bureau" else "enterprise-internal"
    for row in rows:
        if row.policy_id == preferred:
            return row
    return rows[0] if rows else None


def reward_sentence(row: RewardPolicyVersion | None, language: str,
                    translate: Callable[..., str]) -> str:
    if row is None:
        return translate(N_("This line has no reward policy in force at the moment."))
    policy = reward_policies.parsed(row)
    title = row.title_zh if language == "zh_CN" or not row.title_en else row.title_en
    ceiling = policy.ceiling_fen()
    if ceiling:
        text = translate(N_('Reports found true are rewarded under "{title}", up to {amount} '
                            "yuan a report."), title=title, amount=_amount(ceiling))
    else:
        text = translate(N_('Reports found true are rewarded under "{title}".'), title=title)
    if policy.rules_of("first_valid_only"):
        space = "" if language == "zh_CN" else " "
        text += space + translate(N_("Only the first valid report of a matter is rewarded."))
    return text


def gather(session: Session, settings: Settings, channel: Channel, language: str,
           translate: Callable[..., str], *, policy_id: str | None = None,
           today: dt.date | None = None) -> PosterContent:
    if language not in LANGUAGES:
        raise InvalidInput(N_("Choose a language: zh_CN or en."), code="language")
    if not channel.active:
        raise InvalidInput(N_("This channel is deactivated: a poster would send workers to a "
                              "line that takes no reports."), code="channel_inactive")
    name = channel.name_zh if language == "zh_CN" or not channel.name_en else channel.name_en
    kind = (N_("Enterprise internal line") if channel.kind == "enterprise"
            else N_("District bureau"))
    printed = (today or utcnow().date()).isoformat()
    return PosterContent(
        language=language,
        title=translate(N_("Seen a safety hazard?")),
        subtitle=translate(N_("Report it here. You need not give your name.")),
        channel_name=name,
        channel_kind=translate(kind),
        scan_label=translate(N_("Scan with your phone")),
        type_label=translate(N_("or type this address in the browser:")),
        address=settings.base_url.rstrip("/"),
        qr_url=intake_address(settings, channel),
        choose_line=translate(N_('and choose "{name}".'), name=name),
        onion_label=translate(N_("Tor Browser:")) if settings.onion_url else "",
        onion=settings.onion_url.rstrip("/"),
        fingerprint_label=translate(N_("Key fingerprint")),
        fingerprint=intake.fingerprint_words(session, channel, v2_only=settings.require_v2),
        fingerprint_note=translate(N_("The report page shows the same characters next to this "
                                      "line's name. If they differ, do not send: tell someone "
                                      "you trust.")),
        safety_title=translate(N_("Report safely")),
        safety=(
            translate(N_("Use your own phone, with mobile data: not a company device, not the "
                         "company Wi-Fi.")),
            translate(N_("After sending you get a receipt: write it down and show it to nobody. "
                         "It is the only way back to your report.")),
            translate(N_("Hidden data (place, time, phone) is removed from JPEG and PNG photos; "
                         "PDF, Office files and videos are not cleaned.")),
        ),
        law_title=translate(N_("The law protects you")),
        # Work Safety Law (2021) Art. 54 para. 2, quoted in docs/POSTERS.md.
        law=translate(N_('"A production or business entity shall not reduce the wages, welfare '
                         "or other benefits of an employee, or terminate the labour contract "
                         "concluded with the employee, because the employee criticises, reports "
                         "or accuses problems in the entity's work safety, or refuses orders "
                         'that violate regulations or force risky operations."')),
        law_source=translate(N_("- Work Safety Law of the People's Republic of China (amended "
                                "2021), Article 54, paragraph 2")),
        reward_title=translate(N_("Rewards")),
        reward=reward_sentence(choose_policy(session, channel, policy_id), language, translate),
        footer=translate(N_("Your report is encrypted before it is stored; only the reviewers "
                            "of this line, and the keeper of the offline recovery key, can "
                            "read it. Printed {date}."), date=printed),
    )


# ---------------------------------------------------------------------------- fonts


@dataclass
class Face:
    key: str
    font: TTFont
    path: Path
    index: int
    advances: dict[int, float]  # code point -> advance width in ems
    glyph_names: dict[int, str]
    upm: int
    ascender: float
    missing: float  # advance of .notdef

    def advance(self, char: str) -> float:
        return self.advances.get(ord(char), self.missing)

    def width(self, text: str, size_pt: float) -> float:
        """Width of ``text`` at ``size_pt``, in millimetres."""
        return sum(self.advance(char) for char in text) * size_pt * PT


def face(key: str) -> Face:
    """Loaded for each poster (a quarter of a second) rather than kept: the CJK collection
    holds some 90 MB once parsed, too much to keep in a server for a rare print."""
    path, index, package = _FACES[key]
    if not path.is_file():
        raise FontMissing(package=package)
    font = (TTCollection(str(path), lazy=True).fonts[index] if path.suffix == ".ttc"
            else TTFont(str(path), lazy=True))
    upm = int(font["head"].unitsPerEm)
    metrics = font["hmtx"].metrics
    names = dict(font.getBestCmap())
    advances = {code: metrics[name][0] / upm for code, name in names.items()}
    return Face(key, font, path, index, advances, names, upm,
                float(font["hhea"].ascent) / upm, metrics[".notdef"][0] / upm)


# ---------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class TextRun:
    x: float  # left edge, mm
    y: float  # baseline, mm
    text: str
    face: str
    size: float  # points
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    color: tuple[int, int, int]


@dataclass(frozen=True)
class QRBlock:
    x: float
    y: float
    size: float  # side including the quiet zone, mm
    url: str


@dataclass
class Page:
    width: float
    height: float
    runs: list[TextRun] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    qr: list[QRBlock] = field(default_factory=list)


# A line may not start with closing punctuation, nor end with opening punctuation.
_NO_START = set("，。、；：！？）》」』”’,.;:!?)]%")
_NO_END = set("（《「『“‘([")
_TOKEN = re.compile(r"[A-Za-z0-9@#&'’._\-/:=?+]+|[ \t\n]+|.", re.S)


def _tokens(text: str) -> Iterator[str]:
    """Latin words stay whole, every CJK character may break, punctuation sticks to its word,
    and a no-break space (as in "240\u00a0元") binds its neighbours."""
    pending = ""
    opening = ""
    for token in _TOKEN.findall(text):
        if token in _NO_END:
            opening += token
            continue
        token, opening = opening + token, ""
        if pending and (token[0] in _NO_START or token[0] == NBSP or pending[-1] == NBSP):
            pending += token
            continue
        if pending:
            yield pending
        pending = token
    if pending or opening:
        yield pending + opening


def wrap(text: str, font: Face, size_pt: float, width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for token in _tokens(text):
        candidate = line + token
        if not line.strip() or font.width(candidate.rstrip(), size_pt) <= width:
            line = candidate
        else:
            lines.append(line.rstrip())
            line = token.lstrip()
        # A single word wider than the line (a long address) is cut where it overflows.
        # Measured without trailing space, as above: a space that does not fit is no reason
        # to cut, and a cut there began the next line with it.
        while len(line) > 1 and font.width(line.rstrip(), size_pt) > width:
            cut = len(line) - 1
            while cut > 1 and font.width(line[:cut], size_pt) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines


class _Flow:
    def __init__(self, page: Page, faces: dict[str, Face], scale: float) -> None:
        self.page = page
        self.faces = faces
        self.scale = scale

    def para(self, text: str, x: float, y: float, width: float, size: float, face: str = "regular",
             color: tuple[int, int, int] = INK, leading: float = 1.35,
             one_line: bool = False) -> float:
        """Lay out a wrapped paragraph from top ``y``; returns the y below it. ``one_line``
        text (an address) shrinks to fit one line rather than break, down to half its size."""
        size *= self.scale
        font = self.faces[face]
        if one_line:
            smallest = size / 2
            while size > smallest and font.width(text, size) > width:
                size *= 0.97
        line_h = size * PT * leading
        for line in wrap(text, font, size, width):
            baseline = y + size * PT * font.ascender
            self.page.runs.append(TextRun(x, baseline, line, face, size, color))
            y += line_h
        return y


def layout(content: PosterContent, size: str, faces: dict[str, Face]) -> Page:
    """Lay the poster out as large as fits: text starts big and shrinks step by step until
    everything stands above the footer (a long name or policy title takes more room)."""
    width, height = SIZES[size]
    scale = 1.5
    while True:
        page, fits = _layout_once(content, width, height, faces, scale)
        if fits or scale < 0.6:
            return page
        scale *= 0.95


def _layout_once(c: PosterContent, width: float, height: float, faces: dict[str, Face],
                 scale: float) -> tuple[Page, bool]:
    k = width / 210  # every measure below is for A4 and grows with the page
    page = Page(width, height)
    flow = _Flow(page, faces, scale * k)
    margin = 14 * k
    inner = width - 2 * margin
    gap = scale * k  # vertical spacing grows with the text

    y = flow.para(c.title, margin, 10 * gap, inner, 30, "bold", WHITE, 1.2)
    y = flow.para(c.subtitle, margin, y + 1 * gap, inner, 15, "bold", WHITE, 1.3)
    band_h = y + 7 * gap
    page.boxes.insert(0, Box(0, 0, width, band_h, RED))

    y = flow.para(c.channel_name, margin, band_h + 7 * gap, inner, 21, "bold", INK, 1.25)
    y = flow.para(c.channel_kind, margin, y + 0.5 * gap, inner, 10, "regular", MUTED)

    # The QR code on the left, how to reach the line on the right.
    top = y + 5 * gap
    qr_size = min(46 * gap, inner * 0.42)
    quiet = qr_size * 4 / 37  # the code's own quiet zone, so its modules line up with the text
    page.qr.append(QRBlock(margin - quiet, top - quiet, qr_size + 2 * quiet, c.qr_url))
    col = margin + qr_size + 6 * k
    col_w = width - margin - col
    ry = flow.para(c.scan_label, col, top, col_w, 12, "bold")
    ry = flow.para(c.type_label, col, ry + 0.5 * gap, col_w, 10, "regular", MUTED)
    ry = flow.para(c.address, col, ry + 0.5 * gap, col_w, 13, "mono", one_line=True)
    ry = flow.para(c.choose_line, col, ry + 0.5 * gap, col_w, 10, "regular")
    if c.onion:
        ry = flow.para(c.onion_label, col, ry + 2 * gap, col_w, 9, "regular", MUTED)
        ry = flow.para(c.onion, col, ry, col_w, 7.5, "mono", one_line=True)
    ry = flow.para(c.fingerprint_label, col, ry + 3 * gap, col_w, 10, "bold")
    ry = flow.para(c.fingerprint, col, ry + 0.5 * gap, col_w, 17, "mono")
    ry = flow.para(c.fingerprint_note, col, ry + 0.5 * gap, col_w, 8.5, "regular", MUTED)
    y = max(ry, top + qr_size) + 7 * gap

    def section(title: str, y: float) -> float:
        page.boxes.append(Box(margin, y + 0.5 * gap, 1.6 * k, 5.5 * gap, RED))
        return flow.para(title, margin + 4 * k, y, inner - 4 * k, 14, "bold", INK, 1.2) + 2 * gap

    y = section(c.safety_title, y)
    for number, line in enumerate(c.safety, 1):
        flow.para(f"{number}.", margin + 4 * k, y, 8 * k, 11.5, "bold", RED)
        y = flow.para(line, margin + 11 * k, y, inner - 11 * k, 11.5, "regular", INK, 1.3)
        y += 1.2 * gap
    y = section(c.law_title, y + 3 * gap)
    y = flow.para(c.law, margin + 4 * k, y, inner - 4 * k, 11, "regular", INK, 1.4)
    y = flow.para(c.law_source, margin + 4 * k, y + 1 * gap, inner - 4 * k, 9,
                  "regular", MUTED)
    y = section(c.reward_title, y + 4 * gap)
    y = flow.para(c.reward, margin + 4 * k, y, inner - 4 * k, 11, "regular", INK, 1.4)

    # The footer stays at the foot of the page, at a fixed size.
    footer = _Flow(page, faces, k)
    size = 8.0 * k
    lines = len(wrap(c.footer, faces["regular"], size, inner))
    footer_top = height - 10 * k - lines * size * PT * 1.35
    footer.para(c.footer, margin, footer_top, inner, 8.0, "regular", MUTED)
    return page, y + 6 * k <= footer_top


# ---------------------------------------------------------------------------- output


def _qr_geometry(block: QRBlock) -> tuple[float, float, float, list[tuple[int, int, int]]]:
    modules, runs = qr.runs(block.url)
    unit = block.size / (modules + 8)  # four modules of quiet zone on every side
    return block.x + 4 * unit, block.y + 4 * unit, unit, runs


def render_pdf(page: Page, faces: dict[str, Face], title: str, language: str) -> bytes:
    pdf = FPDF(unit="mm", format=(page.width, page.height))
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.set_title(title)
    pdf.set_lang("zh-CN" if language == "zh_CN" else "en")
    pdf.set_creator("Chuishao")
    pdf.set_producer("Chuishao")
    pdf.set_creation_date(dt.datetime.combine(utcnow().date(), dt.time(), dt.UTC))
    for font in faces.values():
        pdf.add_font(font.key, fname=str(font.path), collection_font_number=font.index)
    pdf.add_page()
    for box in page.boxes:
        pdf.set_fill_color(*box.color)
        pdf.rect(box.x, box.y, box.w, box.h, style="F")
    pdf.set_fill_color(*INK)
    for block in page.qr:
        x0, y0, unit, runs = _qr_geometry(block)
        for row, col, length in runs:
            pdf.rect(x0 + col * unit, y0 + row * unit, length * unit, unit, style="F")
    for run in page.runs:
        pdf.set_font(run.face, size=run.size)
        pdf.set_text_color(*run.color)
        pdf.text(run.x, run.y, run.text)
    return bytes(pdf.output())


def _hex(color: tuple[int, int, int]) -> str:
    red, green, blue = color
    return f"#{red:02x}{green:02x}{blue:02x}"


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def render_svg(page: Page, faces: dict[str, Face], title: str, language: str) -> bytes:
    defs: dict[str, str] = {}
    body: list[str] = []
    for box in page.boxes:
        body.append(f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.w)}" '
                    f'height="{_num(box.h)}" fill="{_hex(box.color)}"/>')
    for block in page.qr:
        x0, y0, unit, runs = _qr_geometry(block)
        path = "".join(f"M{_num(x0 + col * unit)} {_num(y0 + row * unit)}h{_num(length * unit)}"
                       f"v{_num(unit)}h{_num(-length * unit)}z" for row, col, length in runs)
        body.append(f'<rect x="{_num(block.x)}" y="{_num(block.y)}" width="{_num(block.size)}" '
                    f'height="{_num(block.size)}" fill="#fff"/>')
        body.append(f'<path d="{path}" fill="{_hex(INK)}" shape-rendering="crispEdges" '
                    f'data-url={quoteattr(block.url)}/>')
    for run in page.runs:
        font = faces[run.face]
        glyphs = font.font.getGlyphSet()
        scale = run.size * PT / font.upm
        x = run.x
        uses = []
        for char in run.text:
            name = font.glyph_names.get(ord(char), ".notdef")
            ref = f"{font.key}-{font.font.getGlyphID(name)}"
            if ref not in defs:
                pen = SVGPathPen(glyphs)
                glyphs[name].draw(pen)
                defs[ref] = pen.getCommands()
            if defs[ref]:
                uses.append(f'<use href="#{ref}" transform="translate({_num(x)} {_num(run.y)}) '
                            f'scale({scale:.6f} {-scale:.6f})"/>')
            x += font.advance(char) * run.size * PT
        body.append(f'<g fill="{_hex(run.color)}" role="img" aria-label={quoteattr(run.text)}>'
                    + "".join(uses) + "</g>")
    glyph_defs = "".join(f'<path id="{ref}" d="{d}"/>' for ref, d in defs.items() if d)
    lang = "zh-CN" if language == "zh_CN" else "en"
    svg = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<svg xmlns="http://www.w3.org/2000/svg" lang="{lang}" '
           f'width="{_num(page.width)}mm" height="{_num(page.height)}mm" '
           f'viewBox="0 0 {_num(page.width)} {_num(page.height)}">'
           f"<title>{escape(title)}</title>"
           f'<rect width="100%" height="100%" fill="#fff"/>'
           f"<defs>{glyph_defs}</defs>{''.join(body)}</svg>\n")
    return svg.encode("utf-8")


@dataclass(frozen=True)
class Poster:
    data: bytes
    media_type: str
    filename: str


def check_choice(size: str, fmt: str) -> None:
    if size not in SIZES:
        raise InvalidInput(N_("Choose a poster size: A4 or A3."), code="size")
    if fmt not in FORMATS:
        raise InvalidInput(N_("Choose a poster format: PDF or SVG."), code="format")


def render_poster(content: PosterContent, slug: str, *, size: str, fmt: str) -> Poster:
    """Lay out and draw: no database, a second or more of CPU (run it off the event loop)."""
    check_choice(size, fmt)
    draw = render_pdf if fmt == "pdf" else render_svg
    # One poster at a time: parsing and subsetting the CJK font takes some 200 MB for a moment.
    with _RENDERING:
        faces = {key: face(key) for key in _FACES}
        page = layout(content, size, faces)
        data = draw(page, faces, f"{content.title} {content.channel_name}", content.language)
    return Poster(data, FORMATS[fmt], f"poster-{slug}-{size}-{content.language}.{fmt}")


def make_poster(session: Session, settings: Settings, channel: Channel, *, size: str,
                fmt: str, language: str, translate: Callable[..., str],
                policy_id: str | None = None) -> Poster:
    check_choice(size, fmt)
    content = gather(session, settings, channel, language, translate, policy_id=policy_id)
    return render_poster(content, channel.slug, size=size, fmt=fmt)
