"""Reward policy files: the shipped ones load, and every kind of mistake is refused with the
file, the right line and a reason in English and Chinese."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from service import cli
from service.domain.rewards import PolicyError, load_policy, parse_policy, shipped_policy_ids
from service.domain.rewards.policy import (
    CatalogueRule,
    PercentageRule,
    PerDeathRule,
    TiersRule,
    load_policy_file,
    locate_keys,
)
from tests.translations import chinese, english

HEAD = """\
id = "test"
version = 1
title_zh = "测试"
title_en = "Test"
source = "tests"
effective = 2024-01-01
currency = "CNY"
"""

PERCENT = """\
[[rules]]
kind = "percentage_of_fine"
rate = 15
floor = 3000
cap = 300000
at_least_floor = true
"""


def refused(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.toml")
    return info.value


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing needle: what the error must point at."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- shipped policies ----------------------------------------------------------------------


def test_shipped_policies_load() -> None:
    assert shipped_policy_ids() == ["enterprise-internal", "national-2018"]
    national = load_policy("national-2018")
    assert (national.id, national.version, national.currency) == ("national-2018", 1, "CNY")
    assert national.claim_window_days == 60
    assert str(national.effective) == "2018-01-04"
    kinds = [rule.kind for rule in national.rules]
    assert kinds == ["first_valid_only", "percentage_of_fine", "percentage_of_fine",
                     "per_death", "joint_split"]
    hazard = national.rules[1]
    assert isinstance(hazard, PercentageRule)
    assert (hazard.rate, hazard.floor_fen, hazard.cap_fen, hazard.at_least_floor) == (
        Fraction(15), 300_000, 30_000_000, True)
    death = national.rules[3]
    assert isinstance(death, PerDeathRule)
    assert death.amounts == {"general": 3_000_000, "larger": 4_000_000, "major": 5_000_000,
                             "especially_major": 6_000_000}
    assert death.cap_fen == 30_000_000
    assert national.ceiling_fen() == 30_000_000
    internal = load_policy("enterprise-internal")
    assert {"hazard", "violation", "near-miss"} == set(internal.case_types())


def test_unknown_shipped_policy() -> None:
    with pytest.raises(PolicyError) as info:
        load_policy("no-such")
    assert "national-2018" in english(info.value.reason)
    assert "没有内置政策" in chinese(info.value.reason)
    with pytest.raises(PolicyError):
        load_policy("../etc/passwd")


def test_digest_ignores_line_endings(tmp_path: Path) -> None:
    text = HEAD + PERCENT
    unix, dos = tmp_path / "a.toml", tmp_path / "b.toml"
    unix.write_bytes(text.encode())
    dos.write_bytes(text.replace("\n", "\r\n").encode())
    assert load_policy_file(unix).digest == load_policy_file(dos).digest


def test_every_rule_kind_parses() -> None:
    policy = parse_policy(HEAD + """
[[rules]]
kind = "percentage_of_fine"
case_types = ["hazard"]
grades = ["general"]
rate = "12.5"

[[rules]]
kind = "catalogue"
[rules.items.fire-exit]
amount = "500.50"
title_zh = "堵塞安全出口"
[rules.items.mine]
min = 300000
max = 500000

[[rules]]
kind = "tiers_by_grade"
case_types = ["hazard"]
tiers = { major = [1000, 2000, 3000], especially_major = [4000, 5000] }

[[rules]]
kind = "per_death"
case_types = ["concealed_accident"]
amounts = { general = 30000 }
max_deaths = { general = 2 }

[[rules]]
kind = "insider_uplift"
rate = 20
minimum = 1000
max_uplift = 200000
cap = 500000

[[rules]]
kind = "person_cap"
per_case = 500
per_period = 1000
period = "month"

[[rules]]
kind = "first_valid_only"

[[rules]]
kind = "joint_split"
""", "all.toml")
    assert [rule.kind for rule in policy.rules] == [
        "percentage_of_fine", "catalogue", "tiers_by_grade", "per_death", "insider_uplift",
        "person_cap", "first_valid_only", "joint_split"]
    percent = policy.rules[0]
    assert isinstance(percent, PercentageRule) and percent.rate == Fraction(25, 2)
    assert percent.rate_text == "12.5"
    catalogue = policy.rules[1]
    assert isinstance(catalogue, CatalogueRule)
    assert catalogue.items["fire-exit"].amount_fen == 50_050
    assert catalogue.case_types == frozenset({"fire-exit", "mine"})
    tiers = policy.rules[2]
    assert isinstance(tiers, TiersRule) and tiers.tiers["major"] == (100_000, 200_000, 300_000)
    assert [rule.number for rule in policy.rules] == list(range(1, 9))
    assert policy.rules[0].line == len(HEAD.splitlines()) + 2  # its [[rules]] header


# --- validation: each case names the right line ----------------------------------------------

CASES = [
    # (description, text, the text on the line the error must point at, words in the message)
    ("unknown top-level key", HEAD + "colour = \"red\"\n" + PERCENT, "colour", "unknown key"),
    ("unknown rule key", HEAD + PERCENT.replace("cap = 300000", "cap = 300000\nmaximum = 5"),
     "maximum", "unknown key"),
    ("version not a number", HEAD.replace("version = 1", "version = \"one\"") + PERCENT,
     "version", "whole number"),
    ("version a bool", HEAD.replace("version = 1", "version = true") + PERCENT,
     "version", "whole number"),
    ("negative amount", HEAD + PERCENT.replace("floor = 3000", "floor = -3000"),
     "floor", "negative"),
    ("negative amount as text", HEAD + PERCENT.replace("floor = 3000", "floor = \"-3000\""),
     "floor", "negative"),
    ("float amount", HEAD + PERCENT.replace("cap = 300000", "cap = 300000.5"),
     "cap", "floating-point"),
    ("three decimals", HEAD + PERCENT.replace("cap = 300000", "cap = \"1.005\""),
     "cap", "at most 2 decimals"),
    ("absurd amount", HEAD + PERCENT.replace("cap = 300000", "cap = 100000000000"),
     "cap", "absurdly large"),
    ("floor above cap", HEAD + PERCENT.replace("floor = 3000", "floor = 400000"),
     "floor", "greater than cap"),
    ("rate above 100", HEAD + PERCENT.replace("rate = 15", "rate = 150"), "rate", "0 and 100"),
    ("rate below 0", HEAD + PERCENT.replace("rate = 15", "rate = -1"), "rate", "0 and 100"),
    ("rate negative text", HEAD + PERCENT.replace("rate = 15", "rate = \"-1.5\""), "rate",
     "0 and 100"),
    ("rate float", HEAD + PERCENT.replace("rate = 15", "rate = 0.15"), "rate", "floating"),
    ("rate not a number", HEAD + PERCENT.replace("rate = 15", "rate = \"15%\""), "rate",
     "not a percentage"),
    ("unknown rule kind", HEAD + PERCENT.replace("percentage_of_fine", "lottery"), "lottery",
     "unknown rule kind"),
    ("rule without kind", HEAD + PERCENT.replace("kind = \"percentage_of_fine\"\n", ""),
     "[[rules]]", "has no kind"),
    ("missing rate", HEAD + PERCENT.replace("rate = 15\n", ""), "[[rules]]",
     "missing required key 'rules[1].rate'"),
    ("missing top-level title", HEAD.replace("title_en = \"Test\"\n", "") + PERCENT, "id =",
     "missing required key 'title_en'"),
    ("floor without switch", HEAD + PERCENT.replace("at_least_floor = true\n", ""), "floor",
     "at_least_floor"),
    ("switch without floor", HEAD + PERCENT.replace("floor = 3000\n", ""), "at_least_floor",
     "needs a floor"),
    ("switch not bool", HEAD + PERCENT.replace("at_least_floor = true", "at_least_floor = 1"),
     "at_least_floor", "true or false"),
    ("currency", HEAD.replace("\"CNY\"", "\"USD\"") + PERCENT, "currency", "CNY"),
    ("effective not a date", HEAD.replace("2024-01-01", "\"2024\"") + PERCENT, "effective",
     "date"),
    ("bad id", HEAD.replace("\"test\"", "\"Test Policy\"") + PERCENT, "id =", "lower-case"),
    ("no rules", HEAD + "rules = []\n", "rules = []", "non-empty"),
    ("no base rule", HEAD + "[[rules]]\nkind = \"joint_split\"\n", "[[rules]]",
     "no rule that sets an amount"),
    ("claim window zero", HEAD + "claim_window_days = 0\n" + PERCENT, "claim_window_days",
     "between 1"),
    ("unknown grade filter", HEAD + PERCENT + "grades = [\"huge\"]\n", "grades",
     "unknown grade"),
    ("bad case type name", HEAD + PERCENT + "case_types = [\"Fire Exit\"]\n", "case_types",
     "not a case type"),
    ("empty case types", HEAD + PERCENT + "case_types = []\n", "case_types", "non-empty"),
    ("overlapping base rules", HEAD + PERCENT + PERCENT, "[[rules]]",
     "rule 2 (percentage_of_fine) overlaps rule 1"),
    ("catalogue item with both", HEAD + """
[[rules]]
kind = "catalogue"
[rules.items.fire]
amount = 200
min = 100
max = 300
""", "[rules.items.fire]", "either amount or both"),
    ("catalogue band min above max", HEAD + """
[[rules]]
kind = "catalogue"
[rules.items.fire]
min = 500
max = 300
""", "min = 500", "min is greater than max"),
    ("catalogue item unknown key", HEAD + """
[[rules]]
kind = "catalogue"
[rules.items.fire]
amount = 200
note = "x"
""", "note", "unknown key"),
    ("tiers empty", HEAD + """
[[rules]]
kind = "tiers_by_grade"
[rules.tiers]
general = []
""", "general = []", "non-empty list"),
    ("tiers negative in inline table", HEAD + """
[[rules]]
kind = "tiers_by_grade"
tiers = { general = [200, -400] }
""", "tiers =", "negative"),
    ("tiers unknown grade", HEAD + """
[[rules]]
kind = "tiers_by_grade"
[rules.tiers]
general = [200]
medium = [300]
""", "medium", "unknown grade"),
    ("per death max without amount", HEAD + """
[[rules]]
kind = "per_death"
[rules.amounts]
general = 30000
[rules.max_deaths]
major = 29
""", "major = 29", "has no amount"),
    ("uplift minimum above max", HEAD + PERCENT + """
[[rules]]
kind = "insider_uplift"
rate = 20
minimum = 1000
max_uplift = 500
""", "minimum = 1000", "minimum is greater than max_uplift"),
    ("person cap empty", HEAD + PERCENT + """
[[rules]]
kind = "person_cap"
""", "[[rules]]", "per_case, per_period"),
    ("period without cap", HEAD + PERCENT + """
[[rules]]
kind = "person_cap"
per_case = 500
period = "month"
""", "period = ", "period needs per_period"),
    ("per period without period", HEAD + PERCENT + """
[[rules]]
kind = "person_cap"
per_period = 1000
""", "per_period", "needs a period"),
    ("unknown period", HEAD + PERCENT + """
[[rules]]
kind = "person_cap"
per_period = 1000
period = "fortnight"
""", "fortnight", "unknown period"),
    ("key on a gate rule", HEAD + PERCENT + """
[[rules]]
kind = "first_valid_only"
rate = 5
""", "rate = 5", "unknown key"),
    ("two joint rules", HEAD + PERCENT + """
[[rules]]
kind = "joint_split"

[[rules]]
kind = "joint_split"
""", "[[rules]]", "overlaps"),
]


@pytest.mark.parametrize(("text", "needle", "words"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_invalid_policy_names_file_line_and_reason(text: str, needle: str, words: str) -> None:
    error = refused(text)
    if needle == "[[rules]]":
        # the header of the rule concerned: the last [[rules]] for overlaps and gates
        expected = [i for i, line in enumerate(text.splitlines(), 1) if line == "[[rules]]"]
        assert error.line in expected
    else:
        assert error.line == line_of(text, needle), (error.line, str(error))
    en, zh = english(error.reason), chinese(error.reason)
    assert words in en
    assert zh and zh != en
    assert str(error) == english(error.located) == f"p.toml, line {error.line}: {en}"
    assert chinese(error.located) == f"p.toml 第 {error.line} 行：{zh}"


def test_overlap_points_at_the_later_rule() -> None:
    text = HEAD + PERCENT + "\n" + PERCENT
    error = refused(text)
    headers = [i for i, line in enumerate(text.splitlines(), 1) if line == "[[rules]]"]
    assert error.line == headers[1]


def test_missing_rule_field_points_at_its_header() -> None:
    text = HEAD + PERCENT + "\n[[rules]]\nkind = \"flag_bonus\"\namount = 10\n"
    error = refused(text)
    headers = [i for i, line in enumerate(text.splitlines(), 1) if line == "[[rules]]"]
    assert error.line == headers[1]
    assert "rules[2].flag" in english(error.reason) and "缺少必填的键" in chinese(error.reason)


def test_syntax_error_keeps_tomllib_position() -> None:
    text = HEAD + PERCENT + "cap = = 5\n"
    error = refused(text)
    assert error.line == line_of(text, "cap = = 5")
    assert "column" in english(error.reason) and "TOML 语法错误" in chinese(error.reason)


def test_duplicate_key_is_a_syntax_error_with_its_line() -> None:
    text = HEAD + PERCENT + "rate = 20\n"
    error = refused(text)
    assert error.line == len(text.splitlines())


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_file(tmp_path / "missing.toml")
    assert "missing.toml" in str(info.value) and "无法读取文件" in chinese(info.value.reason)


def test_distinct_grades_do_not_overlap() -> None:
    policy = parse_policy(HEAD + """
[[rules]]
kind = "percentage_of_fine"
grades = ["general"]
rate = 12
cap = 6000

[[rules]]
kind = "percentage_of_fine"
grades = ["major"]
rate = 15
cap = 300000
""")
    assert len(policy.base_rules) == 2


# --- the line locator ----------------------------------------------------------------------


def test_locate_keys_follows_tables_inline_tables_and_strings() -> None:
    text = '''id = "x"
note = """
kind = "not a key"
"""
[[rules]]
kind = "a"
[rules.items.fire]
amount = 3
[[rules]]
kind = "b"
amounts = { general = 1, "larger" = 2 }
"quoted key" = 1
dotted.key = 2
'''
    lines = locate_keys(text)
    assert lines[("note",)] == 2
    assert ("kind",) not in lines
    assert lines[("rules", 0)] == 5
    assert lines[("rules", 0, "items")] == 7
    assert lines[("rules", 0, "items", "fire", "amount")] == 8
    assert lines[("rules", 1, "kind")] == 10
    assert lines[("rules", 1, "amounts", "larger")] == 11
    assert lines[("rules", 1, "quoted key")] == 12
    assert lines[("rules", 1, "dotted", "key")] == 13


# --- chuishao reward check -------------------------------------------------------------------


def test_cli_check_accepts_shipped_policies(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path("service/domain/rewards/policies/national-2018.toml")
    assert cli.main(["reward", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: national-2018 version 1, 5 rules, sha256 ")
    assert load_policy("national-2018").digest in out


def test_cli_check_prints_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEAD + PERCENT.replace("rate = 15", "rate = 150")
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert cli.main(["reward", "check", str(path)]) == 2
    err = capsys.readouterr().err
    line = line_of(text, "rate = 150")
    assert f"bad.toml, line {line}: rules[1].rate must be between 0 and 100" in err
    assert f"bad.toml 第 {line} 行：" in err
    assert f"{line:5d} | rate = 150" in err


def test_cli_check_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(HEAD + "[[rules]\n", encoding="utf-8")
    assert cli.main(["reward", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"broken.toml, line {len(HEAD.splitlines()) + 1}" in err
