"""Reward policies: versioned TOML data files, parsed and validated into frozen rules.

A policy never contains code. Every number in it is checked on load, and every refusal names
the file and the line of the offending key, in a message the catalogs translate into English
and Chinese, because the people who edit these files are administrators, not programmers.

Longer than 500 lines because it is one file format: each rule kind's shape and its
validation (with file and line) sit side by side.
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
from service.platform.i18n import N_, Listed, Message, source_text

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
# A rule kind or a grade named inside a refusal: the file's key in English; in Chinese
# "按等级分档（tiers_by_grade）", the key in brackets.
KIND_TERMS = {"percentage_of_fine": N_("percentage_of_fine"), "catalogue": N_("catalogue"),
              "tiers_by_grade": N_("tiers_by_grade"), "per_death": N_("per_death"),
              "insider_uplift": N_("insider_uplift"), "flag_bonus": N_("flag_bonus"),
              "person_cap": N_("person_cap"), "first_valid_only": N_("first_valid_only"),
              "joint_split": N_("joint_split")}
GRADE_TERMS = {"general": N_("general"), "larger": N_("larger"), "major": N_("major"),
               "especially_major": N_("especially_major")}

_CASE_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_POLICY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PERCENT = re.compile(r"^[0-9]+(\.[0-9]{1,4})?$")
_FLAG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def kind_term(kind: str) -> object:
    """A rule kind as a parameter of a message: translated if it is one the file may use."""
    return Message(KIND_TERMS[kind]) if kind in KIND_TERMS else kind


def grade_terms(grades: list[str]) -> Listed:
    return Listed(tuple(Message(GRADE_TERMS[grade]) for grade in grades))


def located(source: str, line: int | None, reason: Message) -> Message:
    """'p.toml, line 3: …': where, then what."""
    if line:
        return Message(N_("{source}, line {line}: {reason}"),
                       {"source": source, "line": line, "reason": reason})
    return Message(N_("{source}: {reason}"), {"source": source, "reason": reason})


class PolicyError(Exception):
    """A policy file that cannot be used: where (file, line) and what, a message id marked
    with N_() and its parameters; str() is the English text."""

    def __init__(self, source: str, line: int | None, message: str, **params: object) -> None:
        self.source = source
        self.line = line
        self.message = message
        self.params = params
        where = located(source, line, self.reason)
        super().__init__(source_text(where.id, **where.params))

    @property
    def reason(self) -> Message:
        return Message(self.message, self.params)

    @property
    def located(self) -> Message:
        return located(self.source, self.line, self.reason)


@dataclass(frozen=True)
class PolicyWarning:
    """Something odd that loads anyway (`reward check` prints it): its line, and a message
    id marked with N_() with its parameters."""

    line: int
    message: str
    params: Mapping[str, object]

    @property
    def reason(self) -> Message:
        return Message(self.message, self.params)


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

    def warn(self, path: Path_, message: str, **params: object) -> None:
        self.warnings.append(PolicyWarning(self.line_of(path), message, params))

    def spaces(self, value: str, path: Path_) -> str:
        """A value with stray spaces around it loads (stripped), with a warning."""
        if value != value.strip():
            self.warn(path, N_("{key}: {value} has spaces around it"), key=self.name(path),
                      value=repr(value))
        return value.strip()

    def line_of(self, path: Path_) -> int:
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return 1  # a key missing from the top-level table: point at the top of the file

    def fail(self, path: Path_, message: str, **params: object) -> PolicyError:
        return PolicyError(self.source, self.line_of(path), message, **params)

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
                raise self.fail(path + (key,), N_("unknown key {key} (known: {known})"),
                                key=repr(self.name(path + (key,))),
                                known=", ".join(required + optional))
        for key in required:
            if key not in table:
                raise self.fail(path, N_("missing required key {key}"),
                                key=repr(self.name(path + (key,))))

    def table(self, value: Any, path: Path_) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, N_("{key} must be a table"), key=self.name(path))
        return value

    def text(self, value: Any, path: Path_) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, N_("{key} must be a non-empty string"), key=self.name(path))
        self.spaces(value, path)
        return value

    def boolean(self, value: Any, path: Path_) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, N_("{key} must be true or false"), key=self.name(path))
        return value

    def count(self, value: Any, path: Path_, minimum: int = 1) -> int:
        # bool is an int in Python; `true` is not a number of days.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, N_("{key} must be a whole number"), key=self.name(path))
        if value < minimum or value > 10**6:
            raise self.fail(path, N_("{key} must be between {minimum} and 1000000"),
                            key=self.name(path), minimum=minimum)
        return value

    def yuan(self, value: Any, path: Path_) -> int:
        """An amount in yuan (integer or decimal string with ≤ 2 places) as exact fen."""
        if isinstance(value, bool | float) or not isinstance(value, int | str):
            raise self.fail(path, N_("{key} must be yuan as an integer or a decimal string "
                                     "such as \"12.50\" (never a floating-point number)"),
                            key=self.name(path))
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
                    raise self.fail(path, N_("{key}: {value} is not an amount in yuan with "
                                             "at most 2 decimals"),
                                    key=self.name(path), value=repr(value)) from None
        if fen < 0:
            raise self.fail(path, N_("{key} must not be negative"), key=self.name(path))
        if fen > MAX_FEN:
            raise self.fail(path, N_("{key} is absurdly large"), key=self.name(path))
        if fen == 0:
            self.warn(path, N_("{key} is zero"), key=self.name(path))
        return fen

    def percent(self, value: Any, path: Path_) -> tuple[Fraction, str]:
        if isinstance(value, bool | float) or not isinstance(value, int | str):
            raise self.fail(path, N_("{key} must be a percentage as an integer or a decimal "
                                     "string such as \"12.5\" (never a floating-point "
                                     "number)"), key=self.name(path))
        text = self.spaces(value, path) if isinstance(value, str) else str(value)
        if isinstance(value, str) and not _PERCENT.match(text) and not text.startswith("-"):
            raise self.fail(path, N_("{key}: {value} is not a percentage"),
                            key=self.name(path), value=repr(value))
        rate = Fraction(text)
        if rate < 0 or rate > 100:
            raise self.fail(path, N_("{key} must be between 0 and 100 (percent)"),
                            key=self.name(path))
        if rate == 0:
            self.warn(path, N_("{key} is zero"), key=self.name(path))
        return rate, _percent_text(text)

    def grade(self, value: Any, path: Path_) -> str:
        if isinstance(value, str) and value.strip() in GRADES:
            value = self.spaces(value, path)
        if value not in GRADES:
            raise self.fail(path, N_("{key}: unknown grade {value} (known: {known})"),
                            key=self.name(path), value=repr(value), known=", ".join(GRADES))
        return str(value)

    def names(self, value: Any, path: Path_, grades: bool) -> frozenset[str]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, N_("{key} must be a non-empty list of names"),
                            key=self.name(path))
        seen: set[str] = set()
        for index, item in enumerate(value):
            name = (self.grade(item, path + (index,)) if grades
                    else self.case_type(item, path + (index,)))
            if name in seen:
                self.warn(path + (index,), N_("{key}: {value} is listed twice"),
                          key=self.name(path), value=repr(name))
            seen.add(name)
        return frozenset(seen)

    def case_type(self, value: Any, path: Path_) -> str:
        if isinstance(value, str) and _CASE_TYPE.match(value.strip()):
            value = self.spaces(value, path)
        if not isinstance(value, str) or not _CASE_TYPE.match(value):
            raise self.fail(path, N_("{key}: {value} is not a case type name (lower-case "
                                     "letters, digits, - and _)"),
                            key=self.name(path), value=repr(value))
        return value


# A grade's tiers out of order: the Chinese names the grade.
_FALLING_TIER = {
    "general": N_("tiers.general: tier {tier} pays less than tier {previous} (tiers are "
                  "usually listed from the lowest amount up)"),
    "larger": N_("tiers.larger: tier {tier} pays less than tier {previous} (tiers are "
                 "usually listed from the lowest amount up)"),
    "major": N_("tiers.major: tier {tier} pays less than tier {previous} (tiers are usually "
                "listed from the lowest amount up)"),
    "especially_major": N_("tiers.especially_major: tier {tier} pays less than tier "
                           "{previous} (tiers are usually listed from the lowest amount up)"),
}


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
                          N_("TOML syntax error: {error}"), error=str(exc)) from exc
    reader = _Reader(source, text)
    reader.keys(data, (), _TOP_REQUIRED, _TOP_OPTIONAL)
    policy_id = reader.text(data["id"], ("id",))
    if not _POLICY_ID.match(policy_id):
        raise reader.fail(("id",), N_("id must be lower-case letters, digits, '.', '-' or '_'"))
    version = reader.count(data["version"], ("version",))
    effective = data["effective"]
    if not isinstance(effective, dt.date) or isinstance(effective, dt.datetime):
        raise reader.fail(("effective",), N_("effective must be a date such as 2018-01-04"))
    if data["currency"] != "CNY":
        raise reader.fail(("currency",), N_("currency must be \"CNY\""))
    claim = data.get("claim_window_days")
    claim_days = None if claim is None else reader.count(claim, ("claim_window_days",))
    raw_rules = data["rules"]
    if not isinstance(raw_rules, list) or not raw_rules:
        raise reader.fail(("rules",), N_("rules must be a non-empty list of [[rules]] tables"))
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
            raise reader.fail(path, N_("flags.{name}: a flag name is lower-case letters, "
                                       "digits and _ (at most 32), and not insider or "
                                       "first_valid"), name=name)
        flag = reader.table(raw_flag, path)
        reader.keys(flag, path, _FLAG_KEYS, ())
        flags[name] = Flag(name, reader.text(flag["title_zh"], path + ("title_zh",)).strip(),
                           reader.text(flag["title_en"], path + ("title_en",)).strip())
    return flags


def _parse_rule(reader: _Reader, raw: Any, index: int, flags: Mapping[str, Flag]) -> Rule:
    path: Path_ = ("rules", index)
    table = reader.table(raw, path)
    if "kind" not in table:
        raise reader.fail(path, N_("rule {rule} has no kind"), rule=index + 1)
    kind = table["kind"]
    if kind not in _KIND_KEYS:
        raise reader.fail(path + ("kind",), N_("unknown rule kind {kind} (known: {known})"),
                          kind=repr(kind), known=", ".join(KINDS))
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
            raise reader.fail(path + ("floor",),
                              N_("a floor needs at_least_floor = true or false"))
        if floor is None and "at_least_floor" in table:
            raise reader.fail(path + ("at_least_floor",), N_("at_least_floor needs a floor"))
        at_least = (reader.boolean(table["at_least_floor"], path + ("at_least_floor",))
                    if "at_least_floor" in table else False)
        return PercentageRule(**common, rate=rate, rate_text=rate_text, floor_fen=floor,
                              cap_fen=cap, at_least_floor=at_least,
                              insider_cap_fen=_insider_cap(reader, path, table, cap))
    if kind == "catalogue":
        items_path = path + ("items",)
        items = reader.table(table["items"], items_path)
        if not items:
            raise reader.fail(items_path, N_("items must list at least one case type"))
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
                raise reader.fail(item_path, N_("{key} needs either amount or both min and max"),
                                  key=reader.name(item_path))
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
            raise reader.fail(tiers_path, N_("tiers must name at least one grade"))
        tiers: dict[str, tuple[int, ...]] = {}
        for grade, amounts in raw_tiers.items():
            reader.grade(grade, tiers_path + (grade,))
            if not isinstance(amounts, list) or not amounts:
                raise reader.fail(tiers_path + (grade,),
                                  N_("tiers.{grade} must be a non-empty list of amounts"),
                                  grade=grade)
            tiers[grade] = tuple(reader.yuan(value, tiers_path + (grade, i))
                                 for i, value in enumerate(amounts))
            falling = [i for i in range(1, len(tiers[grade]))
                       if tiers[grade][i] < tiers[grade][i - 1]]
            if falling:
                i = falling[0]
                reader.warn(tiers_path + (grade,), _FALLING_TIER[grade], tier=i + 1,
                            previous=i)
        common["grades"] = frozenset(tiers)
        return TiersRule(**common, tiers=tiers)
    if kind == "per_death":
        amounts_path = path + ("amounts",)
        raw_amounts = reader.table(table["amounts"], amounts_path)
        if not raw_amounts:
            raise reader.fail(amounts_path, N_("amounts must name at least one grade"))
        per_grade = {reader.grade(g, amounts_path + (g,)): reader.yuan(v, amounts_path + (g,))
                     for g, v in raw_amounts.items()}
        limits: dict[str, int] = {}
        if "max_deaths" in table:
            limits_path = path + ("max_deaths",)
            for grade, value in reader.table(table["max_deaths"], limits_path).items():
                reader.grade(grade, limits_path + (grade,))
                if grade not in per_grade:
                    raise reader.fail(limits_path + (grade,),
                                      N_("max_deaths.{grade} has no amount"), grade=grade)
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
                    raise reader.fail(path + (key,), N_("{key} does not go with points: points "
                                                        "raise the base rule's rate, whose cap "
                                                        "or insider_cap limits the result"),
                                      key=key)
        minimum, max_uplift = amount("minimum"), amount("max_uplift")
        _check_floor_cap(reader, path, minimum, max_uplift, "minimum", "max_uplift")
        return InsiderUpliftRule(**common, rate=up_rate, rate_text=rate_text, points=points,
                                 points_text=points_text, minimum_fen=minimum,
                                 max_uplift_fen=max_uplift, cap_fen=amount("cap"))
    if kind == "flag_bonus":
        flag = table["flag"]
        if not isinstance(flag, str) or flag not in flags:
            raise reader.fail(path + ("flag",),
                              N_("flag {flag} is not declared under [flags] (declared: {known})"),
                              flag=repr(flag), known=", ".join(flags) or "-")
        _one_of(reader, path, table, "rate", "amount")
        bonus_rate, bonus_text = (reader.percent(table["rate"], path + ("rate",))
                                  if "rate" in table else (None, ""))
        return FlagBonusRule(**common, flag=str(flag), rate=bonus_rate, rate_text=bonus_text,
                             amount_fen=amount("amount"), cap_fen=amount("cap"))
    if kind == "person_cap":
        per_case, per_period = amount("per_case"), amount("per_period")
        if per_case is None and per_period is None:
            raise reader.fail(path, N_("person_cap needs per_case, per_period or both"))
        period = table.get("period")
        if per_period is not None and period is None:
            raise reader.fail(path + ("per_period",), N_("per_period needs a period ({periods})"),
                              periods=Listed(PERIODS))
        if period is not None and per_period is None:
            raise reader.fail(path + ("period",), N_("period needs per_period"))
        if period is not None and period not in PERIODS:
            raise reader.fail(path + ("period",), N_("unknown period {period} (known: {known})"),
                              period=repr(period), known=", ".join(PERIODS))
        per_share = (reader.boolean(table["per_share"], path + ("per_share",))
                     if "per_share" in table else False)
        if per_share and (per_case is None or per_period is not None):
            raise reader.fail(path + ("per_share",), N_("per_share applies per_case to each "
                                                        "joint reporter's share: give "
                                                        "per_case, and write a period cap as "
                                                        "a rule of its own"))
        return PersonCapRule(**common, per_case_fen=per_case, per_period_fen=per_period,
                             period=period, per_share=per_share)
    if kind == "first_valid_only":
        return FirstValidRule(**common)
    return JointSplitRule(**common)


def _one_of(reader: _Reader, path: Path_, table: Mapping[str, Any], a: str, b: str) -> None:
    if (a in table) == (b in table):
        raise reader.fail(path, N_("{kind} needs either {a} or {b} (not both)"),
                          kind=kind_term(str(table.get("kind"))), a=a, b=b)


def _insider_cap(reader: _Reader, path: Path_, table: Mapping[str, Any],
                 cap: int | None) -> int | None:
    """A higher cap for insiders, applied to the base amount in place of cap."""
    if "insider_cap" not in table:
        return None
    insider_cap = reader.yuan(table["insider_cap"], path + ("insider_cap",))
    if cap is None or insider_cap < cap:
        raise reader.fail(path + ("insider_cap",), N_("insider_cap is a higher cap for "
                                                      "insiders: it needs cap, and must not be "
                                                      "below it"))
    return insider_cap


def _check_floor_cap(reader: _Reader, path: Path_, low: int | None, high: int | None,
                     low_key: str, high_key: str) -> None:
    if low is not None and high is not None and low > high:
        raise reader.fail(path + (low_key,), N_("{low} is greater than {high}"),
                          low=low_key, high=high_key)


def _overlap(a: Rule, b: Rule) -> bool:
    def meet(x: frozenset[str] | None, y: frozenset[str] | None) -> bool:
        return x is None or y is None or bool(x & y)

    return meet(a.case_types, b.case_types) and meet(a.grades, b.grades)


def _check_rule_set(reader: _Reader, rules: tuple[Rule, ...]) -> None:
    """One answer per input: base rules and uplifts must not overlap; gates appear once."""
    if not any(rule.kind in BASE_KINDS for rule in rules):
        raise reader.fail(("rules",), N_("the policy has no rule that sets an amount (one of "
                                         "{kinds})"), kinds=", ".join(BASE_KINDS))
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
                    N_("rule {rule} adds percentage points, but rule {base} ({kind}) has no "
                       "rate: give the uplift case_types or grades that meet only "
                       "percentage_of_fine rules"),
                    rule=uplift.number, base=base.number, kind=kind_term(base.kind))
            if base.rate + uplift.points > 100:
                raise reader.fail(
                    ("rules", uplift.number - 1, "points"),
                    N_("rule {rule} raises rule {base}'s rate of {rate}% above 100%"),
                    rule=uplift.number, base=base.number, rate=base.rate_text)


def _refuse_overlap(reader: _Reader, earlier: Rule, later: Rule) -> None:
    message = (N_("rule {rule} ({kind}) overlaps rule {other} ({other_kind}): give them "
                  "case_types or grades that do not meet, or mark the general one default = "
                  "true") if later.kind in BASE_KINDS else
               N_("rule {rule} ({kind}) overlaps rule {other} ({other_kind}): give them "
                  "case_types or grades that do not meet"))
    raise reader.fail(("rules", later.number - 1), message, rule=later.number,
                      kind=kind_term(later.kind), other=earlier.number,
                      other_kind=kind_term(earlier.kind))


# --- loading -------------------------------------------------------------------------------


def load_policy_file(path: str | Path) -> Policy:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(file), None, N_("cannot read the file: {error}"),
                          error=str(exc)) from exc
    return parse_policy(text, str(file))


def shipped_policy_ids() -> list[str]:
    return sorted(path.stem for path in POLICY_DIR.glob("*.toml"))


def load_policy(policy_id: str) -> Policy:
    """A shipped policy by id; its file name is the id, and the file must agree."""
    if not _POLICY_ID.match(policy_id) or policy_id not in shipped_policy_ids():
        raise PolicyError(policy_id, None, N_("no shipped policy {policy} (known: {known})"),
                          policy=repr(policy_id), known=", ".join(shipped_policy_ids()))
    policy = load_policy_file(POLICY_DIR / f"{policy_id}.toml")
    if policy.id != policy_id:
        raise PolicyError(policy.path, 1, N_("id {policy} differs from the file name"),
                          policy=repr(policy.id))
    return policy


def shipped_policies() -> list[Policy]:
    return [load_policy(policy_id) for policy_id in shipped_policy_ids()]
