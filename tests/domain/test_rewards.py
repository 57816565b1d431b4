"""The reward calculation: every rule kind, the national rules at their edges, exact fen,
refusals, records that survive JSON and recomputation, properties, and the command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import cli
from service.domain.rewards import (
    RecordError,
    RewardCalculation,
    RewardInputError,
    RewardInputs,
    calculate,
    format_yuan,
    load_policy,
    parse_policy,
    parse_yuan,
    percent_of,
    recompute,
    split,
)
from service.domain.rewards.calc import FINE
from service.domain.rewards.policy import Policy
from tests.translations import chinese, english

NATIONAL = load_policy("national-2018")
INTERNAL = load_policy("enterprise-internal")

HEAD = """\
id = "{id}"
version = 1
title_zh = "测试"
title_en = "Test"
source = "tests"
effective = 2024-01-01
currency = "CNY"
"""


def policy(body: str, policy_id: str = "test") -> Policy:
    return parse_policy(HEAD.format(id=policy_id) + body, f"{policy_id}.toml")


def yuan(amount: str) -> int:
    return parse_yuan(amount, "amount")


def hazard(fine_yuan: str, **more: Any) -> RewardCalculation:
    inputs = RewardInputs(case_type="hazard", grade="major", fine_fen=yuan(fine_yuan), **more)
    return calculate(NATIONAL, inputs)


def accident(grade: str, deaths: int) -> RewardCalculation:
    return calculate(NATIONAL, RewardInputs(case_type="concealed_accident", grade=grade,
                                            deaths=deaths))


# Policies shaped like the local rules in docs/RULES.md (shapes, not their exact texts).
QINGHAI = policy("""
[[rules]]
kind = "percentage_of_fine"
case_types = ["hazard"]
grades = ["general"]
rate = 12
cap = 6000

[[rules]]
kind = "percentage_of_fine"
case_types = ["hazard"]
grades = ["major"]
rate = 15
floor = 3000
cap = 300000
at_least_floor = true

[[rules]]
kind = "insider_uplift"
rate = 10
cap = 300000
""", "qinghai")

SHANDONG = policy("""
[[rules]]
kind = "catalogue"
[rules.items.general-hazard]
amount = 200
title_zh = "一般隐患"
title_en = "General hazard"
[rules.items.fire-exit]
amount = "500.50"
[rules.items.mine-gas]
min = 300000
max = 500000
title_zh = "煤矿瓦斯超限作业"
title_en = "Mining with excess gas"
[rules.items.minor]
min = 0
max = "19999.99"

[[rules]]
kind = "insider_uplift"
rate = 20
cap = 500000
""", "shandong")

JIMEI = policy("""
[[rules]]
kind = "tiers_by_grade"
[rules.tiers]
general = [200, 400, 600]
major = [1000, 2000, 3000]
especially_major = [4000, 5000]
""", "jimei")

LONGHUA = policy("""
[[rules]]
kind = "catalogue"
[rules.items.fire-exit]
amount = 600
[rules.items.hazard]
amount = 200

[[rules]]
kind = "person_cap"
case_types = ["fire-exit"]
per_case = 500
per_period = 1000
period = "month"

[[rules]]
kind = "joint_split"
""", "longhua")

HENAN = policy("""
[[rules]]
kind = "percentage_of_fine"
rate = 15
floor = 3000
cap = 300000
at_least_floor = true

[[rules]]
kind = "insider_uplift"
rate = 15
minimum = 1000
max_uplift = 20000
""", "henan")

THRESHOLD = policy("""
[[rules]]
kind = "percentage_of_fine"
rate = "15"
floor = 3000
cap = 300000
at_least_floor = false
""", "threshold")

BARE_PERCENT = policy("""
[[rules]]
kind = "percentage_of_fine"
rate = "15"
""", "bare")


# --- national-2018: hazards and violations -----------------------------------------------------


def test_percentage_below_floor_pays_floor() -> None:
    record = hazard("1000")
    assert record.amount_fen == 300_000
    assert record.steps[1].zh == ("罚款 1 000.00 元 × 15% = 150.00 元；"
                                  "低于最低奖励 3 000.00 元，按 3 000.00 元计")
    assert record.steps[1].en == ("15% of the fine 1 000.00 yuan = 150.00 yuan; below the floor "
                                  "of 3 000.00 yuan: the floor is paid")


def test_zero_fine_still_pays_the_floor() -> None:
    assert hazard("0").amount_fen == 300_000


def test_exactly_at_the_floor_boundary() -> None:
    record = hazard("20000")
    assert record.amount_fen == 300_000
    assert record.steps[1].zh == "罚款 20 000.00 元 × 15% = 3 000.00 元"  # no floor line
    # 19 999.99 × 15 % = 2 999.9985 rounds to 3 000.00: the floor is not needed
    assert "最低" not in hazard("19999.99").steps[1].zh
    # 19 999.93 × 15 % = 2 999.9895 rounds to 2 999.99: the floor lifts it
    record = hazard("19999.93")
    assert record.amount_fen == 300_000 and "最低奖励" in record.steps[1].zh
    assert hazard("20000.07").amount_fen == 300_001  # 3 000.0105 -> 3 000.01


def test_example_from_the_design() -> None:
    record = hazard("200000")
    assert record.amount_fen == 3_000_000
    assert record.steps[1].zh == "罚款 200 000.00 元 × 15% = 30 000.00 元"
    assert record.steps[1].en == "15% of the fine 200 000.00 yuan = 30 000.00 yuan"


def test_at_and_above_the_cap() -> None:
    record = hazard("2000000")
    assert record.amount_fen == 30_000_000
    assert "最高" not in record.steps[1].zh
    record = hazard("2000000.01")  # 300 000.0015 -> 300 000.00, not above the cap
    assert record.amount_fen == 30_000_000
    record = hazard("2000006.67")  # 300 001.0005 -> capped
    assert record.amount_fen == 30_000_000
    assert record.steps[1].zh.endswith("超过最高奖励 300 000.00 元，按 300 000.00 元计")
    assert hazard("10000000000").amount_fen == 30_000_000  # 10^12 fen, the largest fine


def test_fen_exactness() -> None:
    # 1 234 567.89 × 15 % = 185 185.1835 -> 185 185.18 (half up, once)
    record = hazard("1234567.89")
    assert record.amount_fen == 18_518_518
    assert record.steps[1].zh == ("罚款 1 234 567.89 元 × 15% = 185 185.18 元（四舍五入到分）")
    assert record.steps[1].en.endswith("(rounded half up to the fen)")


def test_rounding_is_half_up_to_the_fen() -> None:
    def pay(fen: int) -> int:
        return calculate(BARE_PERCENT, RewardInputs("hazard", fine_fen=fen)).amount_fen

    assert pay(10) == 2  # 1.5 fen -> 2
    assert pay(30) == 5  # 4.5 -> 5
    assert pay(3) == 0  # 0.45 -> 0
    assert pay(7) == 1  # 1.05 -> 1
    assert pay(1) == 0  # 0.15 -> 0
    assert percent_of(1, 50) == 1  # exactly half: up
    assert percent_of(3, 50) == 2  # 1.5 -> 2


def test_violations_use_the_same_rule() -> None:
    record = calculate(NATIONAL, RewardInputs("violation", fine_fen=yuan("50000")))
    assert record.amount_fen == 750_000
    assert record.steps[1].rule == 3


def test_national_has_no_reward_for_a_general_hazard() -> None:
    with pytest.raises(RewardInputError) as info:
        calculate(NATIONAL, RewardInputs("hazard", grade="general", fine_fen=100))
    assert "at grade 'general'" in english(info.value.reason)
    assert "一般等级" in chinese(info.value.reason)


# --- national-2018: concealed accidents ------------------------------------------------------


@pytest.mark.parametrize(("grade", "deaths", "expected_yuan"), [
    ("general", 1, 30_000),
    ("general", 2, 60_000),
    ("larger", 3, 120_000),
    ("larger", 7, 280_000),
    ("larger", 9, 300_000),  # 360 000 capped
    ("major", 6, 300_000),  # exactly the cap
    ("major", 7, 300_000),  # 350 000 capped
    ("major", 29, 300_000),
    ("especially_major", 1, 60_000),
    ("especially_major", 5, 300_000),
    ("especially_major", 40, 300_000),
])
def test_concealed_accident_by_grade(grade: str, deaths: int, expected_yuan: int) -> None:
    record = accident(grade, deaths)
    assert record.amount_fen == expected_yuan * 100
    assert record.amount_fen <= 30_000_000


def test_concealed_accident_explanation() -> None:
    record = accident("major", 7)
    assert record.steps[1].zh == ("核实瞒报（谎报）死亡 7 人 × 50 000.00 元（重大事故）= 350 000.00 元；"
                                  "超过最高奖励 300 000.00 元，按 300 000.00 元计")
    assert record.steps[1].en.startswith("7 verified concealed death(s) × 50 000.00 yuan "
                                         "(major accident) = 350 000.00 yuan")


def test_falsely_reported_accident_pays_the_same() -> None:
    record = calculate(NATIONAL, RewardInputs("falsely_reported_accident", grade="larger",
                                              deaths=2))
    assert record.amount_fen == 8_000_000


@pytest.mark.parametrize(("grade", "deaths"), [("general", 3), ("larger", 10), ("major", 30)])
def test_deaths_beyond_the_grade_are_refused(grade: str, deaths: int) -> None:
    with pytest.raises(RewardInputError) as info:
        accident(grade, deaths)
    assert "do not fit that grade" in english(info.value.reason)
    assert "与该等级不符" in chinese(info.value.reason)


def test_accident_needs_deaths_and_grade() -> None:
    with pytest.raises(RewardInputError, match="at least 1"):
        accident("major", 0)
    with pytest.raises(RewardInputError, match="at least 1"):
        calculate(NATIONAL, RewardInputs("concealed_accident", grade="major"))
    with pytest.raises(RewardInputError, match="needs a grade"):
        calculate(NATIONAL, RewardInputs("concealed_accident", deaths=2))


# --- first valid report and joint reports ----------------------------------------------------


def test_a_duplicate_gets_nothing_and_stops() -> None:
    record = hazard("200000", first_valid=False)
    assert record.amount_fen == 0 and record.shares_fen == (0,)
    assert len(record.steps) == 1
    assert record.steps[0].applied
    assert record.steps[0].zh == "非首个有效举报（重复举报）：不予奖励"
    assert record.steps[0].en == "not the first valid report (a duplicate): no reward"
    joint = hazard("200000", first_valid=False, joint_reporters=3)
    assert joint.shares_fen == (0, 0, 0)


def test_a_duplicate_is_still_checked() -> None:
    with pytest.raises(RewardInputError):
        accident_inputs = RewardInputs("concealed_accident", grade="general", deaths=5,
                                       first_valid=False)
        calculate(NATIONAL, accident_inputs)


def test_joint_split_remainder_to_the_first_signatory() -> None:
    record = calculate(LONGHUA, RewardInputs("hazard", joint_reporters=3))
    assert record.amount_fen == 20_000
    assert record.shares_fen == (6_668, 6_666, 6_666)
    assert sum(record.shares_fen) == record.amount_fen
    assert record.steps[-1].zh == ("3 人联名举报，平分 200.00 元：每人 66.66 元，余 0.02 元归第一署名人"
                                   "（66.68 元）")
    assert record.steps[-1].en == ("joint report by 3: 200.00 yuan split, 66.66 yuan each, the "
                                   "remaining 0.02 yuan to the first signatory (66.68 yuan)")
    national = hazard("1234567.89", joint_reporters=7)
    assert national.shares_fen == (2_645_506, 2_645_502, 2_645_502, 2_645_502, 2_645_502,
                                   2_645_502, 2_645_502)
    assert sum(national.shares_fen) == 18_518_518


def test_split_helper() -> None:
    assert split(10, 1) == (10,)
    assert split(10, 4) == (4, 2, 2, 2)
    assert split(0, 3) == (0, 0, 0)
    assert split(2, 5) == (2, 0, 0, 0, 0)


# --- tiers, catalogues, uplifts, caps ----------------------------------------------------------


@pytest.mark.parametrize(("grade", "level", "expected_yuan"), [
    ("general", 1, 200), ("general", 2, 400), ("general", 3, 600), ("major", 1, 1000),
    ("major", 3, 3000), ("especially_major", 1, 4000), ("especially_major", 2, 5000)])
def test_tiers_by_grade(grade: str, level: int, expected_yuan: int) -> None:
    record = calculate(JIMEI, RewardInputs("hazard", grade=grade, level=level))
    assert record.amount_fen == expected_yuan * 100


def test_tier_explanation_and_refusals() -> None:
    record = calculate(JIMEI, RewardInputs("hazard", grade="major", level=2))
    assert record.steps[0].zh == "重大等级第 2 档（共 3 档）：2 000.00 元"
    assert record.steps[0].en == "major grade, tier 2 of 3: 2 000.00 yuan"
    with pytest.raises(RewardInputError, match="tiers 1 to 2"):
        calculate(JIMEI, RewardInputs("hazard", grade="especially_major", level=3))
    with pytest.raises(RewardInputError, match="tiers 1 to 3"):
        calculate(JIMEI, RewardInputs("hazard", grade="general"))
    with pytest.raises(RewardInputError, match="at least 1"):
        calculate(JIMEI, RewardInputs("hazard", grade="general", level=0))
    with pytest.raises(RewardInputError, match="needs a grade"):
        calculate(JIMEI, RewardInputs("hazard", level=1))
    with pytest.raises(RewardInputError, match="no rule for case type 'hazard' at grade"):
        calculate(JIMEI, RewardInputs("hazard", grade="larger", level=1))


def test_single_tier_needs_no_level() -> None:
    record = calculate(INTERNAL, RewardInputs("hazard", grade="major",
                                              approved_in_period_fen=0))
    assert record.amount_fen == 20_000


def test_catalogue_fixed_amounts() -> None:
    record = calculate(SHANDONG, RewardInputs("general-hazard"))
    assert record.amount_fen == 20_000
    assert record.steps[0].zh == "案件类型 general-hazard（一般隐患）：固定金额 200.00 元"
    assert record.steps[0].en == "case type general-hazard (General hazard): fixed amount 200.00 yuan"
    assert calculate(SHANDONG, RewardInputs("fire-exit")).amount_fen == 50_050


def test_catalogue_bands() -> None:
    record = calculate(SHANDONG, RewardInputs("mine-gas", band_amount_fen=yuan("400000")))
    assert record.amount_fen == 40_000_000
    assert record.steps[0].zh == ("案件类型 mine-gas（煤矿瓦斯超限作业）：奖励区间 300 000.00–500 000.00 元，"
                                  "核定 400 000.00 元")
    for chosen in ("300000", "500000"):
        assert calculate(SHANDONG, RewardInputs(
            "mine-gas", band_amount_fen=yuan(chosen))).amount_fen == yuan(chosen)
    for outside in ("299999.99", "500000.01"):
        with pytest.raises(RewardInputError, match="give an amount within it"):
            calculate(SHANDONG, RewardInputs("mine-gas", band_amount_fen=yuan(outside)))
    with pytest.raises(RewardInputError, match="give an amount within it"):
        calculate(SHANDONG, RewardInputs("mine-gas"))
    with pytest.raises(RewardInputError, match="has no band"):
        calculate(SHANDONG, RewardInputs("fire-exit", band_amount_fen=100))
    assert calculate(SHANDONG, RewardInputs("minor", band_amount_fen=0)).amount_fen == 0


def test_shandong_uplift_and_its_cap() -> None:
    record = calculate(SHANDONG, RewardInputs("mine-gas", band_amount_fen=yuan("400000"),
                                              insider=True))
    assert record.amount_fen == 48_000_000  # +20 % under the 500 000 cap
    record = calculate(SHANDONG, RewardInputs("mine-gas", band_amount_fen=yuan("450000"),
                                              insider=True))
    assert record.amount_fen == 50_000_000  # 540 000 capped at 500 000
    assert "超过加奖后上限 500 000.00 元" in record.steps[1].zh
    assert "above the cap with the uplift of 500 000.00 yuan" in record.steps[1].en


def test_uplift_cap_never_lowers_the_base() -> None:
    strict = policy("""
[[rules]]
kind = "catalogue"
[rules.items.big]
amount = 1000

[[rules]]
kind = "insider_uplift"
rate = 50
cap = 800
""")
    record = calculate(strict, RewardInputs("big", insider=True))
    assert record.amount_fen == 100_000
    assert record.steps[1].en.endswith("the amount already reaches the cap with the uplift of "
                                       "800.00 yuan: no uplift; total with the uplift 1 000.00 yuan")


def test_qinghai_rates_by_grade_and_uplift() -> None:
    general = calculate(QINGHAI, RewardInputs("hazard", grade="general", fine_fen=yuan("10000")))
    assert general.amount_fen == 120_000  # 12 %, no floor
    assert calculate(QINGHAI, RewardInputs("hazard", grade="general",
                                           fine_fen=yuan("100000"))).amount_fen == 600_000
    major = calculate(QINGHAI, RewardInputs("hazard", grade="major", fine_fen=yuan("100000")))
    assert major.amount_fen == 1_500_000
    lifted = calculate(QINGHAI, RewardInputs("hazard", grade="major", fine_fen=yuan("100000"),
                                             insider=True))
    assert lifted.amount_fen == 1_650_000
    assert lifted.steps[1].zh == ("内部人员举报加奖：15 000.00 元 × 10% = 1 500.00 元；"
                                  "加奖后合计 16 500.00 元")
    top = calculate(QINGHAI, RewardInputs("hazard", grade="major", fine_fen=yuan("3000000"),
                                          insider=True))
    assert top.amount_fen == 30_000_000  # already at 300 000: the uplift cap holds it there


def test_henan_uplift_minimum_and_maximum() -> None:
    small = calculate(HENAN, RewardInputs("hazard", fine_fen=yuan("1000"), insider=True))
    # base 3 000 (floor); 15 % = 450, raised to the 1 000 minimum
    assert small.amount_fen == 400_000
    assert "加奖不少于 1 000.00 元" in small.steps[1].zh
    assert "the uplift is at least 1 000.00 yuan" in small.steps[1].en
    large = calculate(HENAN, RewardInputs("hazard", fine_fen=yuan("2000000"), insider=True))
    # base 300 000; 15 % = 45 000, held to max_uplift 20 000
    assert large.amount_fen == 32_000_000
    assert "加奖不超过 20 000.00 元" in large.steps[1].zh
    plain = calculate(HENAN, RewardInputs("hazard", fine_fen=yuan("1000")))
    assert plain.amount_fen == 300_000
    assert plain.steps[1].applied is False and plain.steps[1].en == "not an insider: no uplift"


def test_no_uplift_on_nothing() -> None:
    record = calculate(policy(THRESHOLD_BODY + UPLIFT_BODY), RewardInputs(
        "hazard", fine_fen=yuan("100"), insider=True))
    assert record.amount_fen == 0
    assert record.steps[-1].en == "the amount is zero: nothing to lift"


THRESHOLD_BODY = """
[[rules]]
kind = "percentage_of_fine"
rate = 15
floor = 3000
at_least_floor = false
"""
UPLIFT_BODY = """
[[rules]]
kind = "insider_uplift"
rate = 15
minimum = 1000
"""


def test_floor_without_the_switch_is_a_threshold() -> None:
    record = calculate(THRESHOLD, RewardInputs("hazard", fine_fen=yuan("19999.93")))
    assert record.amount_fen == 0
    assert record.steps[0].zh.endswith("低于起奖金额 3 000.00 元，不予奖励")
    assert calculate(THRESHOLD, RewardInputs("hazard", fine_fen=yuan("20000"))).amount_fen \
        == 300_000


def test_insider_on_a_policy_without_uplift_is_noted() -> None:
    record = hazard("200000", insider=True)
    assert record.amount_fen == 3_000_000
    note = [step for step in record.steps if step.kind == "note"]
    assert note and note[0].rule is None and not note[0].applied


def test_person_caps_per_case_and_per_month() -> None:
    def fire_exit(approved: str, joint: int = 1) -> RewardCalculation:
        return calculate(LONGHUA, RewardInputs("fire-exit", joint_reporters=joint,
                                               approved_in_period_fen=yuan(approved)))

    record = fire_exit("0")
    assert record.amount_fen == 50_000  # 600 held to 500 per case
    assert record.steps[1].zh == "每人每案上限 500.00 元：600.00 元 → 500.00 元"
    assert record.steps[2].en == ("per-month cap of 1 000.00 yuan, 0.00 yuan already approved "
                                  "this month, 1 000.00 yuan left: within it")
    assert fire_exit("500").amount_fen == 50_000
    record = fire_exit("800")
    assert record.amount_fen == 20_000
    assert record.steps[2].zh == ("每人每月上限 1 000.00 元，本月已批准 800.00 元，尚余 200.00 元："
                                  "500.00 元 → 200.00 元")
    assert fire_exit("1000").amount_fen == 0
    assert fire_exit("5000").amount_fen == 0
    assert fire_exit("999.99", joint=2).shares_fen == (1, 0)


def test_person_cap_only_for_its_case_type() -> None:
    record = calculate(LONGHUA, RewardInputs("hazard"))
    assert record.amount_fen == 20_000
    with pytest.raises(RewardInputError, match="no period cap applies"):
        calculate(LONGHUA, RewardInputs("hazard", approved_in_period_fen=0))


def test_period_cap_needs_the_approved_amount() -> None:
    with pytest.raises(RewardInputError) as info:
        calculate(LONGHUA, RewardInputs("fire-exit"))
    assert "already approved" in english(info.value.reason)
    assert "本期已批准" in chinese(info.value.reason)


def test_enterprise_internal_policy() -> None:
    def run(case_type: str, **more: Any) -> int:
        more.setdefault("approved_in_period_fen", 0)
        return calculate(INTERNAL, RewardInputs(case_type, **more)).amount_fen

    assert run("hazard", grade="general") == 5_000
    assert run("hazard", grade="major") == 20_000
    assert run("hazard", grade="general", insider=True) == 6_000  # 10 % of 50 -> minimum 10
    assert run("hazard", grade="major", insider=True) == 24_000
    assert run("violation") == 3_000
    assert run("near-miss", insider=True) == 3_000
    assert run("hazard", grade="major", approved_in_period_fen=yuan("950")) == 5_000
    assert run("hazard", grade="major", first_valid=False) == 0


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("inputs", "en_words"), [
    (RewardInputs("hazard", grade="major", fine_fen=-1), "must not be negative"),
    (RewardInputs("hazard", grade="major", fine_fen=10**12 + 1), "absurdly large"),
    (RewardInputs("hazard", grade="major", fine_fen=True), "whole number"),  # type: ignore[arg-type]
    (RewardInputs("hazard", grade="major"), "give the fine"),
    (RewardInputs("hazard", grade="major", fine_fen=100, deaths=2), "no per-death rule"),
    (RewardInputs("concealed_accident", grade="major", deaths=2, fine_fen=100),
     "does not use the fine"),
    (RewardInputs("hazard", grade="major", fine_fen=100, level=1), "has no tiers"),
    (RewardInputs("hazard", grade="huge", fine_fen=100), "unknown grade"),
    (RewardInputs("fire", grade="major", fine_fen=100), "no rule for case type 'fire'"),
    (RewardInputs("Fire Exit", fine_fen=100), "not a case type name"),
    (RewardInputs("hazard", grade="major", fine_fen=100, joint_reporters=0), "at least 1"),
    (RewardInputs("hazard", grade="major", fine_fen=100, joint_reporters=1001), "at most 1000"),
    (RewardInputs("concealed_accident", grade="major", deaths=100_001), "at most 100000"),
    (RewardInputs("hazard", grade="major", fine_fen=100, insider=1),  # type: ignore[arg-type]
     "true or false"),
    (RewardInputs("hazard", grade="major", fine_fen=100, approved_in_period_fen=0),
     "no period cap"),
])
def test_refused_inputs_say_why_in_both_languages(inputs: RewardInputs, en_words: str) -> None:
    with pytest.raises(RewardInputError) as info:
        calculate(NATIONAL, inputs)
    en, zh = english(info.value.reason), chinese(info.value.reason)
    assert en_words in en
    assert zh and zh != en
    assert str(info.value) == en


def test_flags_a_policy_cannot_honour_are_refused() -> None:
    with pytest.raises(RewardInputError, match="first-valid-report rule"):
        calculate(JIMEI, RewardInputs("hazard", grade="general", level=1, first_valid=False))
    with pytest.raises(RewardInputError, match="no joint-report rule"):
        calculate(JIMEI, RewardInputs("hazard", grade="general", level=1, joint_reporters=2))


def test_parse_yuan() -> None:
    assert parse_yuan("1234567.89", "x") == 123_456_789
    assert parse_yuan("1,234,567.8", "x") == 123_456_780
    assert parse_yuan(" 0.05 ", "x") == 5
    for bad in ("-1", "1.234", "abc", "1e5", "", "NaN", "10000000000.01"):
        with pytest.raises(RewardInputError):
            parse_yuan(bad, FINE)


def test_format_yuan() -> None:
    assert format_yuan(0) == "0.00"
    assert format_yuan(5) == "0.05"
    assert format_yuan(123_456_789) == "1 234 567.89"
    assert format_yuan(-150) == "-1.50"


# --- records ---------------------------------------------------------------------------------


def test_record_carries_policy_and_inputs() -> None:
    record = hazard("200000", joint_reporters=2)
    assert (record.policy_id, record.policy_version) == ("national-2018", 1)
    assert record.policy_digest == NATIONAL.digest
    assert record.currency == "CNY"
    assert record.inputs.fine_fen == 20_000_000
    assert [step.rule for step in record.steps] == [1, 2, 5]
    assert [step.kind for step in record.steps] == ["first_valid_only", "percentage_of_fine",
                                                    "joint_split"]
    assert record.steps[1].amount_fen == 3_000_000


def test_json_round_trip() -> None:
    for record in (hazard("1234567.89", joint_reporters=3, insider=True), accident("major", 7),
                   hazard("5", first_valid=False)):
        text = record.to_json()
        data = json.loads(text)
        assert data["amount_fen"] == record.amount_fen
        assert isinstance(data["amount_fen"], int)
        assert RewardCalculation.from_json(text) == record
        assert "罚款" in text or "瞒报" in text or "重复" in text  # Chinese kept readable


@pytest.mark.parametrize("tamper", [
    lambda d: d.pop("currency"),
    lambda d: d.update(extra=1),
    lambda d: d.update(amount_fen=1.5),
    lambda d: d.update(amount_fen=True),
    lambda d: d.update(shares_fen=[1]),
    lambda d: d.update(schema="other/1"),
    lambda d: d["inputs"].update(fine_fen="100"),
    lambda d: d["inputs"].pop("insider"),
    lambda d: d["steps"][0].update(applied="yes"),
    lambda d: d.update(steps={}),
])
def test_from_json_refuses_malformed_records(tamper: Any) -> None:
    data = hazard("200000").to_dict()
    tamper(data)
    with pytest.raises(RecordError):
        RewardCalculation.from_json(json.dumps(data))
    with pytest.raises(RecordError):
        RewardCalculation.from_json("{not json")


def test_recompute_checks_out_and_finds_tampering() -> None:
    record = hazard("1234567.89", joint_reporters=3)
    assert recompute(record, NATIONAL) == []
    changed = replace(record, amount_fen=record.amount_fen + 1,
                      shares_fen=(record.shares_fen[0] + 1,) + record.shares_fen[1:])
    problems = recompute(changed, NATIONAL)
    assert any(p.startswith("amount: recorded 18518519 fen, recomputed 18518518") for p in problems)
    assert any(p.startswith("shares:") for p in problems)
    edited = parse_policy(Path("service/domain/rewards/policies/national-2018.toml").read_text(
        encoding="utf-8").replace("rate = 15", "rate = 16"), "edited.toml")
    problems = recompute(record, edited)
    assert any("policy file differs" in p for p in problems)
    assert any(p.startswith("amount:") for p in problems)


# --- properties ------------------------------------------------------------------------------

fens = st.integers(min_value=0, max_value=10**12)
grades = st.sampled_from(["general", "larger", "major", "especially_major"])


@st.composite
def national_inputs(draw: st.DrawFn) -> RewardInputs:
    kind = draw(st.sampled_from(["hazard", "violation", "concealed_accident"]))
    common = {"insider": draw(st.booleans()), "first_valid": draw(st.booleans()),
              "joint_reporters": draw(st.integers(1, 50))}
    if kind == "hazard":
        return RewardInputs(kind, grade="major", fine_fen=draw(fens), **common)
    if kind == "violation":
        return RewardInputs(kind, fine_fen=draw(fens), **common)
    grade = draw(grades)
    most = {"general": 2, "larger": 9, "major": 29, "especially_major": 500}[grade]
    return RewardInputs(kind, grade=grade, deaths=draw(st.integers(1, most)), **common)


@settings(max_examples=300, deadline=None)
@given(national_inputs())
def test_national_never_negative_never_above_the_cap(inputs: RewardInputs) -> None:
    record = calculate(NATIONAL, inputs)
    assert 0 <= record.amount_fen <= 30_000_000
    assert sum(record.shares_fen) == record.amount_fen
    assert len(record.shares_fen) == inputs.joint_reporters
    assert all(share >= 0 for share in record.shares_fen)
    if inputs.first_valid and inputs.fine_fen is not None:
        assert record.amount_fen >= 300_000
    assert RewardCalculation.from_json(record.to_json()) == record


@settings(max_examples=300, deadline=None)
@given(fens, fens)
def test_national_percentage_is_monotone_in_the_fine(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert hazard_fen(low) <= hazard_fen(high)


def hazard_fen(fine: int) -> int:
    return calculate(NATIONAL, RewardInputs("hazard", grade="major", fine_fen=fine)).amount_fen


@st.composite
def percentage_policies(draw: st.DrawFn) -> Policy:
    rate = draw(st.decimals(min_value=0, max_value=100, places=2))
    floor = draw(st.integers(0, 10**6))
    cap = draw(st.integers(floor, 10**7))
    at_least = draw(st.booleans())
    uplift = draw(st.sampled_from(["", UPLIFT_BODY, UPLIFT_BODY + "max_uplift = 5000\ncap = 20000\n"]))
    return policy(f"""
[[rules]]
kind = "percentage_of_fine"
rate = "{rate}"
floor = "{floor // 100}.{floor % 100:02d}"
cap = "{cap // 100}.{cap % 100:02d}"
at_least_floor = {"true" if at_least else "false"}
""" + uplift)


@settings(max_examples=200, deadline=None)
@given(percentage_policies(), fens, fens, st.booleans())
def test_percentage_rules_bounded_and_monotone(rule_policy: Policy, a: int, b: int,
                                               insider: bool) -> None:
    rule = rule_policy.rules[0]
    low, high = sorted((a, b))
    first = calculate(rule_policy, RewardInputs("x", fine_fen=low, insider=insider))
    second = calculate(rule_policy, RewardInputs("x", fine_fen=high, insider=insider))
    assert first.amount_fen <= second.amount_fen
    ceiling = rule_policy.ceiling_fen()
    assert ceiling is not None
    for record in (first, second):
        assert 0 <= record.amount_fen <= ceiling
        base = record.steps[0].amount_fen
        assert base <= rule.cap_fen  # type: ignore[attr-defined]
        if rule.at_least_floor:  # type: ignore[attr-defined]
            assert base >= rule.floor_fen  # type: ignore[attr-defined]
        else:
            assert base == 0 or base >= rule.floor_fen  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["hazard", "violation", "near-miss"]), st.sampled_from(["general", "major"]),
       st.booleans(), st.integers(0, 10**6), st.integers(1, 20))
def test_enterprise_internal_within_the_month(case_type: str, grade: str, insider: bool,
                                              approved: int, joint: int) -> None:
    record = calculate(INTERNAL, RewardInputs(
        case_type, grade=grade if case_type == "hazard" else None, insider=insider,
        approved_in_period_fen=approved, joint_reporters=joint))
    assert 0 <= record.amount_fen <= max(0, 100_000 - approved)
    ceiling = INTERNAL.ceiling_fen()
    assert ceiling is not None and record.amount_fen <= ceiling
    assert sum(record.shares_fen) == record.amount_fen


@settings(max_examples=300, deadline=None)
@given(fens, st.integers(1, 1000))
def test_joint_shares_sum_to_the_total(total: int, reporters: int) -> None:
    shares = split(total, reporters)
    assert sum(shares) == total and len(shares) == reporters
    assert all(share == shares[-1] for share in shares[1:])
    assert 0 <= shares[0] - shares[-1] < reporters


# --- the command line ------------------------------------------------------------------------


def test_cli_calc_prints_chinese_then_english_then_yuan(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reward", "calc", "--policy", "national-2018", "--fine", "200000",
                     "--grade", "major"]) == 0
    out = capsys.readouterr().out
    zh = out.index("罚款 200 000.00 元 × 15% = 30 000.00 元")
    en = out.index("15% of the fine 200 000.00 yuan = 30 000.00 yuan")
    assert zh < en
    assert out.rstrip().splitlines()[-1] == "30000.00 CNY"
    assert "奖励金额：30 000.00 元" in out and "Reward: 30 000.00 yuan" in out


def test_cli_calc_json_is_the_record(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reward", "calc", "--policy", "national-2018", "--type",
                     "concealed_accident", "--grade", "especially-major", "--deaths", "3",
                     "--joint", "3", "--insider", "--json"]) == 0
    record = RewardCalculation.from_json(capsys.readouterr().out)
    assert record.amount_fen == 18_000_000
    assert record.shares_fen == (6_000_000,) * 3
    assert record.inputs.insider and record.inputs.grade == "especially_major"
    assert record == calculate(NATIONAL, record.inputs)


def test_cli_calc_every_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "shandong.toml"
    path.write_text(HEAD.format(id="shandong") + """
[[rules]]
kind = "catalogue"
[rules.items.mine-gas]
min = 300000
max = 500000

[[rules]]
kind = "first_valid_only"
""", encoding="utf-8")
    assert cli.main(["reward", "calc", "--policy-file", str(path), "--type", "mine-gas",
                     "--amount", "350000.50"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("350000.50 CNY")
    assert cli.main(["reward", "calc", "--policy-file", str(path), "--type", "mine-gas",
                     "--amount", "350000", "--not-first"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("0.00 CNY")
    assert cli.main(["reward", "calc", "--policy", "enterprise-internal", "--grade", "major",
                     "--approved", "900"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("100.00 CNY")


@pytest.mark.parametrize(("argv", "words"), [
    (["--fine", "-5", "--grade", "major"], "must not be negative"),
    (["--fine", "12.345", "--grade", "major"], "at most 2 decimals"),
    (["--fine", "100000000000", "--grade", "major"], "absurdly large"),
    (["--fine", "100"], "needs a grade"),
    (["--fine", "100", "--grade", "major", "--deaths", "2"], "no per-death rule"),
    (["--type", "concealed_accident", "--grade", "general", "--deaths", "3"], "do not fit"),
    (["--fine", "100", "--grade", "major", "--joint", "0"], "at least 1"),
])
def test_cli_calc_refuses_with_exit_2(argv: list[str], words: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reward", "calc", "--policy", "national-2018", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("refused: ") and words in captured.err
    assert "拒绝：" in captured.err


def test_cli_unknown_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reward", "calc", "--policy", "nope", "--fine", "1"]) == 2
    assert "no shipped policy 'nope'" in capsys.readouterr().err


def test_cli_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["reward", "calc", "--policy", "national-2018", "--deaths", "many"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["reward", "calc", "--fine", "1"])  # no policy
    assert info.value.code == 2


def test_cli_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["reward", "policies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["enterprise-internal", "national-2018"]
    assert "v1\t2018-01-04\tclaim 60 d\t安全生产领域举报奖励办法（2018）" in lines[1]


def test_cli_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = hazard("1234567.89", joint_reporters=3)
    good = tmp_path / "record.json"
    good.write_text(record.to_json(), encoding="utf-8")
    assert cli.main(["reward", "verify", str(good)]) == 0
    assert "identical (18518518 fen)" in capsys.readouterr().out

    data = record.to_dict()
    data["amount_fen"] += 100
    data["shares_fen"][0] += 100
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert cli.main(["reward", "verify", str(bad)]) == 1
    assert "amount: recorded 18518618 fen, recomputed 18518518 fen" in capsys.readouterr().out

    edited = tmp_path / "national-2018.toml"
    edited.write_text(Path("service/domain/rewards/policies/national-2018.toml").read_text(
        encoding="utf-8").replace("version = 1", "version = 2"), encoding="utf-8")
    assert cli.main(["reward", "verify", str(good), "--policy-file", str(edited)]) == 1
    out = capsys.readouterr().out
    assert "version 2" in out and "policy file differs" in out

    junk = tmp_path / "junk.json"
    junk.write_text("[]", encoding="utf-8")
    assert cli.main(["reward", "verify", str(junk)]) == 2
    assert "不是奖励计算记录" in capsys.readouterr().err
