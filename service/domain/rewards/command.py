"""`chuishao reward calc | policies | check | verify`: the operator's and auditor's view.

The command uses the same calculate() as the console will, so a printed result and a stored
record can never disagree. Refused input exits with 2 and the reason on stderr, in English
and in Chinese (one message, translated with each catalog).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from service.domain.rewards.calc import (
    FINE,
    RecordError,
    RewardCalculation,
    RewardInputError,
    RewardInputs,
    calculate,
    parse_yuan,
    recompute,
)
from service.domain.rewards.explain import render
from service.domain.rewards.policy import (
    GRADES,
    Policy,
    PolicyError,
    load_policy,
    load_policy_file,
    located,
    shipped_policies,
)
from service.platform.i18n import N_, Catalogs, Message


def add_parser(sub: Any) -> None:
    """Add the `reward` subcommand to the top-level subparsers."""
    reward = sub.add_parser("reward", help="reward policies and calculations")
    actions = reward.add_subparsers(dest="action", required=True)

    calc = actions.add_parser("calc", help="calculate a reward and explain it")
    source = calc.add_mutually_exclusive_group(required=True)
    source.add_argument("--policy", metavar="ID", help="a shipped policy (see `reward policies`)")
    source.add_argument("--policy-file", metavar="FILE", help="a policy file")
    calc.add_argument("--type", default="hazard", metavar="T",
                      help="case type named by the policy (default: hazard)")
    calc.add_argument("--grade", metavar="G", help=f"one of {', '.join(GRADES)} "
                      "(hazard grade, or the accident's final grade)")
    calc.add_argument("--fine", metavar="YUAN", help="administrative fine in yuan, e.g. 200000")
    calc.add_argument("--deaths", type=int, metavar="N", help="verified concealed deaths")
    calc.add_argument("--level", type=int, metavar="N", help="tier within the grade (1 = first)")
    calc.add_argument("--amount", metavar="YUAN", help="amount chosen within a catalogue band")
    calc.add_argument("--approved", metavar="YUAN",
                      help="already approved to this reporter in the policy's period")
    calc.add_argument("--insider", action="store_true", help="the reporter works there")
    calc.add_argument("--flag", action="append", default=[], metavar="NAME",
                      help="a yes/no input the policy declares under [flags] that holds "
                      "(repeatable)")
    calc.add_argument("--not-first", action="store_true",
                      help="a duplicate that is not the first valid report")
    calc.add_argument("--joint", type=int, default=1, metavar="N",
                      help="number of joint reporters (default 1)")
    calc.add_argument("--json", action="store_true", help="print the JSON record")

    actions.add_parser("policies", help="list the shipped policies")

    check = actions.add_parser("check", help="validate a policy file")
    check.add_argument("file")

    verify = actions.add_parser("verify", help="recompute a stored JSON record and compare")
    verify.add_argument("record", help="the record's JSON file ('-' for stdin)")
    verify.add_argument("--policy-file", metavar="FILE",
                        help="the policy version the record names (default: the shipped one)")


def _both(label_en: str, label_zh: str, message: Message) -> str:
    """The message in English, then in Chinese, each after its label."""
    catalogs = Catalogs.load()
    return "\n".join(label + catalogs.gettext(language)(message.id, **message.params)
                     for label, language in ((label_en, "en"), (label_zh, "zh_CN")))


def _refuse(message: Message) -> int:
    print(_both("refused: ", "拒绝：", message), file=sys.stderr)
    return 2


def _policy(policy_id: str | None, policy_file: str | None) -> Policy:
    if policy_file:
        return load_policy_file(policy_file)
    assert policy_id is not None
    return load_policy(policy_id)


def _calc(args: argparse.Namespace) -> int:
    policy = _policy(args.policy, args.policy_file)
    inputs = RewardInputs(
        case_type=args.type,
        grade=args.grade.replace("-", "_") if args.grade else None,
        fine_fen=parse_yuan(args.fine, FINE) if args.fine is not None else None,
        deaths=args.deaths, level=args.level,
        band_amount_fen=parse_yuan(args.amount, N_("the amount")) if args.amount is not None
        else None,
        insider=args.insider, first_valid=not args.not_first, joint_reporters=args.joint,
        flags=tuple(args.flag),
        approved_in_period_fen=parse_yuan(args.approved, N_("the approved amount"))
        if args.approved is not None else None)
    record = calculate(policy, inputs)
    print(record.to_json() if args.json else render(record))
    return 0


def _policies() -> int:
    for policy in shipped_policies():
        window = f"{policy.claim_window_days} d" if policy.claim_window_days else "-"
        print(f"{policy.id}\tv{policy.version}\t{policy.effective.isoformat()}\t"
              f"claim {window}\t{policy.title_zh}\t{policy.title_en}")
    return 0


def _check(path: str) -> int:
    try:
        policy = load_policy_file(path)
    except PolicyError as exc:
        print(_both("", "", exc.located), file=sys.stderr)
        if exc.line:
            # Show the line itself: the administrator fixes it without counting lines.
            lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
            if exc.line <= len(lines):
                print(f"{exc.line:5d} | {lines[exc.line - 1]}", file=sys.stderr)
        return 2
    for warning in policy.warnings:
        # Odd but loadable: the administrator decides; the exit status stays 0.
        print(_both("warning: ", "警告：", located(path, warning.line, warning.reason)),
              file=sys.stderr)
    print(f"ok: {policy.id} version {policy.version}, {len(policy.rules)} rules, "
          f"sha256 {policy.digest}")
    if policy.flags:
        print(f"flags (--flag NAME): {', '.join(policy.flags)}")
    if policy.warnings:
        print(f"{len(policy.warnings)} warning(s) / {len(policy.warnings)} 条警告")
    return 0


def _verify(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.record == "-" else \
        Path(args.record).read_text(encoding="utf-8")
    try:
        record = RewardCalculation.from_json(text)
    except RecordError as exc:
        return _refuse(Message(N_("not a reward record: {error}"), {"error": str(exc)}))
    policy = _policy(record.policy_id, args.policy_file)
    problems = recompute(record, policy)
    if problems:
        print("MISMATCH / 不一致:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"ok: recomputed with {policy.id} version {policy.version}, identical "
          f"({record.amount_fen} fen) / 复算一致")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "calc":
            return _calc(args)
        if args.action == "policies":
            return _policies()
        if args.action == "check":
            return _check(args.file)
        return _verify(args)
    except RewardInputError as exc:
        return _refuse(exc.reason)
    except PolicyError as exc:
        print(_both("", "", exc.located), file=sys.stderr)
        return 2
    except OSError as exc:
        return _refuse(Message(N_("cannot read: {error}"), {"error": str(exc)}))
