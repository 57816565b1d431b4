"""Money as integer fen: exact conversion from yuan text, one rounding rule, display format.

Floats never touch an amount. Percentages are exact fractions; the only rounding is in
percent_of, which rounds half up to the fen (四舍五入), the rule Chinese finance offices use.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Nothing we reward comes near ten billion yuan; bigger numbers are typing mistakes.
MAX_FEN = 10**12

YUAN_TEXT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
# What a person may type: plain digits, or thousands grouped correctly with commas or with
# spaces (as format_yuan prints them), and at most two decimals. "20000,50" or "1,2" is a
# typing mistake, never a number: dropping the comma would read 100 times the amount.
_TYPED = re.compile(r"^(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?: [0-9]{3})+)"
                    r"(?:\.[0-9]{1,2})?$")


class AmountError(ValueError):
    """Not an amount in yuan; ``reason`` is "negative", "format" or "too_large"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def yuan_text_to_fen(text: str) -> int:
    """'1234.5' -> 123450, exactly. The caller has matched YUAN_TEXT."""
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def parse_amount(text: str) -> int:
    """Yuan as a person types it ('20000', '20,000.50', '20 000.5') -> fen, exactly.

    The one parser for typed money (console forms, the command line, policy files): anything
    else raises AmountError, so a stray comma is refused, never silently dropped.
    """
    stripped = text.strip().replace("\u00a0", " ").replace("\u202f", " ")
    if stripped.startswith(("-", "\u2212")):
        raise AmountError("negative")
    if not _TYPED.match(stripped):
        raise AmountError("format")
    fen = yuan_text_to_fen(stripped.replace(",", "").replace(" ", ""))
    if fen > MAX_FEN:
        raise AmountError("too_large")
    return fen


def percent_of(amount_fen: int, rate_percent: Fraction) -> int:
    """amount × rate / 100, rounded half up to the fen. Both arguments are non-negative."""
    exact = Fraction(amount_fen) * rate_percent / 100
    return (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)


def format_yuan(fen: int | None) -> str:
    """123456789 -> '1 234 567.89': the one way an amount is shown to a person (pages, the
    public board, the follow-up page, explanations, posters, the audit trail); None -> ''.

    Grouped, because a reviewer approving 1234567.89 yuan must not misread it by a factor of
    ten; with spaces, as GB 3101 and SI write numbers, because a comma is a decimal mark to
    some readers and the space is read the same in Chinese and English. parse_amount reads
    this form back. Machines and spreadsheets get plain_yuan.
    """
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}".replace(",", " ") + f".{cents:02d}"


def plain_yuan(fen: int | None) -> str:
    """123456789 -> '1234567.89': for form values, machines and spreadsheets; None -> ''."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"
