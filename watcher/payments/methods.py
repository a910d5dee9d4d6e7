"""The port every way of paying plugs into: crypto natively, card, bank and wallet through a
provider adapter.

payments/ knows states, events and money. A PaymentMethod knows the rest: what a payment of
its kind needs at creation (a locked rate and a deposit address; a provider's payment page),
the fields it adds to the create answer, and the block it adds to the payment's JSON
(`crypto`, or `provider`). Methods are keyed by the create request's `provider` field
("crypto", "card", "bank", "wallet") and wired in watcher.services.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from watcher.db.models import Payment
from watcher.merchants import AuthedKey
from watcher.payments.outcomes import Report
from watcher.payments.request import CreateRequest
from watcher.payments.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Block:
    """A method's part of the payment's JSON, shown under `key` (`crypto`, `provider`).

    Money fields are named `amount`, `rate`, `…Amount` or `…Usdt` and hold Decimals: they go
    out as JSON numbers wherever the payment is shown.
    """

    key: str
    fields: dict[str, Any] = field(default_factory=dict)


# Fills a new payment's method fields (and sets its deadline) inside the create transaction,
# with what that transaction read first (the chain head). It may store the payment (flush) if
# it must refer to its row; the service stores it otherwise.
Opener = Callable[[AsyncSession, Payment, Snapshot], Awaitable[None]]
# The blocks of these payments, by payment id; a payment without one is left out.
Describe = Callable[[AsyncSession, Sequence[Payment]], Awaitable[dict[str, Block]]]


class PaymentMethod(Protocol):
    kind: str

    async def prepare(self, key: AuthedKey, req: CreateRequest) -> Opener:
        """Network I/O the creation needs (a rate quote), done before its transaction."""
        ...

    async def funds_held(self, session: AsyncSession, payment: Payment) -> str | None:
        """What the payment has received so far, seen or final ("20 USDT (seen or final)"),
        or None: a payment that holds funds cannot be cancelled."""
        ...

    def started(self, payment: Payment) -> bool:
        """Whether the payment is open on the method's outside side (always, for crypto)."""
        ...

    async def start(self, payment: Payment) -> None:
        """After the create transaction: open the payment outside (a provider's checkout
        session) and note the result on `payment`, which the service then stores. Raises
        watcher.errors.ProviderError; the service then forgets a payment it has just made, so
        a retry with the same externalRef starts afresh."""
        ...

    async def cancel_outside(self, payment: Payment) -> Report | None:
        """Before the merchant's cancel is made: close the payment outside (expire a
        provider's checkout session), so it cannot be paid there once it is cancelled.

        None: closed, or nothing to close. A Report: it could not be closed because it moved
        on outside meanwhile (paid, expired), which the service applies instead of the
        cancel. ProviderError: it could not be closed now, so it is not cancelled."""
        ...

    def created(self, payment: Payment, public_url: str) -> dict[str, Any]:
        """The method's fields of the create answer (after `transactionId`)."""
        ...
