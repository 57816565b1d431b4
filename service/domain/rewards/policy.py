"""Reward policies: versioned TOML data files, parsed and validated into frozen rules.

A policy never contains code. Every number in it is checked on load, and every refusal names
the file and the line of the offending key, in English and Chinese, because the people who
edit these files are administrators, not programmers.

Longer than 500 lines because it is one file format: each rule kind's shape and its
validation (with file and line in both languages) sit side by side.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from service.domain.rewards.money import MAX_FEN, AmountError, parse_amount, percent_of
from service.platform import resources

POLICY_DIR = resources.package_data("service.domain.rewards", "policies")

# One grade vocabulary for hazards and accidents: hazards use general/major (and some local
# rules especially_major); accidents use all four grades of the 2007 accident regulation.
GRADES: tuple[str, ...] = ("general", "larger", "major", "especially_major")
GRADE_ZH = {"general": "一般", "larger": "较大", "major": "重大", "especially_major": "特别重大"}
GRADE_EN = {"general": "general", "larger": "larger", "major": "major",
            "especially_major": "especially major"}

PERIODS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")
PERIOD_ZH = {"day": "日", "week": "周", "month": "月", "quarter": "季度", "year": "年"}

BASE_KINDS = ("percentage_of_fine", "catalogue", "tiers_by_grade", "per_death")
KINDS = BASE_KINDS + ("insider_uplift", "flag_bonus", "person_cap", "first_valid_only",
                      "joint_split")
# How a rule kind is named inside Chinese sentences (the English key stays in brackets).
KIND_ZH = {"percentage_of_fine": "按罚款比例", "catalogue": "按目录",
           "tiers_by_grade": "按等级分档", "per_death": "按死亡人数",
           "insider_uplift": "内部人员加奖", "flag_bonus": "附加条件加奖",
           "person_cap": "每人上限", "first_valid_only": "首个有效举报",
           "joint_split": "联名举报分配"}

_CASE_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_POLICY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PERCENT = re.compile(r"^[0-9]+(\.[0-9]{1,4})?$")
_FLAG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def kind_zh(kind: str) -> str:
    """'tiers_by_grade' -> '按等级分档（tiers_by_grade）': Chinese first, the file's key after."""
    return f"{KIND_ZH[kind]}（{kind}）" if kind in KIND_ZH else kind


class PolicyError(Exception):
    """A policy file that cannot be used; says where (file, line) and what, in en and zh."""

    def __init__(self, source: str, line: int | None, en: str, zh: str) -> None:
        self.source = source
        self.line = line
        self.en = en
        self.zh = zh
        where_en = f"{source}, line {line}" if line else source
        where_zh = f"{source} 第 {line} 行" if line else source
        super().__init__(f"{where_en}: {en}\n{where_zh}：{zh}")


@dataclass(frozen=True)
class PolicyWarning:
    """Something odd that loads anyway (`reward check` prints it): line, en, zh."""

    line: int
    en: str
    zh: str


# --- rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    number: int  # 1-based position in the file; the record cites it
    kind: str
    line: int
    case_types: frozenset[str] | None  # None: every case type
    grades: frozenset[str] | None  # None: any grade, including none given
    ref: str
    default: bool  # a base rule that yields to any other base rule matching the same case

    def matches(self, case_type: str, grade: str | None) -> bool:
        if self.case_types is not None and case_type not in self.case_types:
            return False
        return self.grades is None or grade in self.grades


@dataclass(frozen=True)
class PercentageRule(Rule):
    rate: Fraction  # percent
    rate_text: str
    floor_fen: int | None
    cap_fen: int | None
    at_least_floor: bool
    insider_cap_fen: int | None  # replaces cap_fen when the reporter is an insider


@dataclass(frozen=True)
class CatalogueItem:
    amount_fen: int | None  # fixed amount, or None for a band
    min_fen: int | None
    max_fen: int | None
    title_zh: str
    title_en: str


@dataclass(frozen=True)
class CatalogueRule(Rule):
    items: Mapping[str, CatalogueItem]


@dataclass(frozen=True)
class TiersRule(Rule):
    tiers: Mapping[str, tuple[int, ...]]  # grade -> amounts in fen, level 1 first


@dataclass(frozen=True)
class PerDeathRule(Rule):
    amounts: Mapping[str, int]  # grade -> fen per death
    max_deaths: Mapping[str, int]  # grade -> most concealed deaths an accident of it can have
    cap_fen: int | None
    insider_cap_fen: int | None  # replaces cap_fen when the reporter is an insider


@dataclass(frozen=True)
class InsiderUpliftRule(Rule):
    rate: Fraction | None  # percent of the amount so far; None with points
    rate_text: str
    points: Fraction | None  # percentage points added to the base rule's rate instead
    points_text: str
    minimum_fen: int | None
    max_uplift_fen: int | None
    cap_fen: int | None  # on the amount after the uplift


@dataclass(frozen=True)
class FlagBonusRule(Rule):
    flag: str  # a name declared under [flags]
    rate: Fraction | None  # percent of the amount so far, or
    rate_text: str
    amount_fen: int | None  # a fixed amount added
    cap_fen: int | None  # on the amount after the bonus


@dataclass(frozen=True)
class Flag:
    name: str
    title_zh: str
    title_en: str


@dataclass(frozen=True)
class PersonCapRule(Rule):
    per_case_fen: int | None
    per_period_fen: int | None
    period: str | None
    per_share: bool  # per_case applies to each joint reporter's share, after the split


@dataclass(frozen=True)
class FirstValidRule(Rule):
    pass


@dataclass(frozen=True)
class JointSplitRule(Rule):
    pass


@dataclass(frozen=True)
class Policy:
    id: str
    version: int
    title_zh: str
    title_en: str
    source: str
    effective: dt.date
    currency: str
    claim_window_days: int | None
    rules: tuple[Rule, ...]
    digest: str  # SHA-256 of the file text: a record names exactly what it was computed with
    path: str
    flags: Mapping[str, Flag]  # named yes/no inputs the policy declares, file order
    warnings: tuple[PolicyWarning, ...]
    format: int  # 2 if the file uses a key or kind added after the first record schema

    def rules_of(self, kind: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.kind == kind)

    @property
    def base_rules(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.kind in BASE_KINDS)

    def case_types(self) -> list[str]:
        """Case types some base rule names; empty if a base rule takes every type."""
        names: set[str] = set()
        for rule in self.base_rules:
            if isinstance(rule, CatalogueRule):
                names.update(rule.items)
            elif rule.case_types is not None:
                names.update(rule.case_types)
        return sorted(names)

    def ceiling_fen(self) -> int | None:
        """The most any calculation under this policy can pay, or None if unbounded."""
        best: int | None = 0
        for rule in self.base_rules:
            top = _base_ceiling(rule)
            best = None if best is None or top is None else max(best, top)
        for rule in self.rules_of("insider_uplift"):
            assert isinstance(rule, InsiderUpliftRule)
            if best is None or rule.rate is None:
                continue  # points change the base rate, which its (insider) cap bounds
            # Mirrors calc: the uplift never lowers an amount, and grows with the amount.
            lifted = best + uplift_of(best, rule)
            if rule.cap_fen is not None:
                lifted = max(best, min(lifted, rule.cap_fen))
            best = lifted
        for rule in self.rules_of("flag_bonus"):
            assert isinstance(rule, FlagBonusRule)
            if best is None:
                continue
            lifted = best + bonus_of(best, rule)
            if rule.cap_fen is not None:
                lifted = max(best, min(lifted, rule.cap_fen))
            best = lifted
        for rule in self.rules_of("person_cap"):
            assert isinstance(rule, PersonCapRule)
            if rule.case_types is None and rule.grades is None and not rule.per_share:
                for cap in (rule.per_case_fen, rule.per_period_fen):
                    if cap is not None:
                        best = cap if best is None else min(best, cap)
        return best


def _base_ceiling(rule: Rule) -> int | None:
    if isinstance(rule, PercentageRule | PerDeathRule):
        if rule.cap_fen is None:
            return None
        return max(rule.cap_fen, rule.insider_cap_fen or 0)
    if isinstance(rule, CatalogueRule):
        return max((i.amount_fen if i.amount_fen is not None else i.max_fen or 0)
                   for i in rule.items.values())
    if isinstance(rule, TiersRule):
        return max(max(amounts) for amounts in rule.tiers.values())
    raise AssertionError(rule.kind)


def uplift_of(amount_fen: int, rule: InsiderUpliftRule) -> int:
    """The insider uplift on an amount: rate, then the minimum, then its own maximum."""
    if amount_fen <= 0 or rule.rate is None:
        return 0  # nothing to lift: a minimum uplift must not turn "no reward" into one
    uplift = percent_of(amount_fen, rule.rate)
    if rule.minimum_fen is not None:
        uplift = max(uplift, rule.minimum_fen)
    if rule.max_uplift_fen is not None:
        uplift = min(uplift, rule.max_uplift_fen)
    return uplift


def bonus_of(amount_fen: int, rule: FlagBonusRule) -> int:
    """A flag's bonus on an amount: its rate of it, or its fixed amount; none on nothing."""
    if amount_fen <= 0:
        return 0
    if rule.rate is not None:
        return percent_of(amount_fen, rule.rate)
    return rule.amount_fen or 0


# --- locating keys in the file text --------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_KEY_PART})\s*=")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in re.findall(_KEY_PART, dotted))


def locate_keys(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths (array-of-table elements by index) to the 1-based line that defines them.

    tomllib reports positions only for syntax errors, so a valid file that holds a wrong
    value needs this small scanner to say where the value is. It follows table headers,
    arrays of tables, dotted keys and one level of inline tables; that covers policy files.
    """
    lines: dict[tuple[str | int, ...], int] = {}
    aot_index: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    in_string = False
    for number, raw in enumerate(text.splitlines(), start=1):
        quotes = raw.count('"""') + raw.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        header = _HEADER.match(raw)
        if header:
            parts = _split_key(header.group(2))
            resolved: tuple[str | int, ...] = ()
            for part in parts[:-1]:
                resolved += (part,)
                if resolved in aot_index:
                    resolved += (aot_index[resolved],)
                lines.setdefault(resolved, number)  # a table made implicitly by this header
            resolved += (parts[-1],)
            if header.group(1) == "[[":
                aot_index[resolved] = aot_index.get(resolved, -1) + 1
                lines.setdefault(resolved, number)
                resolved += (aot_index[resolved],)
            table = resolved
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            path = table + _split_key(key.group(1))
            lines.setdefault(path, number)
            rest = raw[key.end():]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(rest):
                    lines.setdefault(path + _split_key(inner.group(1)), number)
        in_string = quotes % 2 == 1
    return lines


# --- parsing -------------------------------------------------------------------------------

_TOP_REQUIRED = ("id", "version", "title_zh", "title_en", "source", "effective", "currency",
                 "rules")
_TOP_OPTIONAL = ("claim_window_days", "flags")
_COMMON = ("kind", "ref")
_FILTERS = ("case_types", "grades")
_KIND_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required keys, optional keys) besides kind and ref
    "percentage_of_fine": (("rate",), ("floor", "cap", "at_least_floor", "insider_cap",
                                       "default") + _FILTERS),
    "catalogue": (("items",), ("grades", "default")),
    "tiers_by_grade": (("tiers",), ("case_types", "default")),
    "per_death": (("amounts",), ("max_deaths", "cap", "insider_cap", "case_types", "default")),
    "insider_uplift": ((), ("rate", "points", "minimum", "max_uplift", "cap") + _FILTERS),
    "flag_bonus": (("flag",), ("rate", "amount", "cap") + _FILTERS),
    "person_cap": ((), ("per_case", "per_period", "period", "per_share") + _FILTERS),
    "first_valid_only": ((), ()),
    "joint_split": ((), ()),
}
_ITEM_KEYS = ("amount", "min", "max", "title_zh", "title_en")
_FLAG_KEYS = ("title_zh", "title_en")
# Keys and kinds added after the first record schema: a policy using one is format 2, and its
# records are written as chuishao.reward-calculation/2 (see calc.py).
FORMAT_2_KEYS = frozenset({"insider_cap", "default", "points", "per_share"})
FORMAT_2_KINDS = frozenset({"flag_bonus"})

Path_ = tuple[str | int, ...]


class _Reader:
    """Checks values and raises PolicyError pointing at the line of the key concerned."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = locate_keys(text)
        self.warnings: list[PolicyWarning] = []

    def warn(self, path: Path_, en: str, zh: str) -> None:
        self.warnings.append(PolicyWarning(self.line_of(path), en, zh))

    def spaces(self, value: str, path: Path_) -> str:
        """A value with stray spaces around it loads (stripped), with a warning."""
        if value != value.strip():
            self.warn(path, f"{self.name(path)}: {value!r} has spaces around it",
                      f"{self.name(path)}：{value!r} 首尾有多余空格")
        return value.strip()

    def line_of(self, path: Path_) -> int:
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return 1  # a key missing from the top-level table: point at the top of the file

    def fail(self, path: Path_, en: str, zh: str) -> PolicyError:
        return PolicyError(self.source, self.line_of(path), en, zh)

    @staticmethod
    def name(path: Path_) -> str:
        text = ""
        for part in path:
            text += f"[{part + 1}]" if isinstance(part, int) else ("." if text else "") + part
        return text

    def keys(self, table: Mapping[str, Any], path: Path_, required: tuple[str, ...],
             optional: tuple[str, ...]) -> None:
        for key in table:
            if key not in required and key not in optional:
                known = ", ".join(required + optional)
                raise self.fail(path + (key,),
                                f"unknown key {self.name(path + (key,))!r} (known: {known})",
                                f"未知的键 {self.name(path + (key,))!r}（可用：{known}）")
        for key in required:
            if key not in table:
                raise self.fail(path, f"missing required key {self.name(path + (key,))!r}",
                                f"缺少必填的键 {self.name(path + (key,))!r}")

    def table(self, value: Any, path: Path_) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"{self.name(path)} must be a table",
                            f"{self.name(path)} 应为表（table）")
        return value

    def text(self, value: Any, path: Path_) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"{self.name(path)} must be a non-empty string",
                            f"{self.name(path)} 应为非空字符串")
        self.spaces(value, path)
        return value

    def boolean(self, value: Any, path: Path_) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"{self.name(path)} must be true or false",
                            f"{self.name(path)} 应为 true 或 false")
        return value

    def count(self, value: Any, path: Path_, minimum: int = 1) -> int:
        # bool is an int in Python; `true` is not a number of days.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"{self.name(path)} must be a whole number",
                            f"{self.name(path)} 应为整数")
        if value < minimum or value > 10**6:
            raise self.fail(path, f"{self.name(path)} must be between {minimum} and 1000000",
                            f"{self.name(path)} 应在 {minimum} 到 1000000 之间")
        return value

    def yuan(self, value: Any, path: Path_) -> int:
        """An amount in yuan (integer or decimal string with ≤ 2 places) as exact fen."""
        if isinstance(value, bool | float) or not isinstance(value, int | str):
            raise self.fail(
                path, f"{self.name(path)} must be yuan as an integer or a decimal string such "
                f"as \"12.50\" (never a floating-point number)",
                f"{self.name(path)} 应为以元计的整数或小数字符串，如 \"12.50\"（不可用浮点数）")
        if isinstance(value, int):
            fen = value * 100
        else:
            self.spaces(value, path)
            try:
                fen = parse_amount(value)
            except AmountError as exc:
                if exc.reason == "negative":
                    fen = -1
                elif exc.reason == "too_large":
                    fen = MAX_FEN + 1
                else:
                    raise self.fail(path, f"{self.name(path)}: {value!r} is not an amount in "
                                    "yuan with at most 2 decimals",
                                    f"{self.name(path)}：{value!r} 不是最多两位小数的元金额"
                                    ) from None
        if fen < 0:
            raise self.fail(path, f"{self.name(path)} must not be negative",
                            f"{self.name(path)} 不能为负数")
        if fen > MAX_FEN:
            raise self.fail(path, f"{self.name(path)} is absurdly large",
                            f"{self.name(path)} 数额大得不合理")
        if fen == 0:
            self.warn(path, f"{self.name(path)} is zero", f"{self.name(path)} 为零")
        return fen

    def percent(self, value: Any, path: Path_) -> tuple[Fraction, str]:
        if isinstance(value, bool | float) or not isinstance(value, int | str):
            raise self.fail(path, f"{self.name(path)} must be a percentage as an integer or a "
                            "decimal string such as \"12.5\" (never a floating-point number)",
                            f"{self.name(path)} 应为百分数，写作整数或小数字符串，如 \"12.5\""
                            "（不可用浮点数）")
        text = self.spaces(value, path) if isinstance(value, str) else str(value)
        if isinstance(value, str) and not _PERCENT.match(text) and not text.startswith("-"):
            raise self.fail(path, f"{self.name(path)}: {value!r} is not a percentage",
                            f"{self.name(path)}：{value!r} 不是百分数")
        rate = Fraction(text)
        if rate < 0 or rate > 100:
            raise self.fail(path, f"{self.name(path)} must be between 0 and 100 (percent)",
                            f"{self.name(path)} 应在 0 到 100（百分比）之间")
        if rate == 0:
            self.warn(path, f"{self.name(path)} is zero", f"{self.name(path)} 为零")
        return rate, _percent_text(text)

    def grade(self, value: Any, path: Path_) -> str:
        if isinstance(value, str) and value.strip() in GRADES:
            value = self.spaces(value, path)
        if value not in GRADES:
            raise self.fail(path, f"{self.name(path)}: unknown grade {value!r} "
                            f"(known: {', '.join(GRADES)})",
                            f"{self.name(path)}：未知等级 {value!r}（可用：{', '.join(GRADES)}）")
        return str(value)

    def names(self, value: Any, path: Path_, grades: bool) -> frozenset[str]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"{self.name(path)} must be a non-empty list of names",
                            f"{self.name(path)} 应为非空的名称列表")
        seen: set[str] = set()
        for index, item in enumerate(value):
            name = (self.grade(item, path + (index,)) if grades
                    else self.case_type(item, path + (index,)))
            if name in seen:
                self.warn(path + (index,), f"{self.name(path)}: {name!r} is listed twice",
                          f"{self.name(path)}：{name!r} 重复列出")
            seen.add(name)
        return frozenset(seen)

    def case_type(self, value: Any, path: Path_) -> str:
        if isinstance(value, str) and _CASE_TYPE.match(value.strip()):
            value = self.spaces(value, path)
        if not isinstance(value, str) or not _CASE_TYPE.match(value):
            raise self.fail(path, f"{self.name(path)}: {value!r} is not a case type name "
                            "(lower-case letters, digits, - and _)",
                            f"{self.name(path)}：{value!r} 不是案件类型名称"
                            "（小写字母、数字、-、_）")
        return value


def _percent_text(text: str) -> str:
    """'15' -> '15', '12.50' -> '12.5': how the rate is shown in explanations."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Parse and validate policy TOML text. `source` names the file in error messages."""
    # Windows editors save UTF-8 with a byte-order mark; it is not part of the policy (and
    # not part of its digest, so the same rules saved either way are the same version).
    text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says "(at line L, column C)"; keep it whole.
        match = re.search(r"line (\d+)", str(exc))
        raise PolicyError(source, int(match.group(1)) if match else None,
                          f"TOML syntax error: {exc}", f"TOML 语法错误：{exc}") from exc
    reader = _Reader(source, text)
    reader.keys(data, (), _TOP_REQUIRED, _TOP_OPTIONAL)
    policy_id = reader.text(data["id"], ("id",))
    if not _POLICY_ID.match(policy_id):
        raise reader.fail(("id",), "id must be lower-case letters, digits, '.', '-' or '_'",
                          "id 只能由小写字母、数字、'.'、'-'、'_' 组成")
    version = reader.count(data["version"], ("version",))
    effective = data["effective"]
    if not isinstance(effective, dt.date) or isinstance(effective, dt.datetime):
        raise reader.fail(("effective",), "effective must be a date such as 2018-01-04",
                          "effective 应为日期，如 2018-01-04")
    if data["currency"] != "CNY":
        raise reader.fail(("currency",), "currency must be \"CNY\"", "currency 应为 \"CNY\"")
    claim = data.get("claim_window_days")
    claim_days = None if claim is None else reader.count(claim, ("claim_window_days",))
    raw_rules = data["rules"]
    if not isinstance(raw_rules, list) or not raw_rules:
        raise reader.fail(("rules",), "rules must be a non-empty list of [[rules]] tables",
                          "rules 应为非空的 [[rules]] 表列表")
    flags = _parse_flags(reader, data.get("flags"))
    rules = tuple(_parse_rule(reader, raw, index, flags)
                  for index, raw in enumerate(raw_rules))
    _check_rule_set(reader, rules)
    new_keys = any(isinstance(raw, dict) and (raw.get("kind") in FORMAT_2_KINDS
                                              or FORMAT_2_KEYS & set(raw)) for raw in raw_rules)
    return Policy(
        id=policy_id, version=version, title_zh=reader.text(data["title_zh"], ("title_zh",)),
        title_en=reader.text(data["title_en"], ("title_en",)),
        source=reader.text(data["source"], ("source",)), effective=effective, currency="CNY",
        claim_window_days=claim_days, rules=rules,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(), path=source, flags=flags,
        warnings=tuple(reader.warnings), format=2 if flags or new_keys else 1)


def _parse_flags(reader: _Reader, raw: Any) -> dict[str, Flag]:
    """[flags.NAME] tables: the yes/no inputs (besides insider) the policy's rules may use."""
    if raw is None:
        return {}
    table = reader.table(raw, ("flags",))
    flags: dict[str, Flag] = {}
    for name, raw_flag in table.items():
        path: Path_ = ("flags", name)
        if not _FLAG.match(name) or name in ("insider", "first_valid"):
            raise reader.fail(path, f"flags.{name}: a flag name is lower-case letters, digits "
                              "and _ (at most 32), and not insider or first_valid",
                              f"flags.{name}：条件名称只能由小写字母、数字、_ 组成（至多 32 个），"
                              "且不能是 insider 或 first_valid")
        flag = reader.table(raw_flag, path)
        reader.keys(flag, path, _FLAG_KEYS, ())
        flags[name] = Flag(name, reader.text(flag["title_zh"], path + ("title_zh",)).strip(),
                           reader.text(flag["title_en"], path + ("title_en",)).strip())
    return flags


def _parse_rule(reader: _Reader, raw: Any, index: int, flags: Mapping[str, Flag]) -> Rule:
    path: Path_ = ("rules", index)
    table = reader.table(raw, path)
    if "kind" not in table:
        raise reader.fail(path, f"rule {index + 1} has no kind", f"第 {index + 1} 条规则缺少 kind")
    kind = table["kind"]
    if kind not in _KIND_KEYS:
        raise reader.fail(path + ("kind",),
                          f"unknown rule kind {kind!r} (known: {', '.join(KINDS)})",
                          f"未知的规则类型 {kind!r}（可用：{', '.join(KINDS)}）")
    required, optional = _KIND_KEYS[kind]
    reader.keys(table, path, ("kind",) + required, optional + ("ref",))
    common: dict[str, Any] = {
        "number": index + 1, "kind": kind, "line": reader.line_of(path),
        "case_types": (reader.names(table["case_types"], path + ("case_types",), grades=False)
                       if "case_types" in table else None),
        "grades": (reader.names(table["grades"], path + ("grades",), grades=True)
                   if "grades" in table else None),
        "ref": reader.text(table["ref"], path + ("ref",)) if "ref" in table else "",
        "default": (reader.boolean(table["default"], path + ("default",))
                    if "default" in table else False),
    }

    def amount(key: str) -> int | None:
        return reader.yuan(table[key], path + (key,)) if key in table else None

    if kind == "percentage_of_fine":
        rate, rate_text = reader.percent(table["rate"], path + ("rate",))
        floor, cap = amount("floor"), amount("cap")
        _check_floor_cap(reader, path, floor, cap, "floor", "cap")
        if floor is not None and "at_least_floor" not in table:
            raise reader.fail(path + ("floor",), "a floor needs at_least_floor = true or false",
                              "设置了 floor 就必须写明 at_least_floor = true 或 false")
        if floor is None and "at_least_floor" in table:
            raise reader.fail(path + ("at_least_floor",), "at_least_floor needs a floor",
                              "at_least_floor 需要配合 floor 使用")
        at_least = (reader.boolean(table["at_least_floor"], path + ("at_least_floor",))
                    if "at_least_floor" in table else False)
        return PercentageRule(**common, rate=rate, rate_text=rate_text, floor_fen=floor,
                              cap_fen=cap, at_least_floor=at_least,
                              insider_cap_fen=_insider_cap(reader, path, table, cap))
    if kind == "catalogue":
        items_path = path + ("items",)
        items = reader.table(table["items"], items_path)
        if not items:
            raise reader.fail(items_path, "items must list at least one case type",
                              "items 至少要列出一种案件类型")
        parsed: dict[str, CatalogueItem] = {}
        for key, raw_item in items.items():
            item_path = items_path + (key,)
            name = reader.case_type(key, item_path)
            item = reader.table(raw_item, item_path)
            reader.keys(item, item_path, (), _ITEM_KEYS)
            fixed = reader.yuan(item["amount"], item_path + ("amount",)) if "amount" in item \
                else None
            low = reader.yuan(item["min"], item_path + ("min",)) if "min" in item else None
            high = reader.yuan(item["max"], item_path + ("max",)) if "max" in item else None
            if (fixed is None) == (low is None and high is None) or \
                    (fixed is None and (low is None or high is None)):
                raise reader.fail(item_path, f"{reader.name(item_path)} needs either amount or "
                                  "both min and max", f"{reader.name(item_path)} 需要 amount，"
                                  "或同时给出 min 和 max")
            _check_floor_cap(reader, item_path, low, high, "min", "max")
            parsed[name] = CatalogueItem(
                amount_fen=fixed, min_fen=low, max_fen=high,
                title_zh=reader.text(item["title_zh"], item_path + ("title_zh",))
                if "title_zh" in item else "",
                title_en=reader.text(item["title_en"], item_path + ("title_en",))
                if "title_en" in item else "")
        common["case_types"] = frozenset(parsed)
        return CatalogueRule(**common, items=parsed)
    if kind == "tiers_by_grade":
        tiers_path = path + ("tiers",)
        raw_tiers = reader.table(table["tiers"], tiers_path)
        if not raw_tiers:
            raise reader.fail(tiers_path, "tiers must name at least one grade",
                              "tiers 至少要包含一个等级")
        tiers: dict[str, tuple[int, ...]] = {}
        for grade, amounts in raw_tiers.items():
            reader.grade(grade, tiers_path + (grade,))
            if not isinstance(amounts, list) or not amounts:
                raise reader.fail(tiers_path + (grade,), f"tiers.{grade} must be a non-empty "
                                  "list of amounts", f"tiers.{grade} 应为非空的金额列表")
            tiers[grade] = tuple(reader.yuan(value, tiers_path + (grade, i))
                                 for i, value in enumerate(amounts))
            falling = [i for i in range(1, len(tiers[grade]))
                       if tiers[grade][i] < tiers[grade][i - 1]]
            if falling:
                i = falling[0]
                reader.warn(tiers_path + (grade,),
                            f"tiers.{grade}: tier {i + 1} pays less than tier {i} (tiers are "
                            "usually listed from the lowest amount up)",
                            f"tiers.{grade}：{GRADE_ZH[grade]}等级第 {i + 1} 档的金额低于第 {i} 档"
                            "（通常按金额从低到高排列）")
        common["grades"] = frozenset(tiers)
        return TiersRule(**common, tiers=tiers)
    if kind == "per_death":
        amounts_path = path + ("amounts",)
        raw_amounts = reader.table(table["amounts"], amounts_path)
        if not raw_amounts:
            raise reader.fail(amounts_path, "amounts must name at least one grade",
                              "amounts 至少要包含一个等级")
        per_grade = {reader.grade(g, amounts_path + (g,)): reader.yuan(v, amounts_path + (g,))
                     for g, v in raw_amounts.items()}
        limits: dict[str, int] = {}
        if "max_deaths" in table:
            limits_path = path + ("max_deaths",)
            for grade, value in reader.table(table["max_deaths"], limits_path).items():
                reader.grade(grade, limits_path + (grade,))
                if grade not in per_grade:
                    raise reader.fail(limits_path + (grade,), f"max_deaths.{grade} has no "
                                      "amount", f"max_deaths.{grade} 没有对应的 amounts")
                limits[grade] = reader.count(value, limits_path + (grade,))
        common["grades"] = frozenset(per_grade)
        cap = amount("cap")
        return PerDeathRule(**common, amounts=per_grade, max_deaths=limits, cap_fen=cap,
                            insider_cap_fen=_insider_cap(reader, path, table, cap))
    if kind == "insider_uplift":
        _one_of(reader, path, table, "rate", "points")
        up_rate: Fraction | None = None
        points: Fraction | None = None
        rate_text = points_text = ""
        if "rate" in table:
            up_rate, rate_text = reader.percent(table["rate"], path + ("rate",))
        else:
            points, points_text = reader.percent(table["points"], path + ("points",))
            for key in ("minimum", "max_uplift", "cap"):
                if key in table:
                    raise reader.fail(path + (key,), f"{key} does not go with points: points "
                                      "raise the base rule's rate, whose cap or insider_cap "
                                      "limits the result", f"{key} 不能与 points 同用："
                                      "points 提高的是基础规则的比例，结果由该规则的 cap 或 "
                                      "insider_cap 限定")
        minimum, max_uplift = amount("minimum"), amount("max_uplift")
        _check_floor_cap(reader, path, minimum, max_uplift, "minimum", "max_uplift")
        return InsiderUpliftRule(**common, rate=up_rate, rate_text=rate_text, points=points,
                                 points_text=points_text, minimum_fen=minimum,
                                 max_uplift_fen=max_uplift, cap_fen=amount("cap"))
    if kind == "flag_bonus":
        flag = table["flag"]
        if not isinstance(flag, str) or flag not in flags:
            known = ", ".join(flags) or "-"
            raise reader.fail(path + ("flag",), f"flag {flag!r} is not declared under [flags] "
                              f"(declared: {known})",
                              f"条件 {flag!r} 未在 [flags] 中声明（已声明：{known}）")
        _one_of(reader, path, table, "rate", "amount")
        bonus_rate, bonus_text = (reader.percent(table["rate"], path + ("rate",))
                                  if "rate" in table else (None, ""))
        return FlagBonusRule(**common, flag=str(flag), rate=bonus_rate, rate_text=bonus_text,
                             amount_fen=amount("amount"), cap_fen=amount("cap"))
    if kind == "person_cap":
        per_case, per_period = amount("per_case"), amount("per_period")
        if per_case is None and per_period is None:
            raise reader.fail(path, "person_cap needs per_case, per_period or both",
                              "person_cap 需要 per_case 或 per_period（或两者）")
        period = table.get("period")
        if per_period is not None and period is None:
            raise reader.fail(path + ("per_period",),
                              f"per_period needs a period ({', '.join(PERIODS)})",
                              f"per_period 需要 period（{'、'.join(PERIODS)}）")
        if period is not None and per_period is None:
            raise reader.fail(path + ("period",), "period needs per_period",
                              "period 需要配合 per_period 使用")
        if period is not None and period not in PERIODS:
            raise reader.fail(path + ("period",), f"unknown period {period!r} (known: "
                              f"{', '.join(PERIODS)})", f"未知的期间 {period!r}（可用："
                              f"{', '.join(PERIODS)}）")
        per_share = (reader.boolean(table["per_share"], path + ("per_share",))
                     if "per_share" in table else False)
        if per_share and (per_case is None or per_period is not None):
            raise reader.fail(path + ("per_share",), "per_share applies per_case to each joint "
                              "reporter's share: give per_case, and write a period cap as a "
                              "rule of its own", "per_share 表示 per_case 按每位联名举报人的份额"
                              "计算：请填写 per_case，期间上限另写一条规则")
        return PersonCapRule(**common, per_case_fen=per_case, per_period_fen=per_period,
                             period=period, per_share=per_share)
    if kind == "first_valid_only":
        return FirstValidRule(**common)
    return JointSplitRule(**common)


def _one_of(reader: _Reader, path: Path_, table: Mapping[str, Any], a: str, b: str) -> None:
    if (a in table) == (b in table):
        kind = table.get("kind")
        raise reader.fail(path, f"{kind} needs either {a} or {b} (not both)",
                          f"{kind_zh(str(kind))} 需要 {a} 或 {b} 之一（不能同时给出）")


def _insider_cap(reader: _Reader, path: Path_, table: Mapping[str, Any],
                 cap: int | None) -> int | None:
    """A higher cap for insiders, applied to the base amount in place of cap."""
    if "insider_cap" not in table:
        return None
    insider_cap = reader.yuan(table["insider_cap"], path + ("insider_cap",))
    if cap is None or insider_cap < cap:
        raise reader.fail(path + ("insider_cap",), "insider_cap is a higher cap for insiders: "
                          "it needs cap, and must not be below it",
                          "insider_cap 是内部人员的更高上限：需要同时设置 cap，且不能低于 cap")
    return insider_cap


def _check_floor_cap(reader: _Reader, path: Path_, low: int | None, high: int | None,
                     low_key: str, high_key: str) -> None:
    if low is not None and high is not None and low > high:
        raise reader.fail(path + (low_key,), f"{low_key} is greater than {high_key}",
                          f"{low_key} 大于 {high_key}")


def _overlap(a: Rule, b: Rule) -> bool:
    def meet(x: frozenset[str] | None, y: frozenset[str] | None) -> bool:
        return x is None or y is None or bool(x & y)

    return meet(a.case_types, b.case_types) and meet(a.grades, b.grades)


def _check_rule_set(reader: _Reader, rules: tuple[Rule, ...]) -> None:
    """One answer per input: base rules and uplifts must not overlap; gates appear once."""
    if not any(rule.kind in BASE_KINDS for rule in rules):
        raise reader.fail(("rules",), "the policy has no rule that sets an amount (one of "
                          f"{', '.join(BASE_KINDS)})",
                          f"该政策没有确定金额的规则（{', '.join(BASE_KINDS)} 之一）")
    groups = (BASE_KINDS, ("insider_uplift",), ("first_valid_only",), ("joint_split",))
    for group in groups:
        members = [rule for rule in rules if rule.kind in group]
        for i, later in enumerate(members):
            for earlier in members[:i]:
                # A default rule yields to the others (its exceptions); two defaults, or two
                # exceptions, that could meet would leave the case with two answers.
                if _overlap(earlier, later) and earlier.default == later.default:
                    _refuse_overlap(reader, earlier, later)
    bonuses = [rule for rule in rules if isinstance(rule, FlagBonusRule)]
    for i, later_bonus in enumerate(bonuses):
        for earlier_bonus in bonuses[:i]:
            if earlier_bonus.flag == later_bonus.flag and _overlap(earlier_bonus, later_bonus):
                _refuse_overlap(reader, earlier_bonus, later_bonus)
    for uplift in rules:
        if not isinstance(uplift, InsiderUpliftRule) or uplift.points is None:
            continue
        for base in rules:
            if base.kind not in BASE_KINDS or not _overlap(base, uplift):
                continue
            if not isinstance(base, PercentageRule):
                raise reader.fail(
                    ("rules", uplift.number - 1, "points"),
                    f"rule {uplift.number} adds percentage points, but rule {base.number} "
                    f"({base.kind}) has no rate: give the uplift case_types or grades that "
                    "meet only percentage_of_fine rules",
                    f"第 {uplift.number} 条规则增加百分点，但第 {base.number} 条规则"
                    f"（{kind_zh(base.kind)}）没有比例：请用 case_types 或 grades 使其只适用于"
                    "按罚款比例的规则")
            if base.rate + uplift.points > 100:
                raise reader.fail(
                    ("rules", uplift.number - 1, "points"),
                    f"rule {uplift.number} raises rule {base.number}'s rate of "
                    f"{base.rate_text}% above 100%",
                    f"第 {uplift.number} 条规则使第 {base.number} 条规则的比例 "
                    f"{base.rate_text}% 超过 100%")


def _refuse_overlap(reader: _Reader, earlier: Rule, later: Rule) -> None:
    raise reader.fail(
        ("rules", later.number - 1),
        f"rule {later.number} ({later.kind}) overlaps rule {earlier.number} "
        f"({earlier.kind}): give them case_types or grades that do not meet"
        + (", or mark the general one default = true" if later.kind in BASE_KINDS else ""),
        f"第 {later.number} 条规则（{kind_zh(later.kind)}）与第 {earlier.number} 条"
        f"（{kind_zh(earlier.kind)}）适用范围重叠：请用不相交的 case_types 或 grades 区分"
        + ("，或将通用的一条标为 default = true" if later.kind in BASE_KINDS else ""))


# --- loading -------------------------------------------------------------------------------


def load_policy_file(path: str | Path) -> Policy:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(file), None, f"cannot read the file: {exc}",
                          f"无法读取文件：{exc}") from exc
    return parse_policy(text, str(file))


def shipped_policy_ids() -> list[str]:
    return sorted(path.stem for path in POLICY_DIR.glob("*.toml"))


def load_policy(policy_id: str) -> Policy:
    """A shipped policy by id; its file name is the id, and the file must agree."""
    if not _POLICY_ID.match(policy_id) or policy_id not in shipped_policy_ids():
        known = ", ".join(shipped_policy_ids())
        raise PolicyError(policy_id, None, f"no shipped policy {policy_id!r} (known: {known})",
                          f"没有内置政策 {policy_id!r}（可用：{known}）")
    policy = load_policy_file(POLICY_DIR / f"{policy_id}.toml")
    if policy.id != policy_id:
        raise PolicyError(policy.path, 1, f"id {policy.id!r} differs from the file name",
                          f"id {policy.id!r} 与文件名不一致")
    return policy


def shipped_policies() -> list[Policy]:
    return [load_policy(policy_id) for policy_id in shipped_policy_ids()]
