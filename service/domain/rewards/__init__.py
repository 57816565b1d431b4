"""Reward calculation: versioned policy files in, a frozen record in integer fen out.

    policy = load_policy("national-2018")
    record = calculate(policy, RewardInputs(case_type="hazard", grade="major",
                                            fine_fen=20_000_000))
    record.amount_fen, record.to_json()

Pure domain code: no database, no web. See docs/REWARDS.md.
"""

from service.domain.rewards.calc import (
    SCHEMA,
    RecordError,
    RewardCalculation,
    RewardInputError,
    RewardInputs,
    Step,
    calculate,
    parse_yuan,
    recompute,
    split,
)
from service.domain.rewards.explain import render
from service.domain.rewards.money import format_yuan, percent_of, plain_yuan
from service.domain.rewards.policy import (
    GRADES,
    KINDS,
    Policy,
    PolicyError,
    load_policy,
    load_policy_file,
    parse_policy,
    shipped_policies,
    shipped_policy_ids,
)

__all__ = [
    "GRADES",
    "KINDS",
    "SCHEMA",
    "Policy",
    "PolicyError",
    "RecordError",
    "RewardCalculation",
    "RewardInputError",
    "RewardInputs",
    "Step",
    "calculate",
    "format_yuan",
    "load_policy",
    "load_policy_file",
    "parse_policy",
    "parse_yuan",
    "percent_of",
    "plain_yuan",
    "recompute",
    "render",
    "shipped_policies",
    "shipped_policy_ids",
    "split",
]
