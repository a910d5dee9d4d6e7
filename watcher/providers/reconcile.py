"""Provider payments whose webhook never came: ask the provider, and close what is past due.

Each round first applies the webhooks that were stored but could not be applied when they
came (watcher.payments.reports): they were answered, and the provider will not send them
again.

Every open card, bank or wallet payment is asked about (`Provider.fetch`) at most once per
`providers.reconcile_interval_s`, and once more right after its deadline, so a webhook lost
in transit cannot leave a paid payment pending: the answer is applied like a webhook (the
same reports, the same events). A payment nobody can ask about (the sandbox, a provider
without a status call, one whose start never finished) expires on the clock once its
deadline is GRACE_MS past; money that still comes is reported as late, never lost. One whose
provider does not answer, or is no longer configured, stays open until it can be asked.

One runs per deployment, beside the chain follower (on PostgreSQL, on the elected scanner).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.clock import Clock
from watcher.config import Settings
from watcher.db.errors import transient_db_error
from watcher.db.models import Payment
from watcher.errors import ProviderError
from watcher.payments.outcomes import EXPIRED_OUTCOME, Report
from watcher.payments.service import PaymentService
from watcher.payments.states import OPEN_STATES
from watcher.providers.base import Provider, Tracked

log = structlog.get_logger("watcher.providers.reconcile")

GRACE_MS = 120_000
BATCH = 50
PENDING_BATCH = 500  # stored reports retried per round
LOOP_S = 15.0  # how often due payments are looked for


class ProviderReconciler:
    name = "provider-reconcile"

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        providers: Mapping[str, Provider],
        payments: PaymentService,
        clock: Clock,
        *,
        loop_s: float = LOOP_S,
    ) -> None:
        self._sessions = sessions
        self._providers = providers
        self._payments = payments
        self._clock = clock
        self._interval_ms = int(settings.providers.reconcile_interval_s * 1000)
        self._loop_s = min(loop_s, settings.providers.reconcile_interval_s)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while not stop.is_set() and await self.step() == BATCH:
                    pass
            except DBAPIError as exc:
                if not transient_db_error(exc):
                    raise
                log.warning("reconcile.retry", error=str(exc), retry_in_s=self._loop_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._loop_s)
            except TimeoutError:
                pass

    async def step(self) -> int:
        """Apply stored reports left over, then ask about one batch of due payments; how
        many payments were looked at."""
        await self._payments.apply_pending(PENDING_BATCH)
        now = self._clock()
        due = await self._due(now)
        for payment in due:
            await self._check(payment, now)
        return len(due)

    async def _due(self, now: int) -> list[Payment]:
        last = col(Payment.checked_ms)
        asked_since_deadline = last >= col(Payment.expires_ms)
        query = (
            select(Payment)
            .where(
                col(Payment.provider_name).is_not(None),
                col(Payment.status).in_(OPEN_STATES),
                or_(
                    # its turn: not asked for an interval (the first time: an interval old)
                    (last.is_(None) & (col(Payment.created_ms) <= now - self._interval_ms))
                    | (last <= now - self._interval_ms),
                    # past its deadline and not asked since
                    (col(Payment.expires_ms) <= now) & (last.is_(None) | ~asked_since_deadline),
                ),
            )
            .order_by(col(Payment.expires_ms))
            .limit(BATCH)
        )
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())

    async def _check(self, payment: Payment, now: int) -> None:
        try:
            report = await self._ask(payment)
        except ProviderError as exc:
            # Unanswered is not "unpaid": never expired on the clock while the provider,
            # which may hold its money, cannot be asked.
            log.warning(
                "reconcile.provider_error",
                payment_id=payment.id,
                provider=payment.provider_name,
                error=exc.message,
            )
            report = None
        else:
            if report is None and now >= payment.expires_ms + GRACE_MS:
                report = Report(
                    key=f"deadline:{payment.id}",
                    type="deadline",
                    outcome=EXPIRED_OUTCOME,
                    transaction_id=payment.id,
                )
        if report is not None:
            [applied] = await self._payments.report(payment.provider_name or "", [report])
            log.info(
                "reconcile.applied",
                payment_id=payment.id,
                provider=payment.provider_name,
                report_type=report.type,
                result=applied.result,
            )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Payment).where(col(Payment.id) == payment.id).values(checked_ms=now)
            )

    async def _ask(self, payment: Payment) -> Report | None:
        if payment.provider_ref is None:
            return None  # its start never finished: no page was ever shown to pay on
        adapter = self._providers.get(payment.provider_name or "")
        if adapter is None:
            # Its provider's settings are gone: whether it was paid cannot be asked.
            raise ProviderError(f"provider {payment.provider_name!r} is not configured")
        tracked = Tracked(payment.id, payment.provider_ref, payment.expires_ms, payment.provider)
        return await adapter.fetch(tracked)
