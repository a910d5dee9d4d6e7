"""Payment creation (idempotent on externalRef), status lookup and cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher import jsonio
from watcher.clock import Clock
from watcher.config import Settings
from watcher.db.models import ChainCursor, Payment, Transfer
from watcher.errors import (
    DuplicateRef,
    InvalidAmount,
    InvalidRequest,
    InvalidState,
    LimitExceeded,
    NotFound,
    ProviderError,
)
from watcher.merchants import AuthedKey
from watcher.money import canonical, from_micro, to_kurus, to_micro, usdt_for_try
from watcher.payments import limits
from watcher.payments.events import record_event
from watcher.payments.request import CreateRequest
from watcher.payments.settle import DROPPED
from watcher.payments.states import CANCELLED, PENDING
from watcher.payments.switch import ensure_enabled
from watcher.rates.base import Quote, RateSource
from watcher.secrets import new_id
from watcher.wallets.base import AddressAllocator

log = structlog.get_logger("watcher.payments")

# The smallest USDT amount a payment may ask for: below a cent the amount rounds to nothing.
MIN_USDT = Decimal("0.01")


@dataclass(frozen=True)
class Created:
    payment: Payment
    created: bool  # False: an idempotent replay of an earlier request


class PaymentService:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        rates: RateSource,
        addresses: AddressAllocator,
        clock: Clock,
    ):
        self._settings = settings
        self._sessions = sessions
        self._rates = rates
        self._addresses = addresses
        self._clock = clock

    async def create(self, key: AuthedKey, req: CreateRequest) -> Created:
        existing = await self._existing(key, req)
        if existing is not None:
            return Created(existing, created=False)
        if req.provider != "crypto":
            raise InvalidRequest(f"provider {req.provider!r} is not enabled on this server")
        quote = await self._rates.quote()  # network I/O stays outside the transaction
        usdt = self._usdt_due(req, quote)
        try:
            async with self._sessions() as session, session.begin():
                await ensure_enabled(session)
                payment = await self._insert(session, key, req, quote, usdt)
        except (IntegrityError, LimitExceeded):
            # A concurrent request with the same ref won the insert: answer with its payment.
            # Its payment may also be what now fills the customer's limit, so a limit refusal
            # is checked the same way: a retry must get the payment, not a 403 because of it.
            existing = await self._existing(key, req)
            if existing is None:
                raise
            return Created(existing, created=False)
        log.info(
            "payment_created",
            payment_id=payment.id,
            merchant_id=key.merchant_id,
            provider=payment.provider,
            amount_try=canonical(req.amount),
        )
        return Created(payment, created=True)

    async def _existing(self, key: AuthedKey, req: CreateRequest) -> Payment | None:
        async with self._sessions() as session:
            payment = await _by_ref(session, key, req.external_ref)
        if payment is None:
            return None
        if payment.amount_kurus != to_kurus(req.amount) or payment.provider != req.provider:
            raise DuplicateRef(
                f"externalRef {req.external_ref!r} already exists with another "
                f"{'amount' if payment.provider == req.provider else 'provider'}"
            )
        return payment

    def _usdt_due(self, req: CreateRequest, quote: Quote) -> Decimal:
        usdt = usdt_for_try(req.amount, quote.price, self._settings.rates.spread_percent)
        if usdt < MIN_USDT:
            raise InvalidAmount(
                f"amount is below {canonical(MIN_USDT)} USDT at the current rate "
                f"({canonical(quote.price)} TRY per USDT)"
            )
        return usdt

    async def _insert(
        self,
        session: AsyncSession,
        key: AuthedKey,
        req: CreateRequest,
        quote: Quote,
        usdt: Decimal,
    ) -> Payment:
        now = self._clock()
        await limits.check(
            session,
            self._settings.limits,
            req,
            now,
            merchant_id=key.merchant_id,
            sandbox=key.sandbox,
        )
        head = await _seen_head(session)
        ttl_ms = int(Decimal(str(self._settings.rates.quote_ttl_min)) * 60_000)
        expires = now + ttl_ms
        payment = Payment(
            id=new_id("txn_"),
            merchant_id=key.merchant_id,
            sandbox=key.sandbox,
            external_ref=req.external_ref,
            provider=req.provider,
            amount_kurus=to_kurus(req.amount),
            currency=req.currency,
            full_name=req.full_name,
            email=req.email,
            phone=req.phone,
            customer_user_id=req.user_id,
            callback_url=req.callback_url,
            return_url=req.return_url,
            cancel_url=req.cancel_url,
            metadata_json=jsonio.dumps(req.metadata),
            status=PENDING,
            created_ms=now,
            updated_ms=now,
            expires_ms=expires,
            rate=canonical(quote.price),
            created_block=head,
        )
        session.add(payment)
        await session.flush()  # the unique (merchant, mode, ref) constraint fires here
        late_ms = int(Decimal(str(self._settings.tron.late_window_h)) * 3_600_000)
        allocation = await self._addresses.allocate(
            session, payment.id, to_micro(usdt), expires + late_ms
        )
        payment.address = allocation.address
        payment.address_index = allocation.index
        payment.amount_micro = allocation.amount_micro
        session.add(payment)
        await session.flush()
        return payment

    async def get(self, key: AuthedKey, *, txn_id: str | None, ref: str | None) -> Payment:
        if not _storable(txn_id) or not _storable(ref):
            raise NotFound("no such transaction")
        async with self._sessions() as session:
            if txn_id:
                payment = await session.get(Payment, txn_id)
                if payment and (
                    payment.merchant_id != key.merchant_id or payment.sandbox != key.sandbox
                ):
                    payment = None
            elif ref:
                payment = await _by_ref(session, key, ref)
            else:
                raise InvalidRequest("give transactionId or externalRef")
        if payment is None:
            raise NotFound("no such transaction")
        return payment

    async def cancel(self, key: AuthedKey, txn_id: str) -> Payment:
        if not _storable(txn_id):
            raise NotFound("no such transaction")
        async with self._sessions() as session, session.begin():
            payment = await session.get(Payment, txn_id, with_for_update=True)
            if payment is None or (
                payment.merchant_id != key.merchant_id or payment.sandbox != key.sandbox
            ):
                raise NotFound("no such transaction")
            if payment.status != PENDING:
                raise InvalidState(
                    f"only a pending payment can be cancelled; it is {payment.status}"
                )
            held = await _funds_seen(session, payment)
            if held:
                raise InvalidState(
                    f"the payment has received {canonical(from_micro(held))} USDT (seen or "
                    "final) and cannot be cancelled; let it complete or expire, and settle "
                    "the funds with the payer"
                )
            payment.status = CANCELLED
            await record_event(session, payment, "payment.cancelled", self._clock())
        log.info("payment_cancelled", payment_id=txn_id, merchant_id=key.merchant_id)
        return payment


async def _funds_seen(session: AsyncSession, payment: Payment) -> int:
    """Micro-USDT credited to the payment, final or only seen (not forked out). Read under
    the payment's lock: a block committed before it is counted; one committing after finds
    the payment cancelled and reports its funds as late, once."""
    total = await session.scalar(
        select(func.coalesce(func.sum(col(Transfer.amount_micro)), 0)).where(
            col(Transfer.payment_id) == payment.id, col(Transfer.state) != DROPPED
        )
    )
    return int(total or 0)


def _storable(text: str | None) -> bool:
    """Whether a stored id or ref could equal `text`. None of ours holds NUL (PostgreSQL's
    text type cannot, and its driver fails the whole query) or a lone surrogate."""
    if text is None:
        return True
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _by_ref(session: AsyncSession, key: AuthedKey, ref: str) -> Payment | None:
    return (
        await session.execute(
            select(Payment).where(
                col(Payment.merchant_id) == key.merchant_id,
                col(Payment.sandbox) == key.sandbox,
                col(Payment.external_ref) == ref,
            )
        )
    ).scalar_one_or_none()


async def _seen_head(session: AsyncSession) -> int:
    """The head block at creation: transfers at or below it never count for the payment."""
    cursor = await session.get(ChainCursor, "seen")
    if cursor is None:
        raise ProviderError("the chain follower has not started yet; try again shortly")
    return cursor.block_number
