"""Every user-facing string is translated into both languages."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.extract import extract_from_dir

from service.platform.i18n import LANGUAGES, Catalogs, Listed, Message, negotiate, source_text
from tests.console import sign_in
from tests.domain.test_reward_lifecycle import approved_reward, make_people

ROOT = Path(__file__).resolve().parents[2]


def _extracted() -> set[str]:
    method_map = [
        ("service/**.py", "python"),
        ("reviewer/**.py", "python"),
        ("templates/**.html", "jinja2"),
    ]
    keywords = {"_": None, "N_": None, "gettext": None}
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map=method_map, keywords=keywords,
    ):
        if isinstance(message, str) and message:
            found.add(message)
    return found


def test_every_string_has_both_languages() -> None:
    catalogs = Catalogs.load()
    extracted = _extracted()
    assert len(extracted) > 30  # the extractor really found the strings
    for language in LANGUAGES:
        missing = sorted(extracted - set(catalogs.by_language[language]))
        assert not missing, f"{language} lacks translations for: {missing}"


def test_chinese_catalog_is_really_chinese() -> None:
    catalogs = Catalogs.load()
    same = [mid for mid, text in catalogs.by_language["zh_CN"].items()
            if text == mid and any(c.isalpha() for c in mid)]
    assert not same, f"zh_CN entries left in English: {same}"


def test_placeholders_survive_translation() -> None:
    import re

    catalogs = Catalogs.load()
    for language in LANGUAGES:
        for message_id, text in catalogs.by_language[language].items():
            assert set(re.findall(r"{\w+}", message_id)) == set(re.findall(r"{\w+}", text)), (
                language, message_id)


def test_a_message_in_a_parameter_is_translated_with_the_sentence() -> None:
    catalogs = Catalogs({"zh_CN": {"{what}: {items}": "{what}：{items}", "the fine": "罚款金额",
                                   ", ": "、", "major": "重大"}})
    params = {"what": Message("the fine"), "items": Listed((Message("major"), "x"))}
    assert catalogs.gettext("zh_CN")("{what}: {items}", **params) == "罚款金额：重大、x"
    assert source_text("{what}: {items}", **params) == "the fine: major, x"


def test_negotiate() -> None:
    assert negotiate(None, "zh_CN") == "zh_CN"
    assert negotiate("en-US,en;q=0.9", "zh_CN") == "en"
    assert negotiate("zh-TW,zh;q=0.9,en;q=0.8", "en") == "zh_CN"
    assert negotiate("fr-FR, en;q=0.3", "zh_CN") == "en"
    assert negotiate("fr-FR", "zh_CN") == "zh_CN"
    assert negotiate("en;q=0, zh;q=0.5", "en") == "zh_CN"
    assert negotiate("en;q=bogus", "zh_CN") == "zh_CN"


# ---------------------------------------------------------------------------- rendered pages

# Codes the console stores and must never show as such: roles, channel kinds, statuses and
# states, event kinds, reward statuses. Matched as whole words in the text a person reads
# (not in attributes, scripts or <code>), so "reviewer0" as a username is not a hit.
RAW_CODES = (
    "reviewer", "approver", "auditor", "finance", "admin", "enterprise", "bureau",
    "not_accepted", "verifying", "rectifying", "rectified", "in_progress",
    "awaiting_acceptance", "reward_proposed", "reward_offered", "reward_rejected",
    "reward_claimed", "reward_paid", "rectification_linked", "reporter_activity",
    "proposed", "approved", "rejected", "claimed", "paid", "lapsed", "general", "major",
)


class _Text(HTMLParser):
    """The text nodes a person reads: no scripts, styles, <code>, <title> or attributes."""

    SKIP = {"script", "style", "code", "title", "template"}
    # The stored calculation record, shown as the JSON `chuishao reward verify` reads.
    RECORDS = {"calculation-json"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.skipping: list[str] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP or dict(attrs).get("id") in self.RECORDS:
            self.depth += 1
            self.skipping.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def raw_codes(html: str, language: str) -> list[str]:
    """The codes found; on an English page "reviewer" or "paid" are words, so there only the
    snake_case codes count."""
    text = visible_text(html)
    codes = RAW_CODES if language != "en" else [c for c in RAW_CODES if "_" in c]
    return [code for code in codes if re.search(rf"(?<![\w.@-]){code}(?![\w.@-])", text)]


def test_console_pages_show_no_raw_codes_in_either_language(  # type: ignore[no-untyped-def]
        client, session, settings) -> None:
    """Every console page, rendered from a real installation with a case that went through
    review and a reward, in zh-CN and English: no stored code reaches the reader."""
    people = make_people(session, settings)
    case, _, record = approved_reward(client, session, people)
    pages = [
        (people.admin, ["/console/admin", "/console/admin/invitations",
                       "/console/admin/channels", "/console/reward-policies",
                       "/console/account"]),
        (people.reviewer, ["/console/cases", f"/console/cases/{case.id}",
                          f"/console/cases/{case.id}/reward", "/console/rewards",
                          f"/console/rewards/{record.id}", "/console/rectifications",
                          "/console/ledger", "/console/stats"]),
        (people.auditor, ["/console/audit", "/console/rewards",
                          f"/console/rewards/{record.id}"]),
        (people.finance, ["/console/rewards", f"/console/rewards/{record.id}"]),
    ]
    found = {}
    for person, paths in pages:
        sign_in(client, session, settings, person.user)
        for language in ("zh-CN", "en"):
            for path in paths:
                page = client.get(path, headers={"Accept-Language": language})
                assert page.status_code == 200, (path, page.status_code)
                hits = raw_codes(page.text, language)
                if hits:
                    found[(person.user.username, language, path)] = hits
                # The staff timeline speaks about the reporter, never to them.
                if language == "zh-CN" and path == f"/console/cases/{case.id}":
                    timeline = visible_text(page.text[page.text.index('id="timeline"'):])
                    assert "您" not in timeline, timeline
    assert not found, "\n".join(f"{k}: {v}" for k, v in found.items())
