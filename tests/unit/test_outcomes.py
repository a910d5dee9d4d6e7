"""What a provider's report does to a payment: the table in watcher.payments.outcomes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from watcher.payments.outcomes import (
    PAYMENT_LINK_PROVIDERS,
    Change,
    Report,
    decide,
    shortfall,
    waits,
)
from watcher.providers.kazawallet import NAME as KAZAWALLET


@pytest.mark.parametrize(
    ("status", "outcome", "change"),
    [
        ("pending", "paid", Change("completed", "payment.completed")),
        ("confirming", "paid", Change("completed", "payment.completed")),
        ("pending", "processing", Change("confirming", "payment.confirming")),
        ("pending", "failed", Change("failed", "payment.failed")),
        ("failed", "paid", Change("completed", "payment.completed")),  # a later success
        ("completed", "failed", Change("failed", "payment.failed")),  # reversed (seed 002)
        ("completed", "refunded", Change("refunded", "payment.refunded")),
        ("pending", "expired", Change("expired", "payment.expired")),
        ("pending", "cancelled", Change("cancelled", "payment.cancelled")),
        ("expired", "paid", Change("expired", "payment.late", late=True)),
        ("cancelled", "paid", Change("cancelled", "payment.late", late=True)),
    ],
)
def test_a_report_changes_what_the_table_says(status: str, outcome: str, change: Change) -> None:
    assert decide(status, outcome) == change


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", "paid"),  # a repeat
        ("completed", "expired"),  # too late to matter
        ("completed", "processing"),
        ("pending", "refunded"),  # nothing was paid
        ("refunded", "paid"),
        ("refunded", "failed"),
        ("failed", "failed"),
        ("expired", "failed"),
        ("cancelled", "expired"),
        ("pending", None),  # an event type nobody maps
        ("pending", "chargeback"),
    ],
)
def test_anything_else_changes_nothing(status: str, outcome: str | None) -> None:
    assert decide(status, outcome) is None


@pytest.mark.parametrize(
    ("status", "change"),
    [
        ("pending", Change("failed", "payment.failed")),
        ("confirming", Change("failed", "payment.failed")),
        ("expired", Change("expired", "payment.late", late=True)),  # money after the close
        ("failed", None),  # never completed by money that does not cover it
        ("completed", None),
    ],
)
def test_a_paid_report_that_does_not_cover_the_payment_never_completes_it(
    status: str, change: Change | None
) -> None:
    assert decide(status, "paid", short=True) == change


@pytest.mark.parametrize(
    ("reported", "paid_try", "reason"),
    [
        ("999.99", "999.99", "amount_mismatch"),
        ("1000", None, "currency_mismatch"),  # another currency, no rate to convert it at
        ("1000", "1000", None),
        ("1000.01", "1000.01", None),  # more completes; the excess is recorded
        (None, None, None),  # the source did not say
    ],
)
def test_shortfall_names_what_is_missing(
    reported: str | None, paid_try: str | None, reason: str | None
) -> None:
    report = Report(
        key="k",
        type="t",
        outcome="paid",
        paid_amount=None if reported is None else Decimal(reported),
    )
    paid = None if paid_try is None else Decimal(paid_try)
    assert shortfall(report, paid, Decimal("1000"), fixed_price=True) == reason


def test_a_deposit_completes_with_what_was_approved_but_never_in_an_unknown_currency() -> None:
    report = Report(key="k", type="t", outcome="paid", paid_amount=Decimal("950"))
    assert shortfall(report, Decimal("950"), Decimal("1000"), fixed_price=False) is None
    assert shortfall(report, None, Decimal("1000"), fixed_price=False) == "currency_mismatch"


def test_a_refund_of_an_open_payment_waits_for_it_and_nothing_else_does() -> None:
    assert waits("pending", "refunded") and waits("confirming", "refunded")
    assert not waits("expired", "refunded") and not waits("completed", "refunded")
    assert not waits("pending", "failed") and not waits("pending", None)


def test_kazawallet_is_a_payment_link_provider_by_its_own_name() -> None:
    """reports.py holds Kazawallet's webhooks to their links by this name: a renamed adapter
    would silently lose that."""
    assert KAZAWALLET in PAYMENT_LINK_PROVIDERS
