"""Payment creation (idempotent on externalRef), status lookup and cancellation.

What a payment needs beyond the fields every payment has (a rate and an address, a
provider's payment page) is its method's business (watcher.payments.methods).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher import jsonio
from watcher.clock import Clock
from watcher.config import Settings
from watcher.db.models import Payment
from watcher.errors import (
    DuplicateRef,
    InvalidRequest,
    InvalidState,
    LimitExceeded,
    NotFound,
    ProviderError,
    WatcherError,
)
from watcher.merchants import AuthedKey
from watcher.money import canonical, to_kurus
from watcher.payments import limits, switch
from watcher.payments.events import record_event
from watcher.payments.methods import Block, Describe, Opener, PaymentMethod
from watcher.payments.outcomes import Report
from watcher.payments.reports import (
    RECEIVED,
    REPEAT,
    Applied,
    Stored,
    apply_stored,
    pending_reports,
    store_reports,
)
from watcher.payments.request import CreateRequest, not_enabled
from watcher.payments.snapshot import Snapshot
from watcher.payments.snapshot import read as read_snapshot
from watcher.payments.states import CANCELLED, PENDING
from watcher.secrets import new_id

log = structlog.get_logger("watcher.payments")


@dataclass(frozen=True)
class Created:
    payment: Payment
    created: bool  # False: an idempotent replay of an earlier request
    method: PaymentMethod


class PaymentService:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        methods: Mapping[str, PaymentMethod],
        describe: Describe,
        clock: Clock,
    ):
        self._settings = settings
        self._sessions = sessions
        self._methods = methods
        self._describe = describe
        self._clock = clock

    @property
    def kinds(self) -> frozenset[str]:
        """The payment methods a create request may ask for on this server."""
        return frozenset(self._methods)

    async def block(self, session: AsyncSession, payment: Payment) -> Block | None:
        """The payment method's part of the payment's JSON, as of now."""
        return (await self._describe(session, [payment])).get(payment.id)

    async def create(self, key: AuthedKey, req: CreateRequest) -> Created:
        """One transaction reads what it needs in one statement (switch, head, this ref) and
        inserts. A request repeating an earlier one's externalRef gets that payment whatever
        else stands in the way now: the switch, the rate source, a limit it fills itself."""
        method = self._methods.get(req.provider)
        if method is None:
            raise not_enabled(req.provider)
        try:
            opener = await method.prepare(key, req)  # network I/O stays outside the transaction
        except WatcherError:
            replay = await self._replay(method, key, req)
            if replay is None:
                raise
            return replay
        try:
            async with self._sessions() as session, session.begin():
                snapshot = await read_snapshot(session, key, req.external_ref)
                existing = None
                if snapshot.existing_id is not None:
                    existing = await session.get(Payment, snapshot.existing_id)
                if existing is None:
                    if snapshot.disabled:
                        raise switch.refused()
                    payment = await self._insert(session, key, req, opener, snapshot)
        except (IntegrityError, LimitExceeded):
            # A concurrent request with the same ref won the insert: answer with its payment.
            # Its payment may also be what now fills the customer's limit, so a limit refusal
            # is checked the same way: a retry must get the payment, not a 403 because of it.
            replay = await self._replay(method, key, req)
            if replay is None:
                raise
            return replay
        if existing is not None:
            _check_same(existing, req)
            return Created(await self._started(method, existing), False, method)
        payment = await self._started(method, payment, made_now=True)
        log.info(
            "payment_created",
            payment_id=payment.id,
            merchant_id=key.merchant_id,
            provider=payment.provider,
            amount_try=canonical(req.amount),
        )
        return Created(payment, True, method)

    async def _replay(
        self, method: PaymentMethod, key: AuthedKey, req: CreateRequest
    ) -> Created | None:
        """The payment an earlier request made with this externalRef, if any."""
        existing = await self._existing(key, req)
        if existing is None:
            return None
        return Created(await self._started(method, existing), False, method)

    async def _started(
        self, method: PaymentMethod, payment: Payment, *, made_now: bool = False
    ) -> Payment:
        """The payment, opened on the method's outside side (a provider's checkout session).

        A payment this request has just made is forgotten again when that fails, so a retry
        with the same externalRef starts afresh; one found as an earlier request's (which may
        still be starting it) is retried, the provider's idempotency making that safe. One
        that is closed or past its deadline is never opened: a payable page for it would take
        money for nothing (its start never finished: a crash, or a clean-up that failed).
        """
        if method.started(payment):
            return payment
        if payment.status != PENDING or self._clock() >= payment.expires_ms:
            return payment
        try:
            await method.start(payment)  # network I/O, outside any transaction
        except ProviderError:
            if made_now:
                await self._forget(payment.id)
            raise
        async with self._sessions() as session, session.begin():
            stored = await session.get(Payment, payment.id, with_for_update=True)
            if stored is None:
                raise ProviderError("the payment could not be started; try again")
            if not method.started(stored):
                stored.provider_ref = payment.provider_ref
                stored.redirect_url = payment.redirect_url
                session.add(stored)
        return stored

    async def _forget(self, payment_id: str) -> None:
        """Remove a payment that never started: no event, no callback, nothing refers to it."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(Payment).where(
                    col(Payment.id) == payment_id,
                    col(Payment.provider_ref).is_(None),
                    col(Payment.next_sequence) == 1,  # no event was recorded for it
                )
            )
        log.info("payment_forgotten", payment_id=payment_id, reason="provider start failed")

    async def _existing(self, key: AuthedKey, req: CreateRequest) -> Payment | None:
        async with self._sessions() as session:
            payment = await _by_ref(session, key, req.external_ref)
        if payment is not None:
            _check_same(payment, req)
        return payment

    async def _insert(
        self,
        session: AsyncSession,
        key: AuthedKey,
        req: CreateRequest,
        opener: Opener,
        snapshot: Snapshot,
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
            expires_ms=now,  # the method sets the deadline
        )
        await opener(session, payment, snapshot)
        if payment in session:  # stored by the opener first: its address fields
            await session.flush()
        else:  # the unique (merchant, mode, ref) constraint fires here
            await insert_payment(session, payment)
        return payment

    async def get(
        self, key: AuthedKey, *, txn_id: str | None, ref: str | None
    ) -> tuple[Payment, Block | None]:
        """The merchant's payment by id or externalRef, and its method's block (one session)."""
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
            return payment, await self.block(session, payment)

    async def report(
        self, source: str, reports: Sequence[Report], body: bytes | None = None
    ) -> list[Applied]:
        """Store what `source` (a provider, the sandbox) reports, commit, then apply it.

        Once this returns the reports are durable, so the caller may acknowledge them: a
        report that could not be applied now stays stored (`received`) for `apply_pending`.
        """
        async with self._sessions() as session, session.begin():
            stored = await store_reports(session, source, reports, now=self._clock(), body=body)
        return [await self._applied(s) for s in stored]

    async def apply_pending(self, limit: int = 50) -> int:
        """Apply stored reports that could not be applied when they came; how many were
        tried."""
        async with self._sessions() as session:
            ids = await pending_reports(session, limit)
        for row_id in ids:
            await self._apply(row_id)
        return len(ids)

    async def _applied(self, stored: Stored) -> Applied:
        if stored.row_id is None:
            return Applied(stored.report, REPEAT)
        return await self._apply(stored.row_id) or Applied(stored.report, RECEIVED)

    async def _apply(self, report_id: int) -> Applied | None:
        """Apply one stored report in its own transaction; None if that failed (logged)."""
        try:
            async with self._sessions() as session, session.begin():
                return await apply_stored(
                    session, report_id, now=self._clock(), describe=self._describe
                )
        # Any failure, a database refusal or a bug alike: the report is stored, so the
        # provider is answered and the report applied on a later round; nothing is lost.
        except Exception as exc:
            log.error("provider.report_apply_failed", report_id=report_id, error=_brief(exc))
            return None

    async def cancel(self, key: AuthedKey, txn_id: str) -> Payment:
        """Cancel a pending payment that holds nothing. Its outside side is closed first (a
        provider's checkout session expired), outside any transaction: a payment marked
        cancelled while its page still takes money would be paid and cancelled at once."""
        if not _storable(txn_id):
            raise NotFound("no such transaction")
        async with self._sessions() as session:
            payment = await self._cancellable(session, key, txn_id)
        method = self._methods.get(payment.provider)
        if method is not None:
            moved = await method.cancel_outside(payment)
            if moved is not None:  # paid or expired outside meanwhile: that stands
                await self.report(payment.provider_name or "", [moved])
        async with self._sessions() as session, session.begin():
            payment = await self._cancellable(session, key, txn_id, lock=True)
            payment.status = CANCELLED
            block = await self.block(session, payment)
            await record_event(session, payment, "payment.cancelled", self._clock(), block=block)
        log.info("payment_cancelled", payment_id=txn_id, merchant_id=key.merchant_id)
        return payment

    async def _cancellable(
        self, session: AsyncSession, key: AuthedKey, txn_id: str, *, lock: bool = False
    ) -> Payment:
        """The merchant's payment if it can be cancelled now; NotFound or InvalidState."""
        payment = await session.get(Payment, txn_id, with_for_update=lock)
        if payment is None or (
            payment.merchant_id != key.merchant_id or payment.sandbox != key.sandbox
        ):
            raise NotFound("no such transaction")
        if payment.status != PENDING:
            raise InvalidState(f"only a pending payment can be cancelled; it is {payment.status}")
        method = self._methods.get(payment.provider)
        held = await method.funds_held(session, payment) if method else None
        if held:
            raise InvalidState(
                f"the payment has received {held} and cannot be cancelled; let it complete "
                "or expire, and settle the funds with the payer"
            )
        return payment


def _check_same(payment: Payment, req: CreateRequest) -> None:
    """A repeated externalRef must come with the same amount and provider."""
    if payment.amount_kurus != to_kurus(req.amount) or payment.provider != req.provider:
        raise DuplicateRef(
            f"externalRef {req.external_ref!r} already exists with another "
            f"{'amount' if payment.provider == req.provider else 'provider'}"
        )


def _brief(exc: Exception) -> str:
    """The error's kind and first line: a database error's full text carries its statement
    and parameters (customer data)."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:200]}"


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


_PAYMENT_COLUMNS = tuple(c.key for c in Payment.__table__.columns)  # type: ignore[attr-defined]
_INSERT_PAYMENT = insert(Payment)


async def insert_payment(session: AsyncSession, payment: Payment) -> None:
    """Store a new payment with one Core INSERT: the ORM's unit of work costs several times
    the statement for a row nothing else in the transaction touches. `payment` stays a plain
    object, not in the session."""
    conn = await session.connection()
    await conn.execute(_INSERT_PAYMENT, {k: getattr(payment, k) for k in _PAYMENT_COLUMNS})


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
