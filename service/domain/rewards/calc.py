"""The calculation: inputs + policy -> a frozen, JSON-serialisable record, in integer fen.

Rule order is fixed by stage, not by the file, so a policy cannot change the meaning of a
rule by moving it:

1. first_valid_only   a duplicate that is not the first valid report gets 0 (and we stop);
2. the base rule      exactly one of percentage_of_fine / catalogue / tiers_by_grade /
                      per_death, the one whose case types and grades match the inputs (an
                      exception before the rule marked default); insider_cap and insider
                      points act here;
3. insider_uplift     when the reporter is an insider;
4. flag_bonus         for each declared flag the inputs set, in file order;
5. person_cap         every matching cap, in file order: per case, then per period;
6. joint_split        n reporters share the amount; the remainder goes to the first signatory;
7. person_cap         with per_share: each share, after the split.

The record holds everything needed to recompute it, so an auditor can check it later.

Two record schemas: /1 (the first one) and /2, which adds the ``flags`` input and the wording
of a capped uplift and of a period cap already exceeded. A calculation is written as /1 unless
it needs /2 (a policy using a later key or kind, a flag, or one of those two lines), so a
record an earlier version could write is still the record this one writes; a /1 record is
recomputed with the /1 wording.

Longer than 500 lines because the stage order above is the calculation: each stage's
arithmetic sits under it, in that order.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal
from typing import Any

from service.domain.rewards import explain
from service.domain.rewards.money import (
    MAX_FEN,
    AmountError,
    format_yuan,
    parse_amount,
    percent_of,
)
from service.domain.rewards.policy import (
    GRADES,
    CatalogueRule,
    FirstValidRule,
    FlagBonusRule,
    InsiderUpliftRule,
    JointSplitRule,
    PercentageRule,
    PerDeathRule,
    PersonCapRule,
    Policy,
    Rule,
    TiersRule,
    bonus_of,
    grade_terms,
    kind_term,
    uplift_of,
)
from service.platform.i18n import N_, Message, source_text

SCHEMA_1 = "chuishao.reward-calculation/1"
SCHEMA_2 = "chuishao.reward-calculation/2"
SCHEMA = SCHEMA_2  # the newest; records are written as /1 when they need nothing newer
SCHEMAS = (SCHEMA_1, SCHEMA_2)
_FLAG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_DEATHS = 100_000
MAX_JOINT = 1_000
_CASE_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class RewardInputError(ValueError):
    """Inputs the calculator refuses: a message id marked with N_() and its parameters,
    translated where the reason is shown; str() is the English text."""

    def __init__(self, message: str, **params: object) -> None:
        self.message = message
        self.params = params
        super().__init__(source_text(message, **params))

    @property
    def reason(self) -> Message:
        return Message(self.message, self.params)


class RecordError(ValueError):
    """A stored calculation record that is not well formed."""


@dataclass(frozen=True)
class RewardInputs:
    """Facts about one case and its reporter. Money in fen; None means "not given"."""

    case_type: str
    grade: str | None = None  # hazard grade, or the accident's final grade for accidents
    fine_fen: int | None = None  # administrative fine, for percentage rules
    deaths: int | None = None  # verified concealed deaths, for per-death rules
    level: int | None = None  # 1-based tier within the grade, for tier rules
    band_amount_fen: int | None = None  # amount chosen within a catalogue band
    insider: bool = False
    first_valid: bool = True
    joint_reporters: int = 1
    approved_in_period_fen: int | None = None  # already approved to this reporter this period
    flags: tuple[str, ...] = ()  # declared yes/no inputs that hold, sorted (schema /2 only)


@dataclass(frozen=True)
class Step:
    rule: int | None  # the rule's 1-based number in the policy file; None for a note
    kind: str
    applied: bool  # False: the rule was considered and did not change anything
    amount_fen: int  # the running amount after this step
    zh: str
    en: str


@dataclass(frozen=True)
class RewardCalculation:
    schema: str
    policy_id: str
    policy_version: int
    policy_digest: str
    currency: str
    inputs: RewardInputs
    steps: tuple[Step, ...]
    amount_fen: int
    shares_fen: tuple[int, ...]  # one per reporter, first signatory first; sums to amount_fen

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [asdict(step) for step in self.steps]
        data["shares_fen"] = list(self.shares_fen)
        if self.schema == SCHEMA_1:
            del data["inputs"]["flags"]  # /1 has no flags: the record stays as /1 wrote it
        else:
            data["inputs"]["flags"] = list(self.inputs.flags)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> RewardCalculation:
        top = _exact_keys(data, cls, "record")
        if top["schema"] not in SCHEMAS:
            raise RecordError(f"unknown record schema {top['schema']!r}")
        v1 = top["schema"] == SCHEMA_1
        inputs = _exact_keys(top["inputs"], RewardInputs, "inputs",
                             without=("flags",) if v1 else ())
        flags: tuple[str, ...] = ()
        if not v1:
            if not isinstance(inputs["flags"], list) or not all(
                    isinstance(flag, str) for flag in inputs["flags"]):
                raise RecordError("flags must be a list of names")
            flags = tuple(inputs["flags"])
        if not isinstance(top["steps"], list) or not isinstance(top["shares_fen"], list):
            raise RecordError("steps and shares_fen must be lists")
        record = cls(
            schema=_typed(top, "schema", str), policy_id=_typed(top, "policy_id", str),
            policy_version=_typed(top, "policy_version", int),
            policy_digest=_typed(top, "policy_digest", str),
            currency=_typed(top, "currency", str),
            inputs=RewardInputs(
                case_type=_typed(inputs, "case_type", str),
                grade=_typed(inputs, "grade", str, optional=True),
                fine_fen=_typed(inputs, "fine_fen", int, optional=True),
                deaths=_typed(inputs, "deaths", int, optional=True),
                level=_typed(inputs, "level", int, optional=True),
                band_amount_fen=_typed(inputs, "band_amount_fen", int, optional=True),
                insider=_typed(inputs, "insider", bool),
                first_valid=_typed(inputs, "first_valid", bool),
                joint_reporters=_typed(inputs, "joint_reporters", int),
                approved_in_period_fen=_typed(inputs, "approved_in_period_fen", int,
                                              optional=True),
                flags=flags),
            steps=tuple(_step(raw) for raw in top["steps"]),
            amount_fen=_typed(top, "amount_fen", int),
            shares_fen=tuple(_fen(value) for value in top["shares_fen"]))
        if sum(record.shares_fen) != record.amount_fen:
            raise RecordError("shares_fen do not sum to amount_fen")
        return record

    @classmethod
    def from_json(cls, text: str) -> RewardCalculation:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"not JSON: {exc}") from exc
        return cls.from_dict(data)


def _exact_keys(data: Any, kind: type, name: str, without: tuple[str, ...] = ()
                ) -> dict[str, Any]:
    expected = {field.name for field in fields(kind)} - set(without)
    if not isinstance(data, dict) or set(data) != expected:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise RecordError(f"{name} must have exactly the keys {sorted(expected)}, got {got}")
    return data


def _typed(data: dict[str, Any], key: str, kind: type, optional: bool = False) -> Any:
    value = data[key]
    if value is None and optional:
        return None
    # bool is an int in Python; a record with `true` for an amount is malformed.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecordError(f"{key} must be {kind.__name__}, got {value!r}")
    return value


def _fen(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"an amount must be an integer number of fen, got {value!r}")
    return value


def _step(raw: Any) -> Step:
    data = _exact_keys(raw, Step, "step")
    return Step(rule=_typed(data, "rule", int, optional=True), kind=_typed(data, "kind", str),
                applied=_typed(data, "applied", bool), amount_fen=_typed(data, "amount_fen", int),
                zh=_typed(data, "zh", str), en=_typed(data, "en", str))


# --- input checks --------------------------------------------------------------------------


# What an input is called in a refusal ({what}): a phrase translated with the sentence.
FINE = N_("the fine")
BAND_AMOUNT = N_("the amount within the band")
APPROVED_IN_PERIOD = N_("the amount already approved in the period")
DEATHS = N_("the number of concealed deaths")
LEVEL = N_("the tier level")
JOINT_REPORTERS = N_("the number of joint reporters")


def parse_yuan(text: str, what: str) -> int:
    """Yuan typed by a person ('1234567.89') as fen; RewardInputError if it is not one.

    ``what`` names the amount: a message id marked with N_()."""
    try:
        return parse_amount(text)
    except AmountError as exc:
        if exc.reason == "negative":
            raise RewardInputError(N_("{what} must not be negative"),
                                   what=Message(what)) from None
        if exc.reason == "too_large":
            raise RewardInputError(N_("{what} is absurdly large"), what=Message(what)) from None
        raise RewardInputError(
            N_("{what}: {text} is not an amount in yuan (digits, thousands grouped with "
               "commas such as 20,000.50, at most 2 decimals)"),
            what=Message(what), text=repr(text)) from None


def _whole(value: Any, what: str, low: int, high: int, money: bool = False) -> None:
    if value is None:
        return
    label = Message(what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RewardInputError(N_("{what} must be a whole number"), what=label)
    if value < low:
        if low == 0:
            raise RewardInputError(N_("{what} must be at least {low} (it must not be negative)"),
                                   what=label, low=low)
        raise RewardInputError(N_("{what} must be at least {low}"), what=label, low=low)
    if value > high:
        if money:
            raise RewardInputError(N_("{what} is absurdly large (more than {high})"),
                                   what=label, high=high)
        # A count or a tier is not an amount of money: say what the limit is.
        raise RewardInputError(N_("{what} must be at most {high}"), what=label, high=high)


_YES_NO = {"insider": N_("insider must be true or false"),
           "first_valid": N_("first_valid must be true or false")}


def check_inputs(inputs: RewardInputs) -> None:
    """Checks that do not depend on the policy: types and ranges."""
    if not isinstance(inputs.case_type, str) or not _CASE_TYPE.match(inputs.case_type):
        raise RewardInputError(N_("{case_type} is not a case type name"),
                               case_type=repr(inputs.case_type))
    if inputs.grade is not None and inputs.grade not in GRADES:
        raise RewardInputError(N_("unknown grade {grade} (known: {known})"),
                               grade=repr(inputs.grade), known=", ".join(GRADES))
    _whole(inputs.fine_fen, FINE, 0, MAX_FEN, money=True)
    # Only a per-death rule takes deaths, and it needs at least one: 0 is no input at all.
    _whole(inputs.deaths, DEATHS, 1, MAX_DEATHS)
    _whole(inputs.level, LEVEL, 1, 1000)
    _whole(inputs.band_amount_fen, BAND_AMOUNT, 0, MAX_FEN, money=True)
    _whole(inputs.joint_reporters, JOINT_REPORTERS, 1, MAX_JOINT)
    _whole(inputs.approved_in_period_fen, APPROVED_IN_PERIOD, 0, MAX_FEN, money=True)
    for flag, message in _YES_NO.items():
        if not isinstance(getattr(inputs, flag), bool):
            raise RewardInputError(message)
    if not isinstance(inputs.flags, tuple) or not all(
            isinstance(name, str) and _FLAG.match(name) for name in inputs.flags):
        raise RewardInputError(N_("flags must be names of yes/no inputs"))


def _select_base(policy: Policy, inputs: RewardInputs) -> Rule:
    matching = [rule for rule in policy.base_rules
                if rule.matches(inputs.case_type, inputs.grade)]
    if matching:
        # Load-time validation leaves at most one exception and one default matching a case;
        # the exception wins.
        return sorted(matching, key=lambda rule: rule.default)[0]
    for_type = [rule for rule in policy.base_rules
                if rule.case_types is None or inputs.case_type in rule.case_types]
    if for_type:
        grades = sorted({g for rule in for_type for g in (rule.grades or ())},
                        key=GRADES.index)
        if inputs.grade is None:
            raise RewardInputError(N_("case type {case_type} needs a grade ({grades})"),
                                   case_type=repr(inputs.case_type), grades=grade_terms(grades))
        raise RewardInputError(
            N_("policy {policy} has no rule for case type {case_type} at {grade} "
               "(it covers: {grades})"),
            policy=policy.id, case_type=repr(inputs.case_type),
            grade=Message(_AT_GRADE[inputs.grade]), grades=grade_terms(grades))
    known = ", ".join(policy.case_types()) or "-"
    raise RewardInputError(
        N_("policy {policy} has no rule for case type {case_type} (known: {known})"),
        policy=policy.id, case_type=repr(inputs.case_type), known=known)


# A grade inside a refusal's sentence, as each sentence needs it.
_AT_GRADE = {"general": N_("grade 'general'"), "larger": N_("grade 'larger'"),
             "major": N_("grade 'major'"), "especially_major": N_("grade 'especially_major'")}
_THE_GRADE = {"general": N_("the general grade"), "larger": N_("the larger grade"),
              "major": N_("the major grade"),
              "especially_major": N_("the especially major grade")}
_AN_ACCIDENT = {"general": N_("a general accident"), "larger": N_("a larger accident"),
                "major": N_("a major accident"),
                "especially_major": N_("a especially major accident")}


def _refuse_unused(policy: Policy, base: Rule, inputs: RewardInputs) -> None:
    """An input that no rule uses would look as if it counted; say so instead."""
    if inputs.fine_fen is not None and not isinstance(base, PercentageRule):
        raise RewardInputError(
            N_("a fine was given, but rule {rule} ({kind}) does not use the fine; leave it out"),
            rule=base.number, kind=kind_term(base.kind))
    if inputs.fine_fen is None and isinstance(base, PercentageRule):
        raise RewardInputError(N_("rule {rule} pays a percentage of the fine: give the fine"),
                               rule=base.number)
    if inputs.deaths is not None and not isinstance(base, PerDeathRule):
        raise RewardInputError(
            N_("concealed deaths were given, but policy {policy} has no per-death rule for case "
               "type {case_type}"), policy=policy.id, case_type=repr(inputs.case_type))
    if isinstance(base, PerDeathRule) and not inputs.deaths:
        raise RewardInputError(N_("rule {rule} pays per concealed death: give the number of "
                                  "verified concealed deaths (at least 1)"), rule=base.number)
    if inputs.level is not None and not isinstance(base, TiersRule):
        raise RewardInputError(N_("a tier level was given, but rule {rule} ({kind}) has no "
                                  "tiers"), rule=base.number, kind=kind_term(base.kind))
    band = isinstance(base, CatalogueRule) and base.items[inputs.case_type].amount_fen is None
    if inputs.band_amount_fen is not None and not band:
        raise RewardInputError(N_("an amount within a band was given, but this case type has "
                                  "no band"))
    if not inputs.first_valid and not policy.rules_of("first_valid_only"):
        raise RewardInputError(N_("policy {policy} has no first-valid-report rule, so it cannot "
                                  "judge a duplicate"), policy=policy.id)
    if inputs.joint_reporters > 1 and not policy.rules_of("joint_split"):
        raise RewardInputError(N_("policy {policy} has no joint-report rule"), policy=policy.id)
    period_caps = [rule for rule in _matching(policy, "person_cap", inputs)
                   if isinstance(rule, PersonCapRule) and rule.per_period_fen is not None]
    if period_caps and inputs.approved_in_period_fen is None:
        # Defaulting to 0 would overpay whenever a caller forgets; make it explicit.
        raise RewardInputError(N_("this policy caps rewards per person per period: give the "
                                  "amount already approved to this reporter in the period (0 "
                                  "if none)"))
    for name in inputs.flags:
        if name not in policy.flags:
            raise RewardInputError(
                N_("policy {policy} declares no flag {flag} (declared: {known})"),
                policy=policy.id, flag=repr(name), known=", ".join(policy.flags) or "-")
    if not period_caps and inputs.approved_in_period_fen is not None:
        raise RewardInputError(N_("an amount already approved in the period was given, but no "
                                  "period cap applies; leave it out"))


def _matching(policy: Policy, kind: str, inputs: RewardInputs) -> list[Rule]:
    return [rule for rule in policy.rules_of(kind)
            if rule.matches(inputs.case_type, inputs.grade)]


# --- the calculation -----------------------------------------------------------------------


def _points_rule(policy: Policy, inputs: RewardInputs) -> InsiderUpliftRule | None:
    """The insider uplift in percentage points that applies, if the reporter is an insider."""
    if not inputs.insider:
        return None
    for rule in _matching(policy, "insider_uplift", inputs):
        if isinstance(rule, InsiderUpliftRule) and rule.points is not None:
            return rule
    return None


def _base(rule: Rule, inputs: RewardInputs, policy: Policy
          ) -> tuple[int, list[tuple[str, str]]]:
    lines: list[tuple[str, str]] = []
    if isinstance(rule, PercentageRule):
        fine = inputs.fine_fen or 0
        rate = rule.rate
        points = _points_rule(policy, inputs)
        if points is not None and points.points is not None:
            # "15 % → 25 %": the rate itself rises, exactly, before floor and caps.
            rate = rule.rate + points.points
            amount = percent_of(fine, rate)
            lines.append(explain.percentage_points(
                fine, rule.rate_text, points.points_text, _add_percent(rule.rate_text,
                                                                       points.points_text),
                amount, fine * rate / 100 != amount))
        else:
            amount = percent_of(fine, rate)
            lines.append(explain.percentage(fine, rule.rate_text, amount,
                                            fine * rate / 100 != amount))
        if rule.floor_fen is not None and amount < rule.floor_fen:
            if rule.at_least_floor:
                amount = rule.floor_fen
                lines.append(explain.raised_to_floor(rule.floor_fen))
            else:
                amount = 0
                lines.append(explain.below_floor_nothing(rule.floor_fen))
        amount = _base_cap(rule.cap_fen, rule.insider_cap_fen, inputs.insider, amount, lines)
        return amount, lines
    if isinstance(rule, CatalogueRule):
        item = rule.items[inputs.case_type]
        if item.amount_fen is not None:
            return item.amount_fen, [explain.catalogue_fixed(
                inputs.case_type, item.title_zh, item.title_en, item.amount_fen)]
        assert item.min_fen is not None and item.max_fen is not None
        chosen = inputs.band_amount_fen
        if chosen is None or not item.min_fen <= chosen <= item.max_fen:
            raise RewardInputError(
                N_("case type {case_type} has a band of {low}–{high} yuan: give an amount "
                   "within it"), case_type=repr(inputs.case_type),
                low=format_yuan(item.min_fen), high=format_yuan(item.max_fen))
        return chosen, [explain.catalogue_band(inputs.case_type, item.title_zh, item.title_en,
                                               item.min_fen, item.max_fen, chosen)]
    if isinstance(rule, TiersRule):
        assert inputs.grade is not None
        amounts = rule.tiers[inputs.grade]
        level = inputs.level
        if level is None and len(amounts) == 1:
            level = 1  # a grade with one tier needs no choice
        if level is None or level > len(amounts):
            raise RewardInputError(N_("{grade} has tiers 1 to {count}: give a level in range"),
                                   grade=Message(_THE_GRADE[inputs.grade]), count=len(amounts))
        amount = amounts[level - 1]
        return amount, [explain.tier(inputs.grade, level, len(amounts), amount)]
    if isinstance(rule, PerDeathRule):
        assert inputs.grade is not None and inputs.deaths is not None
        most = rule.max_deaths.get(inputs.grade)
        if most is not None and inputs.deaths > most:
            raise RewardInputError(
                N_("{accident} has at most {most} deaths, so {deaths} concealed deaths do not "
                   "fit that grade"),
                accident=Message(_AN_ACCIDENT[inputs.grade]), most=most, deaths=inputs.deaths)
        each = rule.amounts[inputs.grade]
        amount = each * inputs.deaths
        lines.append(explain.per_death(inputs.deaths, inputs.grade, each, amount))
        amount = _base_cap(rule.cap_fen, rule.insider_cap_fen, inputs.insider, amount, lines)
        return amount, lines
    raise AssertionError(rule.kind)


def _base_cap(cap: int | None, insider_cap: int | None, insider: bool, amount: int,
              lines: list[tuple[str, str]]) -> int:
    if insider and insider_cap is not None:
        if amount > insider_cap:
            lines.append(explain.capped(insider_cap, "内部人员最高奖励", "insider cap"))
            return insider_cap
        if cap is not None and amount > cap:
            lines.append(explain.within_insider_cap(cap, insider_cap))
        return amount
    if cap is not None and amount > cap:
        lines.append(explain.capped(cap))
        return cap
    return amount


def _add_percent(a: str, b: str) -> str:
    """'15' + '10' -> '25', '12.5' + '0.25' -> '12.75': exact, as the rate is shown."""
    total = format(Decimal(a) + Decimal(b), "f")
    return total.rstrip("0").rstrip(".") if "." in total else total


def _join(lines: list[tuple[str, str]]) -> tuple[str, str]:
    return "；".join(zh for zh, _ in lines), "; ".join(en for _, en in lines)


def split(total_fen: int, reporters: int) -> tuple[int, ...]:
    """Equal shares in whole fen; the few fen left over go to the first signatory."""
    each, rest = divmod(total_fen, reporters)
    return (each + rest,) + (each,) * (reporters - 1)


def calculate(policy: Policy, inputs: RewardInputs, *, schema: str | None = None
              ) -> RewardCalculation:
    """Apply the policy to the inputs. Raises RewardInputError for refused inputs.

    ``schema``: None writes the oldest schema the calculation fits; SCHEMA_1 recomputes a /1
    record with the /1 wording (refusing what /1 cannot hold); SCHEMA_2 writes /2.
    """
    if schema is not None and schema not in SCHEMAS:
        raise RewardInputError(N_("unknown record schema {schema}"), schema=repr(schema))
    legacy = schema == SCHEMA_1
    check_inputs(inputs)
    inputs = replace(inputs, flags=tuple(sorted(set(inputs.flags))))
    if legacy and (policy.format > 1 or inputs.flags):
        raise RewardInputError(N_("a {schema} record cannot hold flags or rules added later"),
                               schema=SCHEMA_1)
    base = _select_base(policy, inputs)
    _refuse_unused(policy, base, inputs)
    steps: list[Step] = []
    newer = schema == SCHEMA_2 or policy.format > 1 or bool(inputs.flags)

    def add(rule: Rule | None, kind: str, applied: bool, amount: int,
            lines: tuple[str, str]) -> None:
        steps.append(Step(rule=rule.number if rule else None, kind=kind, applied=applied,
                          amount_fen=amount, zh=lines[0], en=lines[1]))

    def done(amount: int, shares: tuple[int, ...]) -> RewardCalculation:
        return _record(policy, inputs, steps, amount, shares, SCHEMA_2 if newer else SCHEMA_1)

    # The base amount is computed first so refusals (a band amount out of range, too many
    # deaths for the grade) happen even for a duplicate; it is recorded after the gate.
    amount, base_lines = _base(base, inputs, policy)
    defaults = [rule for rule in policy.base_rules
                if rule.default and rule is not base and rule.matches(inputs.case_type,
                                                                      inputs.grade)]
    if base.default:
        base_lines.insert(0, explain.default_rule())
    elif defaults:
        base_lines.insert(0, explain.exception_rule(defaults[0].number))
    for gate in policy.rules_of("first_valid_only"):
        assert isinstance(gate, FirstValidRule)
        add(gate, gate.kind, not inputs.first_valid, 0, explain.first_valid(inputs.first_valid))
        if not inputs.first_valid:
            return done(0, (0,) * inputs.joint_reporters)
    add(base, base.kind, True, amount, _join(base_lines))

    uplifts = _matching(policy, "insider_uplift", inputs)
    for rule in uplifts:
        assert isinstance(rule, InsiderUpliftRule)
        if not inputs.insider:
            add(rule, rule.kind, False, amount, explain.not_insider())
            continue
        if rule.points is not None:
            add(rule, rule.kind, True, amount, explain.points_in_base(rule.points_text,
                                                                      base.number))
            continue
        assert rule.rate is not None
        if amount == 0:
            add(rule, rule.kind, False, amount, explain.uplift_nothing())
            continue
        raw = percent_of(amount, rule.rate)
        lines = [explain.uplift(amount, rule.rate_text, raw, amount * rule.rate / 100 != raw)]
        uplift = uplift_of(amount, rule)
        if rule.minimum_fen is not None and raw < rule.minimum_fen:
            lines.append(explain.uplift_minimum(rule.minimum_fen))
        if rule.max_uplift_fen is not None and uplift < max(raw, rule.minimum_fen or 0):
            lines.append(explain.uplift_maximum(rule.max_uplift_fen))
        lifted, capped = _lift(amount, uplift, rule.cap_fen, lines, legacy)
        newer = newer or capped
        lines.append(explain.uplift_total(lifted))
        amount = lifted
        add(rule, rule.kind, True, amount, _join(lines))
    if inputs.insider and not uplifts:
        add(None, "note", False, amount, explain.insider_without_rule())

    bonuses = _matching(policy, "flag_bonus", inputs)
    for rule in bonuses:
        assert isinstance(rule, FlagBonusRule)
        flag = policy.flags[rule.flag]
        if rule.flag not in inputs.flags:
            add(rule, rule.kind, False, amount, explain.flag_not_set(flag))
            continue
        if amount == 0:
            add(rule, rule.kind, False, amount, explain.bonus_nothing(flag))
            continue
        bonus = bonus_of(amount, rule)
        if rule.rate is not None:
            lines = [explain.flag_bonus_rate(flag, amount, rule.rate_text, bonus,
                                             amount * rule.rate / 100 != bonus)]
        else:
            lines = [explain.flag_bonus_amount(flag, bonus)]
        amount, _ = _lift(amount, bonus, rule.cap_fen, lines, legacy=False)
        lines.append(explain.bonus_total(amount))
        add(rule, rule.kind, True, amount, _join(lines))
    for name in inputs.flags:
        if not any(isinstance(rule, FlagBonusRule) and rule.flag == name for rule in bonuses):
            add(None, "note", False, amount, explain.flag_without_rule(policy.flags[name]))

    share_caps: list[PersonCapRule] = []
    for rule in _matching(policy, "person_cap", inputs):
        assert isinstance(rule, PersonCapRule)
        if rule.per_share:
            share_caps.append(rule)
            continue
        if rule.per_case_fen is not None:
            before, amount = amount, min(amount, rule.per_case_fen)
            add(rule, rule.kind, amount != before, amount,
                explain.per_case_cap(rule.per_case_fen, before, amount))
        if rule.per_period_fen is not None and rule.period is not None:
            approved = inputs.approved_in_period_fen or 0
            before = amount
            amount = min(amount, max(0, rule.per_period_fen - approved))
            over = approved > rule.per_period_fen and not legacy
            newer = newer or over
            add(rule, rule.kind, amount != before, amount,
                explain.per_period_cap(rule.period, rule.per_period_fen, approved, before,
                                       amount, over))

    shares = split(amount, inputs.joint_reporters)
    for rule in policy.rules_of("joint_split"):
        assert isinstance(rule, JointSplitRule)
        add(rule, rule.kind, inputs.joint_reporters > 1, amount,
            explain.joint(inputs.joint_reporters, amount, shares))
    for cap_rule in share_caps:
        assert cap_rule.per_case_fen is not None
        capped_shares = tuple(min(share, cap_rule.per_case_fen) for share in shares)
        amount = sum(capped_shares)
        add(cap_rule, cap_rule.kind, capped_shares != shares, amount,
            explain.per_share_cap(cap_rule.per_case_fen, shares, capped_shares))
        shares = capped_shares
    return done(amount, shares)


def _lift(amount: int, added: int, cap: int | None, lines: list[tuple[str, str]],
          legacy: bool) -> tuple[int, bool]:
    """amount + added, limited by the cap on the result; True if the cap cut the addition.

    The cap limits the addition; it never takes away the amount before it.
    """
    lifted = amount + added
    if cap is None or lifted <= cap:
        return lifted, False
    if amount >= cap:
        lines.append(explain.uplift_cap_reached(cap))
        return amount, False
    if legacy:
        lines.append(explain.capped(cap, "加奖后上限", "cap with the uplift"))
    else:
        lines.append(explain.addition_capped(cap, cap - amount))
    return cap, True


def _record(policy: Policy, inputs: RewardInputs, steps: list[Step], amount: int,
            shares: tuple[int, ...], schema: str) -> RewardCalculation:
    return RewardCalculation(
        schema=schema, policy_id=policy.id, policy_version=policy.version,
        policy_digest=policy.digest, currency=policy.currency, inputs=inputs,
        steps=tuple(steps), amount_fen=amount, shares_fen=shares)


def recompute(record: RewardCalculation, policy: Policy) -> list[str]:
    """Recalculate a stored record; returns the differences (empty: it checks out)."""
    problems: list[str] = []
    if (record.policy_id, record.policy_version) != (policy.id, policy.version):
        problems.append(f"the record is for {record.policy_id} version {record.policy_version}, "
                        f"the policy given is {policy.id} version {policy.version}")
    if record.policy_digest != policy.digest:
        problems.append("the policy file differs from the one the record was computed with "
                        f"(digest {record.policy_digest[:12]}…, file {policy.digest[:12]}…)")
    try:
        again = calculate(policy, record.inputs, schema=record.schema)
    except RewardInputError as exc:
        return [*problems, f"the policy now refuses the inputs: {exc}"]
    if again.amount_fen != record.amount_fen:
        problems.append(f"amount: recorded {record.amount_fen} fen, recomputed "
                        f"{again.amount_fen} fen")
    if again.shares_fen != record.shares_fen:
        problems.append(f"shares: recorded {list(record.shares_fen)}, recomputed "
                        f"{list(again.shares_fen)}")
    if again.steps != record.steps:
        problems.append("the recorded steps or their explanations differ from the recomputed ones")
    return problems
