"""What a column can bind. A value past its column's width, scale or precision would fail the
statement (a 500); checked first, it is a 422 naming the input, from a search filter
(`core.search`) or a forged cursor (`core.listing`) alike, on both databases."""

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger


def check_integer(column_type: Any, value: int) -> None:
    """Within the column's width: PostgreSQL's INTEGER is 32 bits, BIGINT 64."""
    bits = 64 if isinstance(column_type, BigInteger) else 32
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f"must be an integer from -2^{bits - 1} to 2^{bits - 1}-1")


def decimal_places(number: Decimal) -> int:
    return max(0, -int(number.normalize().as_tuple().exponent))


def check_decimal(column_type: Any, number: Decimal) -> None:
    """Finite, and within the column's scale and precision where it has them (money: 4 places,
    20 digits)."""
    if not number.is_finite():
        raise ValueError("must be a finite number")
    scale = getattr(column_type, "scale", None)
    if scale is None:
        return
    if decimal_places(number) > scale:
        raise ValueError(f"must have at most {scale} decimal places")
    precision = getattr(column_type, "precision", None)
    if precision is not None:
        # At most 18 digits in all: SQLite keeps money as 64-bit integers of its smallest unit.
        whole = min(precision, 18) - scale
        if abs(number) >= Decimal(10) ** whole:
            raise ValueError(f"must be below 10^{whole}")
