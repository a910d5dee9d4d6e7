"""The provider port: what an outside payment provider (card, bank, wallet) does for us.

Three operations, plain data in and out:
- `start`: open the provider's side of a payment; its reference and payment page (no page: a
  bank transfer's instructions are shown on our own /pay/{id});
- `parse`: verify an inbound webhook (a signature, or a path token and the sender's address)
  and read it into neutral reports; WebhookRejected when it is not authentic or not fresh;
- `fetch`: ask the provider where a payment stands, for a webhook that never came (None: the
  provider has nothing to say, or cannot be asked);
- `check`: whether the configured credentials work (`watcher providers check`).

An adapter is one small module (stripe.py, sandbox.py, …) with its status table as data. It
never sees the database or the Payment model: an Order goes in, a Started or Reports come
out; watcher.payments.outcomes maps the reports onto payment states, the same way for
every provider. Failures to reach or satisfy the provider raise watcher.errors.ProviderError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from watcher.payments.outcomes import Report


class WebhookRejected(Exception):
    """The webhook is not authentic or not fresh: nothing in it is believed (answered 401)."""


class NotChecked(Exception):
    """The provider has no call to check credentials with; the message says when they are
    checked instead."""


@dataclass(frozen=True, slots=True)
class Order:
    """What a provider is told about a payment: the merchant's real order, nothing else."""

    transaction_id: str  # ours: passed as the provider's reference or idempotency key
    external_ref: str  # the merchant's order id
    method: str  # card | bank | wallet
    amount: Decimal  # TRY
    currency: str
    full_name: str
    email: str | None
    phone: str | None
    user_id: str | None  # metadata.userId, for providers that track customers
    return_url: str | None
    cancel_url: str | None
    payment_url: str  # our /pay/{id}
    expires_ms: int
    # TRY per unit of the provider's currency, locked at creation, when the provider is
    # paid in another currency than TRY (Provider.currency); None otherwise.
    rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Started:
    reference: str  # the provider's id for this payment
    redirect_url: str | None  # the provider's payment page; None: our /pay/{id}


@dataclass(frozen=True, slots=True)
class Inbound:
    """An inbound webhook as it arrived."""

    body: bytes
    headers: Mapping[str, str]  # lower-case names
    path: str  # what follows /providers/{name}/webhook/ (a path token), "" if nothing
    client_ip: str | None
    received_ms: int


@dataclass(frozen=True, slots=True)
class Tracked:
    """A payment the provider holds, as the reconcile step asks about it."""

    transaction_id: str
    reference: str
    expires_ms: int
    method: str  # card | bank | wallet


class Provider(Protocol):
    name: str
    # What the provider is paid in: "TRY", or another currency the order is converted to at
    # a rate locked when the payment is created (Order.rate).
    currency: str

    async def start(self, order: Order) -> Started:
        """Open the payment at the provider; ProviderError if it cannot be done now."""
        ...

    def parse(self, inbound: Inbound) -> list[Report]:
        """The reports of an authentic webhook; WebhookRejected otherwise."""
        ...

    async def fetch(self, tracked: Tracked) -> Report | None:
        """Where the payment stands at the provider; None when there is nothing to apply."""
        ...

    async def cancel(self, reference: str) -> None:
        """Close the payment at the provider (the merchant cancelled it), so it cannot be
        paid there any more; a no-op where the provider has no such call."""
        ...

    async def check(self) -> str:
        """Whether the credentials work: what the provider said (never a secret),
        ProviderError saying why not, or NotChecked when the provider cannot be asked."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
