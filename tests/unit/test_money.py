"""Money: Decimal in Python, integers in storage, the seed's rounding and canonical strings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.money import (
    AmountError,
    canonical,
    from_kurus,
    from_micro,
    parse_amount,
    to_kurus,
    to_micro,
    usdt_for_try,
)


def test_seed_example_10000_try_at_35_50_is_281_69_usdt() -> None:
    assert usdt_for_try(Decimal("10000"), Decimal("35.50")) == Decimal("281.69")


@pytest.mark.parametrize(
    ("amount", "rate", "spread", "usdt"),
    [
        ("10000", "35.50", "0", "281.69"),  # 281.690140… rounds down
        ("100", "40", "0", "2.50"),
        ("1", "8", "0", "0.13"),  # 0.125 rounds half up
        ("10000", "35.50", "1", "284.54"),  # 10000 / 35.145 = 284.5354…
        ("500000", "35.123456", "0", "14235.50"),  # 14235.5011…
    ],
)
def test_usdt_for_try_rounds_half_up_to_cents(
    amount: str, rate: str, spread: str, usdt: str
) -> None:
    assert usdt_for_try(Decimal(amount), Decimal(rate), Decimal(spread)) == Decimal(usdt)


def test_a_spread_makes_the_payer_send_more_usdt() -> None:
    plain = usdt_for_try(Decimal("1000"), Decimal("35.5"))
    assert usdt_for_try(Decimal("1000"), Decimal("35.5"), Decimal("2")) > plain


@pytest.mark.parametrize("rate", ["0", "-1"])
def test_a_non_positive_rate_is_refused(rate: str) -> None:
    with pytest.raises(AmountError):
        usdt_for_try(Decimal("100"), Decimal(rate))


def test_locked_amounts_round_trip_through_integer_storage() -> None:
    usdt = usdt_for_try(Decimal("10000"), Decimal("35.50"))
    assert to_micro(usdt) == 281_690_000
    assert from_micro(281_690_000) == Decimal("281.690000")
    assert to_kurus(Decimal("10000.5")) == 1_000_050
    assert from_kurus(1_000_050) == Decimal("10000.50")


def test_more_than_two_try_decimals_is_an_amount_error() -> None:
    with pytest.raises(AmountError):
        to_kurus(Decimal("10.001"))


def test_floats_never_become_money() -> None:
    with pytest.raises(AmountError):
        parse_amount(0.1)
    assert parse_amount("0.1") == Decimal("0.1")


@pytest.mark.parametrize(
    ("value", "text"),
    [("1000.00", "1000"), ("281.60", "281.6"), ("500000", "500000"), ("0.50", "0.5"), ("0", "0")],
)
def test_canonical_amount_strings_match_javascript(value: str, text: str) -> None:
    assert canonical(Decimal(value)) == text


@given(
    kurus=st.integers(min_value=1, max_value=50_000_000),
    rate_cents=st.integers(min_value=100, max_value=1_000_000),
)
def test_the_usdt_amount_is_within_half_a_cent_of_the_exact_price(
    kurus: int, rate_cents: int
) -> None:
    amount, rate = from_kurus(kurus), from_kurus(rate_cents)
    usdt = usdt_for_try(amount, rate)
    assert usdt == usdt.quantize(Decimal("0.01"))
    assert abs(usdt - amount / rate) <= Decimal("0.005")
