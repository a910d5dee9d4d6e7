"""Payment states and the events that announce them (docs/merchant-api.md#payment-states)."""

from __future__ import annotations

from typing import Final

PENDING: Final = "pending"
CONFIRMING: Final = "confirming"
COMPLETED: Final = "completed"
EXPIRED: Final = "expired"
CANCELLED: Final = "cancelled"
FAILED: Final = "failed"
REFUNDED: Final = "refunded"  # a provider payment paid back (card, bank, wallet)

OPEN_STATES: Final = frozenset({PENDING, CONFIRMING})
FINAL_STATES: Final = frozenset({COMPLETED, EXPIRED, CANCELLED, FAILED, REFUNDED})
ALL_STATES: Final = OPEN_STATES | FINAL_STATES
# Closed before any money arrived: funds that come later are late, whatever the time.
CLOSED_WITHOUT_FUNDS: Final = frozenset({CANCELLED, FAILED})

EVENT_FOR_STATE: Final = {
    CONFIRMING: "payment.confirming",
    COMPLETED: "payment.completed",
    EXPIRED: "payment.expired",
    CANCELLED: "payment.cancelled",
    FAILED: "payment.failed",
    REFUNDED: "payment.refunded",
}
LATE_EVENT: Final = "payment.late"
REVERTED_EVENT: Final = "payment.reverted"
OVERPAID_EVENT: Final = "payment.overpaid"
EVENT_TYPES: Final = frozenset(
    {*EVENT_FOR_STATE.values(), LATE_EVENT, REVERTED_EVENT, OVERPAID_EVENT}
)
