"""Card, bank and wallet as payment methods: each goes to the adapter configured for it, or
to the sandbox for test-mode (sk_test_) payments, which never reach a real provider.

The one place where a Payment meets the provider port: it becomes an Order for `start`, and
the adapter's answer (its reference, its payment page) is noted on it. A provider paid in
another currency than TRY gets the order converted at a rate locked at creation, as crypto
payments are; the rate is kept on the payment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from watcher import jsonio
from watcher.db.models import Payment
from watcher.errors import ProviderError
from watcher.merchants import AuthedKey
from watcher.money import canonical, from_kurus, json_number
from watcher.payments.methods import Block, Opener
from watcher.payments.outcomes import Report
from watcher.payments.request import CreateRequest
from watcher.payments.snapshot import Snapshot
from watcher.providers.base import Order, Provider, Tracked
from watcher.providers.sandbox import NAME as SANDBOX
from watcher.rates.base import RateSource

log = structlog.get_logger("watcher.providers")


class ProviderMethod:
    def __init__(
        self,
        kind: str,
        live: str,
        adapters: Mapping[str, Provider],
        public_url: str,
        ttl_ms: int,
        rates: RateSource,
    ) -> None:
        """`live`: the adapter new live payments of this kind go to; `adapters`: every one
        built (a payment keeps the adapter it was made with, also after a switch)."""
        self.kind = kind
        self._rates = rates
        self._adapters = adapters
        self._live = live
        self._sandbox = SANDBOX
        self._public_url = public_url
        self._ttl_ms = ttl_ms

    async def prepare(self, key: AuthedKey, req: CreateRequest) -> Opener:
        name = self._sandbox if key.sandbox else self._live
        converts = self._adapters[name].currency != req.currency
        quote = await self._rates.quote() if converts else None  # outside the transaction

        async def open_(session: AsyncSession, payment: Payment, _: Snapshot) -> None:
            payment.provider_name = name
            payment.expires_ms = payment.created_ms + self._ttl_ms
            if quote is not None:
                payment.rate = canonical(quote.price)

        return open_

    async def funds_held(self, session: AsyncSession, payment: Payment) -> str | None:
        paid = payment.paid_kurus
        return f"{canonical(from_kurus(paid))} TRY" if paid else None

    def started(self, payment: Payment) -> bool:
        return payment.provider_ref is not None

    async def start(self, payment: Payment) -> None:
        adapter = self._adapters.get(payment.provider_name or self._live)
        if adapter is None:
            raise ProviderError(f"provider {payment.provider_name!r} is not configured")
        started = await adapter.start(self.order(payment))
        payment.provider_ref = started.reference
        payment.redirect_url = started.redirect_url

    async def cancel_outside(self, payment: Payment) -> Report | None:
        """Close the provider's side first. When that fails the provider is asked where the
        payment stands: paid or expired meanwhile, that is what happened (and the cancel is
        refused); still open, the cancel waits (502) rather than leave a payable page."""
        adapter = self._adapters.get(payment.provider_name or "")
        if adapter is None or payment.provider_ref is None:
            return None
        try:
            await adapter.cancel(payment.provider_ref)
        except ProviderError as exc:
            log.warning(
                "provider.cancel_failed",
                payment_id=payment.id,
                provider=adapter.name,
                error=exc.message,
            )
            tracked = Tracked(payment.id, payment.provider_ref, payment.expires_ms, self.kind)
            report = await adapter.fetch(tracked)
            if report is None or report.outcome is None:
                raise
            return report
        return None

    def order(self, payment: Payment) -> Order:
        metadata = jsonio.loads(payment.metadata_json or "{}")
        user_id = metadata.get("userId") if isinstance(metadata, dict) else None
        return Order(
            transaction_id=payment.id,
            external_ref=payment.external_ref,
            method=self.kind,
            amount=from_kurus(payment.amount_kurus),
            currency=payment.currency,
            full_name=payment.full_name,
            email=payment.email,
            phone=payment.phone,
            user_id=None if user_id is None else str(user_id),
            return_url=payment.return_url,
            cancel_url=payment.cancel_url,
            payment_url=self.payment_url(payment),
            expires_ms=payment.expires_ms,
            rate=Decimal(payment.rate) if payment.rate else None,
        )

    def payment_url(self, payment: Payment) -> str:
        return f"{self._public_url}/pay/{payment.id}"

    def created(self, payment: Payment, public_url: str) -> dict[str, Any]:
        page = f"{public_url}/pay/{payment.id}"
        return {
            "provider": payment.provider_name,
            "redirectUrl": payment.redirect_url or page,
            "paymentUrl": page,
        }


def provider_block(payment: Payment) -> Block:
    paid = payment.paid_kurus
    fields: dict[str, Any] = {
        "name": payment.provider_name,
        "reference": payment.provider_ref,
        "paidAmount": None if paid is None else json_number(from_kurus(paid)),
    }
    if payment.rate is not None:  # paid in another currency, converted at this rate
        fields["rate"] = json_number(Decimal(payment.rate))
    return Block("provider", fields)


async def provider_blocks(session: AsyncSession, payments: Sequence[Payment]) -> dict[str, Block]:
    return {p.id: provider_block(p) for p in payments}
