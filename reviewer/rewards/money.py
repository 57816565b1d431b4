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


def yuan_text_to_fen(text: str) -> int:
    """'1234.5' -> 123450, exactly. The caller has matched YUAN_TEXT."""
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def percent_of(amount_fen: int, rate_percent: Fraction) -> int:
    """amount × rate / 100, rounded half up to the fen. Both arguments are non-negative."""
    exact = Fraction(amount_fen) * rate_percent / 100
    return (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)


def format_yuan(fen: int) -> str:
    """123456789 -> '1 234 567.89': groups of three, as the explanations print amounts."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}".replace(",", " ") + f".{cents:02d}"


def plain_yuan(fen: int) -> str:
    """123456789 -> '1234567.89': for machines and spreadsheets."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"
