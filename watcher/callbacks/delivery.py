"""The delivery worker: the only part of the daemon that talks to merchants.

One loop waits on "a slot freed, callbacks queued in this process (the doorbell), the poll
interval, or stop"; each claimed callback is sent by
its own task, at most `callbacks.concurrency` at once and `callbacks.per_host_concurrency` per
host (host:port), so a slow or dead endpoint holds a few slots of its own and never the rest.

The state lives on the outbox rows (watcher.callbacks.outbox): a lease while an attempt is in
flight, the retry time after it. The lease is the per-attempt timeout plus a margin, so a live
worker always finishes an attempt before anyone else may take the callback, and a dead one
only delays it. Attempts that finish together are stored in one transaction (group commit).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import secrets
import socket
import time
from collections import Counter as Tally
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher.callbacks import retry
from watcher.callbacks.doorbell import Doorbell
from watcher.callbacks.outbox import Job, Mark, Outbox
from watcher.callbacks.sender import Outcome, Sender
from watcher.clock import Clock, iso, now_ms
from watcher.config import Settings
from watcher.logs import log_context
from watcher.metrics import Metrics
from watcher.secrets import SecretBox

log = structlog.get_logger("watcher.callbacks")

LEASE_MARGIN_MS = 30_000


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def metric_outcome(mark: Mark) -> str:
    """delivered | dead | rejected (answered, not accepted) | error (no answer)."""
    if mark.decision.status in (retry.DELIVERED, retry.DEAD):
        return mark.decision.status
    return "rejected" if mark.status_code is not None else "error"


class DeliveryWorker:
    """Sends due callbacks; a component of `watcher run` and, alone, of `watcher deliver`."""

    name = "delivery"

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        http: aiohttp.ClientSession,
        clock: Clock = now_ms,
        worker_id: str | None = None,
        *,
        uniform: retry.Uniform = random.uniform,
        metrics: Metrics | None = None,
        doorbell: Doorbell | None = None,
    ) -> None:
        self._cfg = settings.callbacks
        self._clock = clock
        self._uniform = uniform
        self._metrics = metrics
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.lease_ms = math.ceil(self._cfg.timeout_s * 1000) + LEASE_MARGIN_MS
        self._outbox = Outbox(sessions, box, self.worker_id, self.lease_ms)
        self._sender = Sender(http, self._cfg)
        self._in_flight: Tally[str] = Tally()
        self._tasks: set[asyncio.Task[None]] = set()
        self._claims_failing = False  # the last claim met a database error
        self._slot_freed = asyncio.Event()
        self._queued = (doorbell or Doorbell()).rung
        self._claim_batch = max(1, self._cfg.concurrency // 4)
        self._marks: list[tuple[Mark, asyncio.Future[bool]]] = []
        self._marking = False

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish the attempts in flight and return."""
        log.info("delivery.started", worker=self.worker_id)
        last_claim = -math.inf
        try:
            while not stop.is_set():
                self._slot_freed.clear()
                more = False
                if self._queued.is_set() and self._free() > 0:
                    self._queued.clear()  # rung again by any commit from here on
                    last_claim = -math.inf
                if self._claim_now(time.monotonic() - last_claim):
                    last_claim = time.monotonic()
                    more = await self._fill_or_back_off()
                if not more or self._free() < self._claim_batch:
                    await self._wait(stop)
        finally:
            await self._drain()
            log.info("delivery.stopped", worker=self.worker_id)

    async def run_once(self) -> int:
        """Claim what is due now (up to the free slots), send it, wait; the number sent."""
        claimed, _ = await self._fill()
        await self._drain()
        return claimed

    def _free(self) -> int:
        return self._cfg.concurrency - len(self._tasks)

    def _claim_now(self, since_last_claim_s: float) -> bool:
        # Claim in batches (a claim costs a transaction), but at least once per poll interval
        # whenever any slot is free: slots held by a hanging host never block the rest.
        free = self._free()
        if free <= 0:
            return False
        return free >= self._claim_batch or since_last_claim_s >= self._cfg.poll_interval_s

    async def _fill_or_back_off(self) -> bool:
        try:
            _, more = await self._fill()
        except (OperationalError, DBAPIError, OSError) as exc:
            # The database is down or busy: keep the loop alive, try again after a poll.
            # Said once per outage, not at every poll.
            level = log.debug if self._claims_failing else log.warning
            level("delivery.claim_failed", worker=self.worker_id, error=str(exc)[:300])
            self._claims_failing = True
            return False
        if self._claims_failing:
            log.info("delivery.claims_resumed", worker=self.worker_id)
            self._claims_failing = False
        return more

    async def _fill(self) -> tuple[int, bool]:
        """Claim into the free slots and start a task per callback: (claimed, maybe more due)."""
        free = self._free()
        if free <= 0:
            return 0, True
        per_host = self._cfg.per_host_concurrency
        jobs, more = await self._outbox.claim(self._clock(), free, self._in_flight, per_host)
        for job in jobs:
            self._in_flight[job.host] += 1
            task = asyncio.create_task(self._deliver(job), name=f"callback-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished(job.host))
        return len(jobs), more

    def _finished(self, host: str) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._in_flight[host] -= 1
            if self._in_flight[host] <= 0:
                del self._in_flight[host]
            self._slot_freed.set()

        return done

    async def _wait(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._slot_freed.wait())]
        if self._free() > 0:  # with every slot busy, a freed slot is what to wait for
            waiters.append(asyncio.create_task(self._queued.wait()))
        try:
            await asyncio.wait(
                waiters, timeout=self._cfg.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waiters:
                w.cancel()

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- one attempt ------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        event = job.event
        with log_context(
            callback_id=job.id, payment_id=event.payment_id, merchant_id=event.merchant_id
        ):
            try:
                outcome = await self._sender.send(job, self._clock())
                await self._mark(job, outcome)
            except Exception:
                # Not swallowed silently: the lease expires and the callback is sent again.
                log.exception("callback.attempt_crashed", attempt=job.attempt, host=job.host)

    async def _mark(self, job: Job, outcome: Outcome) -> None:
        decision = retry.decide(
            job.attempt,
            outcome.delivered,
            self._clock(),
            max_attempts=self._cfg.max_attempts,
            schedule=self._cfg.backoff_s,
            uniform=self._uniform,
        )
        mark = Mark(
            job,
            outcome.started_ms,
            outcome.duration_ms,
            outcome.status_code,
            outcome.error,
            decision,
        )
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._marks.append((mark, stored))
        if not self._marking:
            await self._write_marks()
        _log(mark, self.worker_id, lease_lost=not await stored)
        if self._metrics is not None:
            self._metrics.callback_attempt(metric_outcome(mark))

    async def _write_marks(self) -> None:
        # Group commit: whoever finds no writer running writes everything queued, in one
        # transaction, until the queue is empty. No timer, no added latency when idle: one
        # turn of the event loop first, so that attempts answered in the same turn join the
        # first batch (16 answers arriving together were stored as 1, then 15).
        self._marking = True
        try:
            await asyncio.sleep(0)
            while self._marks:
                batch, self._marks = self._marks, []
                try:
                    owned = await self._outbox.mark([m for m, _ in batch])
                except Exception as exc:
                    for _, stored in batch:
                        stored.set_exception(exc)
                else:
                    for (_, stored), ok in zip(batch, owned, strict=True):
                        stored.set_result(ok)
        finally:
            self._marking = False


def _log(mark: Mark, worker_id: str, *, lease_lost: bool) -> None:
    fields: dict[str, Any] = {
        "event_id": mark.job.event.event_id,
        "attempt": mark.job.attempt,
        "host": mark.job.host,
        "status_code": mark.status_code,
        "duration_ms": mark.duration_ms,
        "worker": worker_id,
    }
    status = mark.decision.status
    if lease_lost:
        log.warning("callback.lease_lost", **fields, error=mark.error)
    elif status == retry.DELIVERED:
        log.info("callback.delivered", **fields)
    elif status == retry.DEAD:
        log.warning("callback.dead", **fields, error=mark.error)
    else:
        due = iso(mark.decision.next_attempt_ms or 0)
        log.info("callback.failed", **fields, error=mark.error, next_attempt_at=due)
