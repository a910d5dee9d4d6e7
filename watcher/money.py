"""Decimal helpers. TRY has 2 decimals (kuruş), USDT-TRC20 has 6 (micro-USDT on chain).

Never float: amounts are Decimal in Python and integers in the database and on chain.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

TRY_PLACES = Decimal("0.01")
USDT_PLACES = Decimal("0.01")
MICRO = Decimal(1_000_000)
KURUS = Decimal(100)


class AmountError(ValueError):
    """The amount is not a valid money amount."""


def parse_amount(value: object) -> Decimal:
    """A finite Decimal from a JSON number or string; never through float."""
    if isinstance(value, bool) or value is None:
        raise AmountError("amount must be a number")
    if isinstance(value, float):  # only reachable if a caller parsed JSON with floats
        raise AmountError("amount must be parsed as Decimal, not float")
    try:
        d = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise AmountError("amount is not a number") from exc
    if not d.is_finite():
        raise AmountError("amount is not a finite number")
    return d


def has_at_most_places(d: Decimal, places: int) -> bool:
    exp = d.normalize().as_tuple().exponent
    return isinstance(exp, int) and -exp <= places


def to_kurus(d: Decimal) -> int:
    if not has_at_most_places(d, 2):
        raise AmountError("TRY amounts have at most 2 decimals")
    return int(d * KURUS)


def from_kurus(k: int) -> Decimal:
    return (Decimal(k) / KURUS).quantize(TRY_PLACES)


def to_micro(d: Decimal) -> int:
    if not has_at_most_places(d, 6):
        raise AmountError("USDT amounts have at most 6 decimals")
    return int(d * MICRO)


def from_micro(m: int) -> Decimal:
    return (Decimal(m) / MICRO).quantize(Decimal("0.000001"))


def usdt_for_try(
    amount_try: Decimal, rate: Decimal, spread_percent: Decimal = Decimal(0)
) -> Decimal:
    """USDT due for `amount_try` at `rate` TRY per USDT, rounded half-up to 2 dp.

    10000 TRY at 35.50 -> 281.69 (seed 000).
    """
    if rate <= 0:
        raise AmountError("rate must be positive")
    effective = rate * (1 - spread_percent / 100)
    if effective <= 0:
        raise AmountError("spread leaves no positive rate")
    return (amount_try / effective).quantize(USDT_PLACES, rounding=ROUND_HALF_UP)


def converted(amount_try: Decimal, rate: Decimal) -> Decimal:
    """`amount_try` in a currency worth `rate` TRY (USD or USDT at the USDTTRY rate), 2 dp
    half-up: what a provider paid in that currency is asked for."""
    return usdt_for_try(amount_try, rate)


def try_for_converted(paid: Decimal, rate: Decimal, ordered_try: Decimal) -> Decimal:
    """TRY for `paid` in the currency an order of `ordered_try` was converted to at `rate`:
    exactly the order when `paid` is what was asked, else `paid * rate` (2 dp half-up)."""
    if paid == converted(ordered_try, rate):
        return ordered_try
    return (paid * rate).quantize(TRY_PLACES, rounding=ROUND_HALF_UP)


def round_try(d: Decimal) -> Decimal:
    """A TRY amount a provider reported, to kuruş (half-up): providers print 500.00 or 500."""
    return d.quantize(TRY_PLACES, rounding=ROUND_HALF_UP)


def canonical(d: Decimal | int) -> str:
    """Plain decimal, no exponent, no trailing zeros: what JavaScript prints for the number.

    1000.00 -> "1000", 281.60 -> "281.6", 500000 -> "500000", 0.5 -> "0.5".
    """
    d = Decimal(d)
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


def json_number(d: Decimal | int) -> Decimal:
    """The amount as it goes out in JSON: a number with no trailing zeros."""
    return Decimal(canonical(d))


def ceil_micro(d: Decimal) -> int:
    return int((d * MICRO).to_integral_value(rounding=ROUND_CEILING))
