"""Seed 000's test cards, any future expiry and any 3-digit CVC (watcher.providers.sandbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from watcher.providers.sandbox import CardRefused, card_report, check_card

NOW = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("number", "outcome", "reason"),
    [
        ("4242 4242 4242 4242", "paid", None),
        ("4000-0000-0000-0002", "failed", "card_declined"),
        ("4000000000009995", "failed", "insufficient_funds"),
    ],
)
def test_test_cards(number: str, outcome: str, reason: str | None) -> None:
    report = card_report("txn_1", check_card(number, "11/26", "000", NOW), Decimal("1000.5"))
    assert (report.outcome, report.reason, report.transaction_id) == (outcome, reason, "txn_1")
    assert report.paid_amount == (Decimal("1000.5") if outcome == "paid" else None)


def test_three_d_secure_follows_the_payer() -> None:
    card = check_card("4000 0025 0000 3155", "01/2030", "123", NOW)
    assert card_report("t", card, Decimal(500), approved=True).outcome == "paid"
    refused = card_report("t", card, Decimal(500), approved=False)
    assert (refused.outcome, refused.reason) == ("failed", "authentication_failed")


@pytest.mark.parametrize(
    ("number", "expiry", "cvc", "message"),
    [
        ("4111 1111 1111 1111", "12/34", "123", "test card"),
        ("4242424242424242", "10/26", "123", "expired"),
        ("4242424242424242", "00/30", "123", "MM/YY"),
        ("4242424242424242", "1230", "123", "MM/YY"),
        ("4242424242424242", "12/30", "12", "3 digits"),
        ("4242424242424242", "12/30", "abcd", "3 digits"),
    ],
)
def test_anything_else_is_refused_with_a_reason(
    number: str, expiry: str, cvc: str, message: str
) -> None:
    with pytest.raises(CardRefused, match=message):
        check_card(number, expiry, cvc, NOW)
