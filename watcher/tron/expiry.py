"""Expiry: open crypto payments past their deadline become `expired`, partial sums kept.

A payment expires only when its deadline has passed on the wall clock *and* on the chain as
read (the `seen` cursor's block is later than the deadline): while the follower lags, an
on-time transfer could still be in a block not read yet. Payments with a transfer still
waiting for finality are left to the follower, which re-settles them when the block becomes
final (an on-time transfer awaiting finality holds expiry;
docs/architecture.md#settlement).

The decision itself is tron.settle's; this component only finds the candidates.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy import exists, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.clock import Clock
from watcher.config import Settings
from watcher.db.engine import transaction
from watcher.db.errors import transient_db_error
from watcher.db.models import Payment, Transfer
from watcher.payments.states import OPEN_STATES
from watcher.tron import cursors
from watcher.tron.reconcile import resettle
from watcher.tron.transfers import SEEN

log = structlog.get_logger("watcher.tron.expiry")

BATCH = 200


class Expirer:
    name = "expirer"

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        interval_s: float | None = None,
        batch: int = BATCH,
    ):
        self._sessions = sessions
        self._clock = clock
        self._tolerance = settings.tron.tolerance_micro
        self._interval_s = interval_s if interval_s is not None else settings.tron.poll_interval_s
        self._batch = batch

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while not stop.is_set() and await self.step():
                    pass
            except DBAPIError as exc:
                # A dropped connection, a deadlock or a busy SQLite file: try again next
                # round, as the follower does; ending the task would take the scanner down.
                if not transient_db_error(exc):
                    raise
                log.warning("expiry.retry", error=str(exc), retry_in_s=self._interval_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
            except TimeoutError:
                pass

    async def step(self) -> bool:
        """Settle one batch of overdue payments; True if a full batch was found (more may wait)."""
        now = self._clock()
        async with transaction(self._sessions) as s:
            # Share-locked: on PostgreSQL a follower rolling `seen` back (a fork) between
            # this read and the sweep would leave it judged against blocks no longer
            # walked, and an on-time transfer about to be walked again would find its
            # payment expired. The follower moves the cursor before it locks payments,
            # the expirer locks it before them too: one order, no deadlock.
            seen = await cursors.seen_for_share(s)
            if seen is None:
                return False
            chain_ms = seen.block_ms
            ids = await self._overdue(s, min(now, chain_ms))
            events = await resettle(
                s, ids, now_ms=now, chain_ms=chain_ms, tolerance_micro=self._tolerance
            )
        if ids:
            log.info("expiry.swept", payments=len(ids), events=events)
        return len(ids) == self._batch and events > 0

    async def _overdue(self, s: AsyncSession, before_ms: int) -> list[str]:
        awaiting = exists().where(
            col(Transfer.payment_id) == col(Payment.id), col(Transfer.state) == SEEN
        )
        rows = await s.execute(
            select(col(Payment.id))
            .where(
                col(Payment.status).in_(OPEN_STATES),
                col(Payment.address).is_not(None),
                col(Payment.expires_ms) < before_ms,
                ~awaiting,
            )
            .order_by(col(Payment.expires_ms))
            .limit(self._batch)
        )
        return [r for (r,) in rows]
