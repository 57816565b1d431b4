"""Policy shapes added after the first record schema: named flags, a higher cap for insiders,
an uplift in percentage points, per-person caps on joint reports, a default rule with
exceptions; the record schemas /1 and /2; warnings on odd policies; the wording of refusals.

Every expected amount is computed by hand in the comment beside it (fen = yuan × 100).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import cli
from service.domain.reward_policies import excess_of
from service.domain.rewards import (
    PolicyError,
    RewardCalculation,
    RewardInputError,
    RewardInputs,
    calculate,
    load_policy,
    load_policy_file,
    parse_policy,
    recompute,
)
from service.domain.rewards.calc import SCHEMA_1, SCHEMA_2
from tests.translations import chinese, english

FIXTURE = Path(__file__).parents[1] / "fixtures" / "v0.1"

HEAD = """\
id = "shapes"
version = 1
title_zh = "测试"
title_en = "Test"
source = "tests"
effective = 2024-01-01
currency = "CNY"
"""

SHAPES_BODY = """\
[flags.proposed_fix]
title_zh = "举报人同时提出了整改方案"
title_en = "The reporter also proposed the fix"

[[rules]]
kind = "first_valid_only"

[[rules]]
kind = "percentage_of_fine"
default = true
rate = 15
floor = 3000
at_least_floor = true
cap = 300000
insider_cap = 500000

[[rules]]
kind = "catalogue"
[rules.items.fire-exit]
amount = 500
title_zh = "堵塞安全出口"
title_en = "Blocked fire exit"

[[rules]]
kind = "insider_uplift"
case_types = ["hazard", "violation"]
points = 10

[[rules]]
kind = "flag_bonus"
flag = "proposed_fix"
amount = 1000

[[rules]]
kind = "person_cap"
per_case = 200000
per_share = true

[[rules]]
kind = "joint_split"
"""
SHAPES = parse_policy(HEAD + SHAPES_BODY, "shapes.toml")


def calc(case_type: str = "hazard", fine_yuan: int | None = None, **more: Any
         ) -> RewardCalculation:
    return calculate(SHAPES, RewardInputs(
        case_type, fine_fen=fine_yuan * 100 if fine_yuan is not None else None, **more))


def refused(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(HEAD + text, "p.toml")
    return info.value


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate((HEAD + text).splitlines(), 1) if needle in line)


# --- default rule and exceptions -------------------------------------------------------------


def test_a_default_rule_with_an_exception_for_a_named_case_type() -> None:
    assert SHAPES.format == 2 and list(SHAPES.flags) == ["proposed_fix"]
    # The exception: a fixed 500 yuan for a blocked fire exit, though rule 2 takes every type.
    fire = calc("fire-exit")
    assert fire.amount_fen == 50_000
    base = fire.steps[1]
    assert base.rule == 3 and "适用例外规则（不适用第 2 条默认规则）" in base.zh
    assert "instead of the default rule 2" in base.en
    # Any other type falls to the default: 15 % of 100 000 yuan = 15 000 yuan.
    other = calc("violation", 100_000)
    assert other.amount_fen == 1_500_000 and other.steps[1].rule == 2
    assert other.steps[1].zh.startswith("适用默认规则")


def test_without_default_the_same_rules_are_still_refused_as_overlapping() -> None:
    body = SHAPES_BODY.replace("default = true\n", "")
    error = refused(body)
    assert error.line == line_of(body, 'kind = "catalogue"') - 1
    en, zh = english(error.reason), chinese(error.reason)
    assert "overlaps rule 2" in en and "default = true" in en
    assert "按目录（catalogue）" in zh and "按罚款比例（percentage_of_fine）" in zh


def test_two_defaults_that_meet_are_refused() -> None:
    body = SHAPES_BODY.replace('kind = "catalogue"\n', 'kind = "catalogue"\ndefault = true\n')
    assert "overlaps rule 2" in english(refused(body).reason)


# --- a higher cap for insiders, and an uplift in percentage points ---------------------------


def test_insider_cap_is_reachable_and_points_raise_the_rate() -> None:
    # Not an insider: 15 % of 3 000 000 = 450 000, capped at 300 000 yuan.
    outsider = calc(fine_yuan=3_000_000, joint_reporters=3)
    assert outsider.amount_fen == 30_000_000
    assert outsider.shares_fen == (10_000_000, 10_000_000, 10_000_000)
    # Insider: (15 + 10) % of 3 000 000 = 750 000, capped at the insider cap of 500 000 yuan;
    # three shares of 16 666 666 fen, the 2 fen left to the first signatory.
    insider = calc(fine_yuan=3_000_000, joint_reporters=3, insider=True)
    assert insider.amount_fen == 50_000_000
    assert insider.shares_fen == (16_666_668, 16_666_666, 16_666_666)
    base = insider.steps[1]
    assert "罚款 3 000 000.00 元 × 25%（15% 加内部人员举报 10 个百分点）= 750 000.00 元" in base.zh
    assert "超过内部人员最高奖励 500 000.00 元" in base.zh
    uplift = insider.steps[2]
    assert uplift.kind == "insider_uplift" and uplift.amount_fen == 50_000_000
    assert "比例提高 10 个百分点，已计入第 2 条规则" in uplift.zh
    # Between the two caps: 25 % of 1 800 000 = 450 000 yuan, above 300 000, within 500 000.
    between = calc(fine_yuan=1_800_000, insider=True, joint_reporters=3)
    assert between.amount_fen == 45_000_000
    assert "但内部人员最高奖励为 500 000.00 元：未超过" in between.steps[1].zh


def test_points_are_exact_and_rounded_once() -> None:
    # 25 % of 12 345.67 yuan = 3 086.4175 yuan -> 3 086.42 (half up, once), above the floor
    # of 3 000. As a 66.67 % uplift on 15 % the rate itself would have had to be rounded.
    record = calculate(SHAPES, RewardInputs("hazard", fine_fen=1_234_567, insider=True))
    assert record.amount_fen == 308_642
    assert "（四舍五入到分）" in record.steps[1].zh


def test_points_with_decimals_add_exactly() -> None:
    body = SHAPES_BODY.replace("rate = 15\n", 'rate = "12.5"\n').replace(
        "points = 10", 'points = "0.25"')
    policy = parse_policy(HEAD + body, "p.toml")
    # 12.75 % of 200 000 yuan = 25 500 yuan.
    record = calculate(policy, RewardInputs("hazard", fine_fen=20_000_000, insider=True))
    assert record.amount_fen == 2_550_000 and "× 12.75%" in record.steps[1].zh


# --- named flags ---------------------------------------------------------------------------


def test_a_flag_bonus_for_a_reporter_who_proposed_the_fix() -> None:
    # 15 % of 100 000 = 15 000 yuan; the declared flag adds 1 000 yuan.
    plain = calc(fine_yuan=100_000)
    assert plain.amount_fen == 1_500_000
    assert "不符合“举报人同时提出了整改方案”（proposed_fix）：不加奖" in plain.steps[3].zh
    bonus = calc(fine_yuan=100_000, flags=("proposed_fix",))
    assert bonus.amount_fen == 1_600_000
    step = bonus.steps[3]
    assert step.kind == "flag_bonus" and step.applied and step.amount_fen == 1_600_000
    assert "“举报人同时提出了整改方案”（proposed_fix）加奖 1 000.00 元" in step.zh
    assert '"The reporter also proposed the fix" (proposed_fix): 1 000.00 yuan' in step.en
    assert bonus.inputs.flags == ("proposed_fix",)


def test_a_flag_bonus_as_a_rate_with_its_cap_says_what_was_added() -> None:
    body = SHAPES_BODY.replace("amount = 1000\n", "rate = 10\ncap = 16000\n")
    policy = parse_policy(HEAD + body, "p.toml")
    # 15 000 + 10 % = 16 500, capped at 16 000: 1 000 yuan added.
    record = calculate(policy, RewardInputs("hazard", fine_fen=10_000_000,
                                            flags=("proposed_fix",)))
    assert record.amount_fen == 1_600_000
    assert "实际加奖 1 000.00 元" in record.steps[3].zh


def test_an_undeclared_flag_is_refused_not_ignored() -> None:
    with pytest.raises(RewardInputError) as info:
        calc(fine_yuan=100_000, flags=("proposed_fxi",))
    assert "declares no flag 'proposed_fxi'" in english(info.value.reason)
    assert "没有声明附加条件 'proposed_fxi'" in chinese(info.value.reason)
    with pytest.raises(RewardInputError):
        calculate(load_policy("national-2018"), RewardInputs(
            "hazard", grade="major", fine_fen=100, flags=("proposed_fix",)))


# --- per-person caps on joint reports ------------------------------------------------------


def test_per_share_caps_apply_to_each_reporter_after_the_split() -> None:
    # Insider, 25 % of 3 000 000 = 750 000 -> insider cap 500 000; two reporters of
    # 250 000 each, each capped at 200 000: 400 000 in all.
    record = calc(fine_yuan=3_000_000, insider=True, joint_reporters=2)
    assert record.shares_fen == (20_000_000, 20_000_000) and record.amount_fen == 40_000_000
    last = record.steps[-1]
    assert last.kind == "person_cap" and last.applied
    assert "2 人的份额降至 200 000.00 元，合计 400 000.00 元" in last.zh
    # The same cap without per_share applies to the total first: 200 000 shared by two.
    total = parse_policy(HEAD + SHAPES_BODY.replace("per_share = true\n", ""), "p.toml")
    before = calculate(total, RewardInputs("hazard", fine_fen=300_000_000, insider=True,
                                           joint_reporters=2))
    assert before.shares_fen == (10_000_000, 10_000_000)


# --- schemas: /1 kept byte for byte, /2 only when needed -----------------------------------


def _fixture_records() -> list[tuple[str, str]]:
    # immutable: read without creating -wal/-shm files beside the fixture
    db = sqlite3.connect(f"file:{FIXTURE / 'chuishao.sqlite3'}?immutable=1", uri=True)
    try:
        return list(db.execute("select policy_id, calculation from reward_records"))
    finally:
        db.close()


def test_first_version_records_recompute_and_are_written_the_same_today() -> None:
    rows = _fixture_records()
    assert len(rows) == 4
    for policy_id, text in rows:
        policy = (load_policy_file(FIXTURE / "xiangyang-2024.toml")
                  if policy_id == "xiangyang-2024" else load_policy(policy_id))
        record = RewardCalculation.from_json(text)
        assert record.schema == SCHEMA_1 and record.inputs.flags == ()
        assert recompute(record, policy) == []
        # The same inputs today give the same record, byte for byte.
        assert calculate(policy, record.inputs).to_json() == text
        assert "flags" not in json.loads(text)["inputs"]


def test_records_of_the_new_shapes_are_schema_2_and_round_trip() -> None:
    record = calc(fine_yuan=100_000, flags=("proposed_fix",))
    assert record.schema == SCHEMA_2
    data = json.loads(record.to_json())
    assert data["inputs"]["flags"] == ["proposed_fix"]
    again = RewardCalculation.from_json(record.to_json())
    assert again == record and recompute(again, SHAPES) == []
    # A /2 record without its flags field, or a /1 record with one, is malformed.
    del data["inputs"]["flags"]
    with pytest.raises(Exception, match="exactly the keys"):
        RewardCalculation.from_dict(data)
    old = json.loads(calculate(load_policy("national-2018"), RewardInputs(
        "hazard", grade="major", fine_fen=100)).to_json())
    old["inputs"]["flags"] = []
    with pytest.raises(Exception, match="exactly the keys"):
        RewardCalculation.from_dict(old)


UPLIFT_CAPPED = HEAD + """
[[rules]]
kind = "catalogue"
[rules.items.mine-gas]
min = 300000
max = 500000

[[rules]]
kind = "insider_uplift"
rate = 20
cap = 500000
"""


def test_a_capped_uplift_says_what_was_added_and_old_records_keep_their_words() -> None:
    policy = parse_policy(UPLIFT_CAPPED, "sd.toml")
    assert policy.format == 1
    inputs = RewardInputs("mine-gas", band_amount_fen=45_000_000, insider=True)
    record = calculate(policy, inputs)
    # 450 000 + 20 % = 540 000, capped at 500 000: 50 000 yuan added.
    assert record.amount_fen == 50_000_000 and record.schema == SCHEMA_2
    assert "超过加奖后上限 500 000.00 元，按 500 000.00 元计：实际加奖 50 000.00 元" in \
        record.steps[1].zh
    # The record the first version wrote for the same inputs (its words, schema /1).
    data = record.to_dict()
    data["schema"] = SCHEMA_1
    del data["inputs"]["flags"]
    data["steps"][1]["zh"] = ("内部人员举报加奖：450 000.00 元 × 20% = 90 000.00 元；超过加奖后上限 "
                              "500 000.00 元，按 500 000.00 元计；加奖后合计 500 000.00 元")
    data["steps"][1]["en"] = ("insider uplift: 20% of 450 000.00 yuan = 90 000.00 yuan; above "
                              "the cap with the uplift of 500 000.00 yuan: the cap with the "
                              "uplift is paid; total with the uplift 500 000.00 yuan")
    old = RewardCalculation.from_dict(data)
    assert recompute(old, policy) == []
    # The new words under the old schema are not what /1 wrote: a mismatch.
    forged = RewardCalculation.from_dict({**data, "steps": record.to_dict()["steps"]})
    assert recompute(forged, policy) == [
        "the recorded steps or their explanations differ from the recomputed ones"]
    # Without the cap cutting in, the record stays /1.
    assert calculate(policy, replace(inputs, band_amount_fen=30_000_000)).schema == SCHEMA_1


# --- approvals already over the period cap ---------------------------------------------------


def test_approvals_already_over_the_period_cap_are_flagged() -> None:
    internal = load_policy("enterprise-internal")
    # 1 500 yuan already approved this month against a cap of 1 000: 0 left, and it says so.
    record = calculate(internal, RewardInputs("hazard", grade="general",
                                              approved_in_period_fen=150_000))
    assert record.amount_fen == 0 and record.schema == SCHEMA_2
    assert "（已批准金额已超过上限 500.00 元）" in record.steps[-2].zh
    assert "approvals already exceed the cap by 500.00 yuan" in record.steps[-2].en
    [excess] = excess_of(record, internal, 0)
    assert (excess.cap_fen, excess.approved_fen, excess.over_fen) == (100_000, 150_000, 50_000)
    # 900 approved, 50 proposed: within the cap; within it still unless 980 are approved by
    # the time the approver decides: 980 + 50 = 1 030, 30 yuan over.
    within = calculate(internal, RewardInputs("hazard", grade="general",
                                              approved_in_period_fen=90_000))
    assert within.amount_fen == 5_000 and within.schema == SCHEMA_1
    assert excess_of(within, internal, 0) == []
    [late] = excess_of(within, internal, 98_000)
    assert late.over_fen == 3_000 and late.period == "month"


# --- validation of the new keys ------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "needle", "words"), [
    ("points = 10", "points = 10\ncap = 1000", "cap = 1000", "does not go with points"),
    ("points = 10", "points = 10\nrate = 5", "[[rules]]", "either rate or points"),
    ('case_types = ["hazard", "violation"]\npoints', "points", "points = 10",
     "has no rate"),
    ("points = 10", "points = 90", "points = 90", "above 100%"),
    ("insider_cap = 500000", "insider_cap = 200000", "insider_cap", "must not be below"),
    ("cap = 300000\n", "", "insider_cap", "it needs cap"),
    ('flag = "proposed_fix"', 'flag = "proposed_fxi"', 'flag = "proposed_fxi"',
     "not declared"),
    ("amount = 1000", "amount = 1000\nrate = 5", "[[rules]]", "either rate or amount"),
    ("[flags.proposed_fix]", "[flags.insider]", "[flags.insider]", "not insider"),
    ("per_share = true", "per_share = true\nper_period = 100\nperiod = \"month\"",
     "per_share = true", "per_share applies"),
    ('kind = "joint_split"', 'kind = "joint_split"\ndefault = false', "default = false",
     "unknown key 'rules[7].default'"),
])
def test_new_keys_are_validated_with_their_line(old: str, new: str, needle: str,
                                                words: str) -> None:
    body = SHAPES_BODY.replace(old, new, 1)
    assert body != SHAPES_BODY
    error = refused(body)
    lines = (HEAD + body).splitlines()
    if needle == "[[rules]]":
        # A rule-level refusal points at its header: the one just above the changed key.
        changed = line_of(body, new.splitlines()[-1])
        assert lines[error.line - 1] == "[[rules]]" and error.line < changed
    else:
        assert error.line == line_of(body, needle), (error.line, lines[error.line - 1])
    en, zh = english(error.reason), chinese(error.reason)
    assert words in en and zh and zh != en


# --- warnings, BOM -------------------------------------------------------------------------


ODD = HEAD + """
[[rules]]
kind = "tiers_by_grade"
case_types = ["hazard"]
[rules.tiers]
general = [200, 100, 300]
major = [0]

[[rules]]
kind = "percentage_of_fine"
case_types = ["violation"]
grades = ["major", "major ", "general"]
rate = 15
cap = " 3000"
"""


def test_odd_policies_load_with_warnings_on_their_lines() -> None:
    policy = parse_policy(ODD, "odd.toml")
    found = {(w.line, english(w.reason)) for w in policy.warnings}
    lines = ODD.splitlines()

    def at(needle: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if line.startswith(needle))

    assert (at("general = [200"), "tiers.general: tier 2 pays less than tier 1 (tiers are "
            "usually listed from the lowest amount up)") in found
    assert (at("major = [0]"), "rules[1].tiers.major[1] is zero") in found
    assert (at("grades ="), "rules[2].grades[2]: 'major ' has spaces around it") in found
    assert (at("grades ="), "rules[2].grades: 'major' is listed twice") in found
    assert (at("cap ="), "rules[2].cap: ' 3000' has spaces around it") in found
    assert len(policy.warnings) == 5
    zh = {chinese(w.reason) for w in policy.warnings}
    assert "tiers.general：一般等级第 2 档的金额低于第 1 档（通常按金额从低到高排列）" in zh
    # What loaded is what was meant: the cap is 3 000 yuan, the grades two.
    assert policy.rules[1].cap_fen == 300_000  # type: ignore[attr-defined]
    assert policy.rules[1].grades == {"major", "general"}


def test_shipped_policies_have_no_warnings() -> None:
    for policy_id in ("national-2018", "enterprise-internal"):
        assert load_policy(policy_id).warnings == ()


def test_cli_check_warns_but_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(ODD, encoding="utf-8")
    assert cli.main(["reward", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: shapes version 1, 2 rules, sha256 ")
    assert "5 warning(s) / 5 条警告" in captured.out
    assert f"warning: {path}, line 13: tiers.general: tier 2 pays less" in captured.err
    assert f"警告：{path} 第 13 行：tiers.general：一般等级第 2 档" in captured.err


def test_a_policy_saved_with_a_bom_loads_with_the_same_digest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).parents[2] / "service/domain/rewards/policies/national-2018.toml"
            ).read_text(encoding="utf-8")
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_policy_file(path).digest == load_policy("national-2018").digest
    assert parse_policy("\ufeff" + text).digest == load_policy("national-2018").digest
    assert cli.main(["reward", "check", str(path)]) == 0
    assert capsys.readouterr().out.startswith("ok: national-2018 version 1")


# --- wording -------------------------------------------------------------------------------


NATIONAL = load_policy("national-2018")


@pytest.mark.parametrize(("inputs", "en", "zh"), [
    (RewardInputs("concealed_accident", grade="general", deaths=3),
     "a general accident has at most 2 deaths", "一般事故最多 2 人死亡，瞒报死亡 3 人与该等级不符"),
    (RewardInputs("concealed_accident", grade="major", deaths=-1),
     "must be at least 1", "瞒报死亡人数不能小于 1"),
    (RewardInputs("concealed_accident", grade="major", deaths=0),
     "must be at least 1", "瞒报死亡人数不能小于 1"),
    (RewardInputs("hazard", grade="major", fine_fen=100, level=1001),
     "the tier level must be at most 1000", "档次不能超过 1000"),
    (RewardInputs("concealed_accident", grade="major", deaths=1, fine_fen=100),
     "rule 4 (per_death)", "第 4 条规则（按死亡人数（per_death））"),
])
def test_refusals_speak_one_language_at_a_time(inputs: RewardInputs, en: str, zh: str) -> None:
    with pytest.raises(RewardInputError) as info:
        calculate(NATIONAL, inputs)
    assert en in english(info.value.reason) and zh in chinese(info.value.reason)
    assert "数额" not in chinese(info.value.reason) or "fine" in en
    for key in ("general", "major", "per_death "):
        assert f"{key} 事故" not in chinese(info.value.reason)


def test_tier_refusal_names_the_grade_in_chinese() -> None:
    internal = load_policy("enterprise-internal")
    with pytest.raises(RewardInputError) as info:
        calculate(internal, RewardInputs("hazard", grade="major", level=2,
                                         approved_in_period_fen=0))
    zh = chinese(info.value.reason)
    assert "重大等级分 1 至 1 档" in zh and "major" not in zh


def test_cli_takes_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "shapes.toml"
    path.write_text(HEAD + SHAPES_BODY, encoding="utf-8")
    assert cli.main(["reward", "calc", "--policy-file", str(path), "--fine", "100000",
                     "--flag", "proposed_fix"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == "16000.00 CNY"
    assert cli.main(["reward", "check", str(path)]) == 0
    assert "flags (--flag NAME): proposed_fix" in capsys.readouterr().out
    assert cli.main(["reward", "calc", "--policy-file", str(path), "--fine", "100000",
                     "--flag", "other"]) == 2
    assert "没有声明附加条件 'other'" in capsys.readouterr().err
    assert cli.main(["reward", "calc", "--policy", "national-2018", "--type",
                     "concealed_accident", "--grade", "major", "--deaths", "-1"]) == 2
    err = capsys.readouterr().err
    assert "at least 1" in err and "at least 0" not in err


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**10), st.booleans(), st.booleans(), st.integers(1, 50),
       st.sampled_from(["hazard", "violation", "fire-exit"]))
def test_new_shapes_stay_within_the_ceiling_and_per_person_caps(
        fine: int, insider: bool, fix: bool, joint: int, case_type: str) -> None:
    record = calculate(SHAPES, RewardInputs(
        case_type, fine_fen=None if case_type == "fire-exit" else fine, insider=insider,
        flags=("proposed_fix",) if fix else (), joint_reporters=joint))
    # 500 000 (insider cap) + 1 000 (bonus) yuan at most; no share above 200 000 yuan.
    assert SHAPES.ceiling_fen() == 50_100_000
    assert 0 <= record.amount_fen <= 50_100_000
    assert sum(record.shares_fen) == record.amount_fen and len(record.shares_fen) == joint
    assert max(record.shares_fen) <= 20_000_000
    outsider = calculate(SHAPES, replace(record.inputs, insider=False))
    assert outsider.amount_fen <= record.amount_fen  # being an insider never lowers it
