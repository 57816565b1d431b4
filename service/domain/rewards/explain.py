"""The plain-language lines of a calculation, Chinese and English, one pair per step.

Kept apart from the arithmetic so the wording can be improved without touching a number.
Every function returns (zh, en).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.domain.rewards.money import format_yuan as y
from service.domain.rewards.money import plain_yuan
from service.domain.rewards.policy import GRADE_EN, GRADE_ZH, PERIOD_ZH, Flag

Lines = tuple[str, str]


class _Step(Protocol):
    @property
    def zh(self) -> str: ...

    @property
    def en(self) -> str: ...


class Explained(Protocol):
    """What render() reads of a calculation (calc.RewardCalculation has it); a protocol, so
    the wording does not import the arithmetic."""

    @property
    def policy_id(self) -> str: ...

    @property
    def policy_version(self) -> int: ...

    @property
    def amount_fen(self) -> int: ...

    @property
    def steps(self) -> Sequence[_Step]: ...

    @property
    def shares_fen(self) -> Sequence[int]: ...


def first_valid(is_first: bool) -> Lines:
    if is_first:
        return "首个有效举报：可以奖励", "first valid report: eligible"
    return ("非首个有效举报（重复举报）：不予奖励",
            "not the first valid report (a duplicate): no reward")


def percentage(fine: int, rate: str, raw: int, rounded: bool) -> Lines:
    zh = f"罚款 {y(fine)} 元 × {rate}% = {y(raw)} 元"
    en = f"{rate}% of the fine {y(fine)} yuan = {y(raw)} yuan"
    if rounded:
        zh += "（四舍五入到分）"
        en += " (rounded half up to the fen)"
    return zh, en


def percentage_points(fine: int, rate: str, points: str, total: str, raw: int,
                      rounded: bool) -> Lines:
    zh = (f"罚款 {y(fine)} 元 × {total}%（{rate}% 加内部人员举报 {points} 个百分点）"
          f"= {y(raw)} 元")
    en = (f"{total}% ({rate}% plus {points} percentage points for an insider) of the fine "
          f"{y(fine)} yuan = {y(raw)} yuan")
    if rounded:
        zh += "（四舍五入到分）"
        en += " (rounded half up to the fen)"
    return zh, en


def points_in_base(points: str, base_rule: int) -> Lines:
    return (f"内部人员举报：比例提高 {points} 个百分点，已计入第 {base_rule} 条规则",
            f"insider: the rate rises by {points} percentage points, counted in rule "
            f"{base_rule}")


def within_insider_cap(cap: int, insider_cap: int) -> Lines:
    return (f"超过最高奖励 {y(cap)} 元，但内部人员最高奖励为 {y(insider_cap)} 元：未超过",
            f"above the cap of {y(cap)} yuan, but within the insider cap of "
            f"{y(insider_cap)} yuan")


def default_rule() -> Lines:
    return ("适用默认规则（没有针对该案件的例外规则）",
            "the default rule (no exception names this case)")


def exception_rule(default_number: int) -> Lines:
    return (f"适用例外规则（不适用第 {default_number} 条默认规则）",
            f"an exception (instead of the default rule {default_number})")


def raised_to_floor(floor: int) -> Lines:
    return (f"低于最低奖励 {y(floor)} 元，按 {y(floor)} 元计",
            f"below the floor of {y(floor)} yuan: the floor is paid")


def below_floor_nothing(floor: int) -> Lines:
    return (f"低于起奖金额 {y(floor)} 元，不予奖励",
            f"below the threshold of {y(floor)} yuan: no reward")


def capped(cap: int, what_zh: str = "最高奖励", what_en: str = "cap") -> Lines:
    return (f"超过{what_zh} {y(cap)} 元，按 {y(cap)} 元计",
            f"above the {what_en} of {y(cap)} yuan: the {what_en} is paid")


def catalogue_fixed(case_type: str, title_zh: str, title_en: str, amount: int) -> Lines:
    zh_name = f"{case_type}（{title_zh}）" if title_zh else case_type
    en_name = f"{case_type} ({title_en})" if title_en else case_type
    return (f"案件类型 {zh_name}：固定金额 {y(amount)} 元",
            f"case type {en_name}: fixed amount {y(amount)} yuan")


def catalogue_band(case_type: str, title_zh: str, title_en: str, low: int, high: int,
                   chosen: int) -> Lines:
    zh_name = f"{case_type}（{title_zh}）" if title_zh else case_type
    en_name = f"{case_type} ({title_en})" if title_en else case_type
    return (f"案件类型 {zh_name}：奖励区间 {y(low)}–{y(high)} 元，核定 {y(chosen)} 元",
            f"case type {en_name}: band {y(low)}–{y(high)} yuan, amount set at {y(chosen)} yuan")


def tier(grade: str, level: int, count: int, amount: int) -> Lines:
    return (f"{GRADE_ZH[grade]}等级第 {level} 档（共 {count} 档）：{y(amount)} 元",
            f"{GRADE_EN[grade]} grade, tier {level} of {count}: {y(amount)} yuan")


def per_death(deaths: int, grade: str, each: int, raw: int) -> Lines:
    return (f"核实瞒报（谎报）死亡 {deaths} 人 × {y(each)} 元（{GRADE_ZH[grade]}事故）"
            f"= {y(raw)} 元",
            f"{deaths} verified concealed death(s) × {y(each)} yuan ({GRADE_EN[grade]} "
            f"accident) = {y(raw)} yuan")


def uplift(before: int, rate: str, raw: int, rounded: bool) -> Lines:
    zh = f"内部人员举报加奖：{y(before)} 元 × {rate}% = {y(raw)} 元"
    en = f"insider uplift: {rate}% of {y(before)} yuan = {y(raw)} yuan"
    if rounded:
        zh += "（四舍五入到分）"
        en += " (rounded half up to the fen)"
    return zh, en


def uplift_minimum(minimum: int) -> Lines:
    return (f"加奖不少于 {y(minimum)} 元，按 {y(minimum)} 元计",
            f"the uplift is at least {y(minimum)} yuan")


def uplift_maximum(maximum: int) -> Lines:
    return (f"加奖不超过 {y(maximum)} 元，按 {y(maximum)} 元计",
            f"the uplift is at most {y(maximum)} yuan")


def uplift_cap_reached(cap: int) -> Lines:
    return (f"金额已达到加奖后上限 {y(cap)} 元，不再加奖",
            f"the amount already reaches the cap with the uplift of {y(cap)} yuan: no uplift")


def addition_capped(cap: int, added: int) -> Lines:
    return (f"超过加奖后上限 {y(cap)} 元，按 {y(cap)} 元计：实际加奖 {y(added)} 元",
            f"above the cap with the uplift of {y(cap)} yuan: the cap is paid, {y(added)} yuan "
            "added")


def uplift_total(total: int) -> Lines:
    return f"加奖后合计 {y(total)} 元", f"total with the uplift {y(total)} yuan"


def uplift_nothing() -> Lines:
    return "金额为零，不加奖", "the amount is zero: nothing to lift"


def not_insider() -> Lines:
    return "非内部人员举报：不加奖", "not an insider: no uplift"


def insider_without_rule() -> Lines:
    return ("举报人是内部人员，但本政策对此类案件没有加奖规定",
            "the reporter is an insider, but this policy has no uplift for this case")


def _flag(flag: Flag) -> tuple[str, str]:
    return f"“{flag.title_zh}”（{flag.name}）", f"\"{flag.title_en}\" ({flag.name})"


def flag_not_set(flag: Flag) -> Lines:
    zh, en = _flag(flag)
    return f"不符合{zh}：不加奖", f"not {en}: no bonus"


def bonus_nothing(flag: Flag) -> Lines:
    zh, en = _flag(flag)
    return f"{zh}：金额为零，不加奖", f"{en}: the amount is zero, no bonus"


def flag_bonus_rate(flag: Flag, before: int, rate: str, raw: int, rounded: bool) -> Lines:
    name_zh, name_en = _flag(flag)
    zh = f"{name_zh}加奖：{y(before)} 元 × {rate}% = {y(raw)} 元"
    en = f"bonus for {name_en}: {rate}% of {y(before)} yuan = {y(raw)} yuan"
    if rounded:
        zh += "（四舍五入到分）"
        en += " (rounded half up to the fen)"
    return zh, en


def flag_bonus_amount(flag: Flag, amount: int) -> Lines:
    name_zh, name_en = _flag(flag)
    return f"{name_zh}加奖 {y(amount)} 元", f"bonus for {name_en}: {y(amount)} yuan"


def bonus_total(total: int) -> Lines:
    return f"加奖后合计 {y(total)} 元", f"total with the bonus {y(total)} yuan"


def flag_without_rule(flag: Flag) -> Lines:
    name_zh, name_en = _flag(flag)
    return (f"符合{name_zh}，但本政策对此类案件没有相应加奖",
            f"{name_en} holds, but this policy has no bonus for it in this case")


def per_share_cap(cap: int, before: tuple[int, ...], after: tuple[int, ...]) -> Lines:
    if after == before:
        return (f"每人每案上限 {y(cap)} 元（按每位举报人的份额）：未超过",
                f"per-person cap of {y(cap)} yuan on each reporter's share: within it")
    cut = sum(1 for a, b in zip(before, after, strict=True) if a != b)
    return (f"每人每案上限 {y(cap)} 元（按每位举报人的份额）：{cut} 人的份额降至 {y(cap)} 元，"
            f"合计 {y(sum(after))} 元",
            f"per-person cap of {y(cap)} yuan on each reporter's share: {cut} share(s) "
            f"lowered to {y(cap)} yuan, {y(sum(after))} yuan in all")


def per_case_cap(cap: int, before: int, after: int) -> Lines:
    if after == before:
        return (f"每人每案上限 {y(cap)} 元：未超过", f"per-case cap of {y(cap)} yuan: within it")
    return (f"每人每案上限 {y(cap)} 元：{y(before)} 元 → {y(after)} 元",
            f"per-case cap of {y(cap)} yuan: {y(before)} yuan → {y(after)} yuan")


def per_period_cap(period: str, cap: int, approved: int, before: int, after: int,
                   over: bool = False) -> Lines:
    left = max(0, cap - approved)
    zh = (f"每人每{PERIOD_ZH[period]}上限 {y(cap)} 元，本{PERIOD_ZH[period]}已批准 "
          f"{y(approved)} 元，尚余 {y(left)} 元")
    en = (f"per-{period} cap of {y(cap)} yuan, {y(approved)} yuan already approved this "
          f"{period}, {y(left)} yuan left")
    if over:
        # Approvals already above the cap are a problem for the approver to look at, not
        # just "0 left".
        zh += f"（已批准金额已超过上限 {y(approved - cap)} 元）"
        en += f" (approvals already exceed the cap by {y(approved - cap)} yuan)"
    if after == before:
        return zh + "：未超过", en + ": within it"
    return zh + f"：{y(before)} 元 → {y(after)} 元", en + f": {y(before)} yuan → {y(after)} yuan"


def joint(n: int, total: int, shares: tuple[int, ...]) -> Lines:
    if n == 1:
        return "单人举报：不分配", "a single reporter: no split"
    each = shares[-1]
    rest = shares[0] - each
    zh = f"{n} 人联名举报，平分 {y(total)} 元：每人 {y(each)} 元"
    en = f"joint report by {n}: {y(total)} yuan split, {y(each)} yuan each"
    if rest:
        zh += f"，余 {y(rest)} 元归第一署名人（{y(shares[0])} 元）"
        en += f", the remaining {y(rest)} yuan to the first signatory ({y(shares[0])} yuan)"
    return zh, en


def render(record: Explained) -> str:
    """The calculation as text: Chinese lines, then English lines, then the result."""
    out = [f"政策 {record.policy_id} 第 {record.policy_version} 版 / policy "
           f"{record.policy_id} version {record.policy_version}", ""]
    out += [f"{i}. {step.zh}" for i, step in enumerate(record.steps, start=1)]
    out.append(f"奖励金额：{y(record.amount_fen)} 元")
    out.append("")
    out += [f"{i}. {step.en}" for i, step in enumerate(record.steps, start=1)]
    out.append(f"Reward: {y(record.amount_fen)} yuan")
    out.append("")
    if len(record.shares_fen) > 1:
        shares = " + ".join(plain_yuan(share) for share in record.shares_fen)
        out.append(f"shares: {shares}")
    out.append(f"{plain_yuan(record.amount_fen)} CNY")
    return "\n".join(out)
