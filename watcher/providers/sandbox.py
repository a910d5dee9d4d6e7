"""The sandbox: where test-mode (sk_test_) card, bank and wallet payments go instead of a real
provider. Nothing leaves the machine; the payer's side is our own /sandbox/pay/{id} page.

Cards behave as seed 000's test cards say, with any future expiry and any 3-digit CVC; bank
and wallet payments get buttons that complete, fail or expire them. Whatever the payer does
there becomes a Report, applied like any provider's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from watcher.payments.outcomes import EXPIRED_OUTCOME, FAILED_OUTCOME, PAID, Report
from watcher.providers.base import Inbound, Order, Started, Tracked, WebhookRejected

NAME = "sandbox"
THREE_D_SECURE = "3ds"


@dataclass(frozen=True, slots=True)
class SandboxCard:
    label: str
    outcome: str  # PAID, FAILED_OUTCOME, or THREE_D_SECURE (a step, then approve or refuse)
    reason: str | None = None


TEST_CARDS: dict[str, SandboxCard] = {
    "4242424242424242": SandboxCard("succeeds", PAID),
    "4000000000000002": SandboxCard("is declined", FAILED_OUTCOME, "card_declined"),
    "4000000000009995": SandboxCard(
        "fails: insufficient funds", FAILED_OUTCOME, "insufficient_funds"
    ),
    "4000002500003155": SandboxCard("asks for 3-D Secure", THREE_D_SECURE),
}
# The bank and wallet page's buttons.
ACTIONS: dict[str, tuple[str, str | None]] = {
    "complete": (PAID, None),
    "fail": (FAILED_OUTCOME, "sandbox_failed"),
    "expire": (EXPIRED_OUTCOME, None),
}


class CardRefused(ValueError):
    """The form cannot be a test card payment. `code` names what to fix (the page says it in
    the payer's language: card_not_test, card_bad_expiry, card_expired, card_bad_cvc); the
    message is the English text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def card_number(text: str) -> str:
    return re.sub(r"[\s-]", "", text)


def check_card(number: str, expiry: str, cvc: str, now_ms: int) -> SandboxCard:
    """The test card's behaviour, or CardRefused saying what to fix."""
    card = TEST_CARDS.get(card_number(number))
    if card is None:
        raise CardRefused(
            "card_not_test",
            "This is the sandbox: use a test card, for example 4242 4242 4242 4242 "
            "(4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient funds, "
            "4000 0025 0000 3155 asks for 3-D Secure).",
        )
    match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", expiry)
    if match is None or not 1 <= int(match[1]) <= 12:
        raise CardRefused("card_bad_expiry", "Enter the expiry as MM/YY, for example 12/34.")
    year = int(match[2]) + (2000 if len(match[2]) == 2 else 0)
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    if (year, int(match[1])) < (today.year, today.month):
        raise CardRefused("card_expired", "The card has expired: any future expiry date works.")
    if not re.fullmatch(r"\d{3}", cvc.strip()):
        raise CardRefused("card_bad_cvc", "The CVC is 3 digits: any 3 digits work.")
    return card


def card_report(
    transaction_id: str, card: SandboxCard, amount: Decimal, *, approved: bool | None = None
) -> Report:
    """What paying `amount` TRY with `card` reports; for 3-D Secure, after the payer approved
    or refused. A paid report says how much, as a live provider's does (provider.paidAmount)."""
    outcome, reason = card.outcome, card.reason
    if outcome == THREE_D_SECURE:
        outcome, reason = (PAID, None) if approved else (FAILED_OUTCOME, "authentication_failed")
    return Report(
        key=f"{transaction_id}:card",
        type="sandbox.card",
        outcome=outcome,
        transaction_id=transaction_id,
        paid_amount=amount if outcome == PAID else None,
        reason=reason,
    )


def three_d_secure_asked(transaction_id: str) -> Report:
    """The 3-D Secure card was entered: the step the payer then approves or refuses. It
    changes nothing by itself; kept, it is what lets the step be answered at all."""
    return Report(
        key=three_d_secure_key(transaction_id),
        type="sandbox.3ds_asked",
        outcome=None,
        transaction_id=transaction_id,
    )


def three_d_secure_key(transaction_id: str) -> str:
    return f"{transaction_id}:3ds"


def action_report(transaction_id: str, action: str, amount: Decimal) -> Report:
    """What a bank or wallet button reports; `complete` says the whole `amount` TRY came."""
    outcome, reason = ACTIONS[action]
    return Report(
        key=f"{transaction_id}:{action}",
        type=f"sandbox.{action}",
        outcome=outcome,
        transaction_id=transaction_id,
        paid_amount=amount if outcome == PAID else None,
        reason=reason,
    )


class SandboxProvider:
    name = NAME
    currency = "TRY"

    def __init__(self, public_url: str) -> None:
        self._public_url = public_url

    async def start(self, order: Order) -> Started:
        return Started(
            reference=f"sbx_{order.transaction_id.removeprefix('txn_')}",
            redirect_url=f"{self._public_url}/sandbox/pay/{order.transaction_id}",
        )

    def parse(self, inbound: Inbound) -> list[Report]:
        raise WebhookRejected("the sandbox sends no webhooks")

    async def fetch(self, tracked: Tracked) -> Report | None:
        return None

    async def cancel(self, reference: str) -> None:
        return None

    async def check(self) -> str:
        return "test-mode payments stay on this server"

    async def close(self) -> None:
        return None
