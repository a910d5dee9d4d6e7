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

A `paid` report in a currency it cannot be converted from, or for less than the payment
asks where the payer cannot choose the amount (a card checkout: FIXED_PRICE_METHODS; a
provider's payment link: PAYMENT_LINK_PROVIDERS), does not pay it: an open payment fails
(reason currency_mismatch or amount_mismatch, with what came), a closed one is told
`payment.late` as for any money after the close. Such a provider takes one payment per
session or link, so nothing more will come to make it whole; the merchant refunds or
settles. More than asked pays it (paidAmount says how much). Bank and wallet deposits,
whose amount the payer enters and an operator approves, complete with what was approved
(paidAmount says how much).

A refund of a payment that is still open waits for it (`waits`): providers do not keep
their webhooks in order, and the payment's own report may come after its refund's.

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


AMOUNT_MISMATCH: Final = "amount_mismatch"
CURRENCY_MISMATCH: Final = "currency_mismatch"
# Payment methods whose amount the payer cannot change: less is not a payment of the order.
FIXED_PRICE_METHODS: Final = frozenset({"card"})
# Providers that sell a payment as a payment link made for it, at the price we set (its id is
# the payment's reference from `start`). Their webhooks are signed for the link, not for our
# transactionId, which they only echo: a report that names a link counts for the payment that
# link was made for, never for another one its unsigned echo names. And the price is fixed,
# as a card's: less is not a payment of the order.
PAYMENT_LINK_PROVIDERS: Final = frozenset({"kazawallet"})


def shortfall(
    report: Report, paid_try: Decimal | None, amount: Decimal, *, fixed_price: bool
) -> str | None:
    """Why a `paid` report does not pay a payment of `amount` TRY; None when it does, or
    when the source did not say how much it took. `paid_try`: what it says was paid, in TRY
    (None: in a currency that cannot be converted); `fixed_price`: the payer could not pay
    another amount, so less is a mismatch (else a deposit completes with what came)."""
    if report.outcome != PAID or report.paid_amount is None:
        return None
    if paid_try is None:
        return CURRENCY_MISMATCH
    if fixed_price and paid_try < amount:
        return AMOUNT_MISMATCH
    return None


def waits(status: str, outcome: str | None) -> bool:
    """Whether `outcome` is news for a later state of a payment in `status` (a refund of a
    payment not reported paid yet), to apply once it is there rather than drop."""
    return outcome == REFUNDED_OUTCOME and status in OPEN_STATES


def decide(status: str, outcome: str | None, *, short: bool = False) -> Change | None:
    """The change `outcome` makes to a payment in `status`; None: it changes nothing.
    `short`: a `paid` report that does not cover the payment (see `shortfall`)."""
    if outcome is None or outcome not in _TO_STATE:
        return None
    if outcome == PAID and status in (EXPIRED, CANCELLED):
        return Change(status, LATE_EVENT, late=True)
    if outcome == PAID and short:
        return Change(FAILED, EVENT_FOR_STATE[FAILED]) if status in OPEN_STATES else None
    if status not in _FROM[outcome]:
        return None
    new = _TO_STATE[outcome]
    return Change(new, EVENT_FOR_STATE[new])
