"""What a provider's report does to a payment: the table in watcher.payments.outcomes."""

from __future__ import annotations

import pytest

from watcher.payments.outcomes import Change, decide


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
