"""What a report from outside (a provider's webhook or status, the sandbox page) does to a
payment. Pure: no I/O, no clock.

Providers speak in their own words; their adapters translate each report into one of the
outcomes below, and `decide` says which state change, if any, it makes:

| outcome    | from                 | to         | event                                    |
|------------|----------------------|------------|------------------------------------------|
| processing | pending              | confirming | payment.confirming                       |
| paid       | pending, confirming, | completed  | payment.completed                        |
|            | failed               |            |                                          |
| paid       | expired, cancelled   | (stays)    | payment.late: money came after the close |
| failed     | pending, confirming  | failed     | payment.failed                           |
| failed     | completed            | failed     | payment.failed, with previousStatus      |
| expired    | pending, confirming  | expired    | payment.expired                          |
| cancelled  | pending, confirming  | cancelled  | payment.cancelled                        |
| refunded   | completed            | refunded   | payment.refunded                         |

Anything else changes nothing (a repeat, or news that comes too late to matter).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from watcher.payments.states import (
    CANCELLED,
    COMPLETED,
    CONFIRMING,
    EVENT_FOR_STATE,
    EXPIRED,
    FAILED,
    LATE_EVENT,
    OPEN_STATES,
    PENDING,
    REFUNDED,
)

PROCESSING: Final = "processing"
PAID: Final = "paid"
FAILED_OUTCOME: Final = "failed"
EXPIRED_OUTCOME: Final = "expired"
CANCELLED_OUTCOME: Final = "cancelled"
REFUNDED_OUTCOME: Final = "refunded"
OUTCOMES: Final = frozenset(
    {PROCESSING, PAID, FAILED_OUTCOME, EXPIRED_OUTCOME, CANCELLED_OUTCOME, REFUNDED_OUTCOME}
)


@dataclass(frozen=True, slots=True)
class Report:
    """One thing an outside party said about a payment, in neutral terms.

    `key` is unique per source: a report seen again is applied once. The payment is found by
    our `transaction_id` where the source echoes it, else by the source's `reference` (its id
    of the payment, or of the money movement: `payment_ref`, which a report stores once known).
    """

    key: str
    type: str  # the source's own name for it, for logs and ops (checkout.session.completed)
    outcome: str | None  # one of OUTCOMES; None: nothing for us (an event type we ignore)
    transaction_id: str | None = None
    reference: str | None = None
    payment_ref: str | None = None
    paid_amount: Decimal | None = None  # when the source says how much was paid
    # The currency of paid_amount when it is not the payment's (TRY): a provider paid in
    # another currency, converted at the rate locked for the payment.
    paid_currency: str | None = None
    reason: str | None = None  # why it failed: card_declined, the bank's statusReason


@dataclass(frozen=True, slots=True)
class Change:
    """The state change a report makes; `status` is the payment's new status."""

    status: str
    event: str
    late: bool = False  # money for a payment already closed without it


_TO_STATE: Final = {
    PROCESSING: CONFIRMING,
    PAID: COMPLETED,
    FAILED_OUTCOME: FAILED,
    EXPIRED_OUTCOME: EXPIRED,
    CANCELLED_OUTCOME: CANCELLED,
    REFUNDED_OUTCOME: REFUNDED,
}
_FROM: Final = {
    PROCESSING: frozenset({PENDING}),
    PAID: OPEN_STATES | {FAILED},
    FAILED_OUTCOME: OPEN_STATES | {COMPLETED},
    EXPIRED_OUTCOME: OPEN_STATES,
    CANCELLED_OUTCOME: OPEN_STATES,
    REFUNDED_OUTCOME: frozenset({COMPLETED}),
}


def decide(status: str, outcome: str | None) -> Change | None:
    """The change `outcome` makes to a payment in `status`; None: it changes nothing."""
    if outcome is None or outcome not in _TO_STATE:
        return None
    if outcome == PAID and status in (EXPIRED, CANCELLED):
        return Change(status, LATE_EVENT, late=True)
    if status not in _FROM[outcome]:
        return None
    new = _TO_STATE[outcome]
    return Change(new, EVENT_FOR_STATE[new])
