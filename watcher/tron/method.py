"""USDT-TRC20 as a payment method: a locked rate and a deposit address for each payment.

The rate is fetched before the create transaction (network I/O never holds it open); the
address is allocated inside it, with the head block of the moment: transfers at or below
that block never count for the payment.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.clock import iso
from watcher.config import Settings
from watcher.db.models import Payment, Transfer
from watcher.errors import InvalidAmount, ProviderError
from watcher.merchants import AuthedKey
from watcher.money import canonical, from_micro, json_number, to_micro, usdt_for_try
from watcher.payments.methods import Opener
from watcher.payments.outcomes import Report
from watcher.payments.request import CreateRequest
from watcher.payments.snapshot import Snapshot
from watcher.rates.base import Quote, RateSource
from watcher.tron.transfers import DROPPED
from watcher.tron.view import NETWORK
from watcher.wallets.base import AddressAllocator

# The smallest USDT amount a payment may ask for: below a cent the amount rounds to nothing.
MIN_USDT = Decimal("0.01")


class CryptoMethod:
    kind = "crypto"

    def __init__(self, settings: Settings, rates: RateSource, addresses: AddressAllocator):
        self._rates = rates
        self._addresses = addresses
        self._spread = settings.rates.spread_percent
        self._ttl_ms = int(Decimal(str(settings.rates.quote_ttl_min)) * 60_000)
        self._late_ms = int(Decimal(str(settings.tron.late_window_h)) * 3_600_000)

    async def prepare(self, key: AuthedKey, req: CreateRequest) -> Opener:
        quote = await self._rates.quote()
        usdt = self._usdt_due(req, quote)
        reserved = await self._addresses.reserve()

        async def open_(session: AsyncSession, payment: Payment, snapshot: Snapshot) -> None:
            await self._open(session, payment, snapshot, quote, usdt, reserved)

        return open_

    def _usdt_due(self, req: CreateRequest, quote: Quote) -> Decimal:
        usdt = usdt_for_try(req.amount, quote.price, self._spread)
        if usdt < MIN_USDT:
            raise InvalidAmount(
                f"amount is below {canonical(MIN_USDT)} USDT at the current rate "
                f"({canonical(quote.price)} TRY per USDT)"
            )
        return usdt

    async def _open(
        self,
        session: AsyncSession,
        payment: Payment,
        snapshot: Snapshot,
        quote: Quote,
        usdt: Decimal,
        reserved: int | None,
    ) -> None:
        if snapshot.head is None:
            raise ProviderError("the chain follower has not started yet; try again shortly")
        # Transfers at or below the head of the moment never count for the payment.
        payment.created_block = snapshot.head
        payment.expires_ms = payment.created_ms + self._ttl_ms
        payment.rate = canonical(quote.price)
        if self._addresses.row_first:
            session.add(payment)
            await session.flush()  # the unique (merchant, mode, ref) constraint fires here
        allocation = await self._addresses.allocate(
            session, payment.id, to_micro(usdt), payment.expires_ms + self._late_ms, reserved
        )
        payment.address = allocation.address
        payment.address_index = allocation.index
        payment.amount_micro = allocation.amount_micro

    async def funds_held(self, session: AsyncSession, payment: Payment) -> str | None:
        """Read under the payment's lock: a block committed before it is counted; one
        committing after finds the payment cancelled and reports its funds as late, once."""
        total = await session.scalar(
            select(func.coalesce(func.sum(col(Transfer.amount_micro)), 0)).where(
                col(Transfer.payment_id) == payment.id, col(Transfer.state) != DROPPED
            )
        )
        held = int(total or 0)
        return f"{canonical(from_micro(held))} USDT (seen or final)" if held else None

    def started(self, payment: Payment) -> bool:
        return True  # the deposit address is all there is

    async def start(self, payment: Payment) -> None:
        return None

    async def cancel_outside(self, payment: Payment) -> Report | None:
        return None  # nothing to close: the address stays watched through its late window

    def created(self, payment: Payment, public_url: str) -> dict[str, Any]:
        return {
            "paymentUrl": f"{public_url}/pay/{payment.id}",
            "data": {
                "walletAddress": payment.address,
                "amount": json_number(from_micro(payment.amount_micro or 0)),
                "currency": "USDT",
                "network": NETWORK,
                "rate": json_number(Decimal(payment.rate or "0")),
                "expiresAt": iso(payment.expires_ms),
            },
        }
