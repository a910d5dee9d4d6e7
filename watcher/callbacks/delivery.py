"""The delivery worker: the only part of the daemon that talks to merchants.

One loop waits on "a slot freed, the poll interval, or stop"; each claimed callback is sent by
its own task, at most `callbacks.concurrency` at once and `callbacks.per_host_concurrency` per
host (host:port), so a slow or dead endpoint holds a few slots of its own and never the rest.

Claims are leases on the row (`locked_until_ms`, `locked_by`), never memory: a worker that dies
between sending and marking leaves the lease to expire, and the callback is sent again (the
receiver may see an attempt twice, never none; eventId lets it drop the repeat). The lease is
the per-attempt timeout plus a margin, so a live worker always finishes an attempt first.

Claiming locks due candidates with `FOR UPDATE SKIP LOCKED` on PostgreSQL (hosts at their
limit excluded in SQL), picks what fits the free slots per host and leases those in the same
transaction, so several `watcher deliver` processes never hold the same callback and never
queue behind each other's rows. On SQLite every transaction starts with BEGIN IMMEDIATE
(watcher.db.engine), which makes the same steps atomic.

Delivered only on HTTP 200 with JSON {"received": true}. Every attempt is stored
(CallbackAttempt: code, error, duration); the retry time lives on the row (watcher.callbacks.retry).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import secrets
import socket
import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from sqlalchemy import BigInteger, ColumnElement, bindparam, func, insert, or_, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.callbacks import payload, retry, signing
from watcher.callbacks.urls import UnsafeCallbackUrl, host_key, pin
from watcher.clock import Clock, iso, now_ms
from watcher.config import Settings
from watcher.db.engine import transaction
from watcher.db.models import Callback, CallbackAttempt, Merchant, PaymentEvent
from watcher.logs import log_context
from watcher.metrics import Metrics
from watcher.secrets import SecretBox

log = structlog.get_logger("watcher.callbacks")

LEASE_MARGIN_MS = 30_000
MAX_RESPONSE_BYTES = 64 * 1024
CANDIDATES_PER_SLOT = 4
USER_AGENT = "kasa-watcher-callbacks/1"


@dataclass(frozen=True)
class Job:
    """A claimed callback with everything needed to send it (no database during the send)."""

    id: int
    host: str
    url: str
    attempt: int  # the number of this attempt, 1-based
    event: PaymentEvent
    secret: str


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    started_ms: int
    duration_ms: int
    status_code: int | None = None
    error: str | None = None


_MARK_ROW = (
    update(Callback)
    .where(col(Callback.id) == bindparam("b_id"), col(Callback.status) != retry.DELIVERED)
    .values(
        attempts=col(Callback.attempts) + 1,
        status=bindparam("b_status"),
        next_attempt_ms=func.coalesce(
            bindparam("b_next", type_=BigInteger), col(Callback.next_attempt_ms)
        ),
        locked_until_ms=0,
        locked_by=None,
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        delivered_ms=bindparam("b_delivered", type_=BigInteger),
    )
)


# What a callback's payload is built from (watcher.callbacks.payload.event_view).
_EVENT_FIELDS = (
    "event_id",
    "payment_id",
    "merchant_id",
    "type",
    "sequence",
    "status",
    "created_ms",
    "data_json",
)


_JOINED = (
    col(PaymentEvent.event_id) == col(Callback.event_id),
    col(Merchant.id) == col(PaymentEvent.merchant_id),
)
_SENDING = (
    col(Callback.id),
    col(Callback.host),
    col(Callback.url),
    col(Callback.attempts),
    *(col(getattr(PaymentEvent, name)) for name in _EVENT_FIELDS),
    col(Merchant.webhook_secret_enc),
)


@dataclass(frozen=True)
class _Mark:
    job: Job
    outcome: Outcome
    decision: retry.Decision
    done: asyncio.Future[bool]  # True once stored; False if the lease had passed to another


def pick(
    candidates: Iterable[tuple[int, str]], free: int, in_flight: Mapping[str, int], per_host: int
) -> list[int]:
    """Ids of due callbacks, oldest first, that fit `free` slots and each host's limit."""
    taken: Tally[str] = Tally()
    chosen: list[int] = []
    for cid, host in candidates:
        if len(chosen) >= free:
            break
        if in_flight.get(host, 0) + taken[host] < per_host:
            taken[host] += 1
            chosen.append(cid)
    return chosen


def judge(status_code: int, body: bytes) -> str | None:
    """None when the answer acknowledges the callback; else why it does not."""
    if status_code != 200:
        return f"HTTP {status_code}"
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("received") is True:
        return None
    shown = body[:200].decode("utf-8", "replace")
    return f'HTTP 200 without {{"received": true}}: {shown!r}'


def _metric_outcome(outcome: Outcome, decision: retry.Decision) -> str:
    if decision.status in (retry.DELIVERED, retry.DEAD):
        return decision.status
    return "rejected" if outcome.status_code is not None else "error"


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class DeliveryWorker:
    """Sends due callbacks; a component of `watcher run` and, alone, of `watcher deliver`."""

    name = "delivery"

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        http: httpx.AsyncClient,
        clock: Clock = now_ms,
        worker_id: str | None = None,
        *,
        uniform: retry.Uniform = random.uniform,
        metrics: Metrics | None = None,
    ) -> None:
        self._cfg = settings.callbacks
        self._sessions = sessions
        self._box = box
        self._http = http
        self._clock = clock
        self._uniform = uniform
        self._metrics = metrics
        self.worker_id = (worker_id or default_worker_id())[:64]
        self.lease_ms = math.ceil(self._cfg.timeout_s * 1000) + LEASE_MARGIN_MS
        self._in_flight: Tally[str] = Tally()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._claim_batch = max(1, self._cfg.concurrency // 4)
        self._marks: list[_Mark] = []
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
                if self._claim_now(time.monotonic() - last_claim):
                    last_claim = time.monotonic()
                    more = await self._fill_or_back_off()
                if not more or self._free() < self._claim_batch:
                    await self._wait(stop)
        finally:
            await self._drain()
            log.info("delivery.stopped", worker=self.worker_id)

    def _claim_now(self, since_last_claim_s: float) -> bool:
        # Claim in batches (a claim costs a transaction), but at least once per poll interval
        # whenever any slot is free: slots held by a hanging host never block the rest.
        free = self._free()
        if free <= 0:
            return False
        return free >= self._claim_batch or since_last_claim_s >= self._cfg.poll_interval_s

    async def run_once(self) -> int:
        """Claim what is due now (up to the free slots), send it, wait; the number sent."""
        claimed, _ = await self._fill()
        await self._drain()
        return claimed

    def _free(self) -> int:
        return self._cfg.concurrency - len(self._tasks)

    async def _fill_or_back_off(self) -> bool:
        try:
            _, more = await self._fill()
        except (OperationalError, DBAPIError, OSError) as exc:
            # The database is down or busy: keep the loop alive, try again after a poll.
            log.warning("delivery.claim_failed", worker=self.worker_id, error=str(exc)[:300])
            return False
        return more

    async def _wait(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._slot_freed.wait())]
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

    async def _fill(self) -> tuple[int, bool]:
        """Claim into the free slots and start a task per callback: (claimed, maybe more due)."""
        free = self._free()
        if free <= 0:
            return 0, True
        jobs, more = await self._claim(free)
        for job in jobs:
            self._in_flight[job.host] += 1
            task = asyncio.create_task(self._deliver(job), name=f"callback-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._finished(job.host))
        return len(jobs), more

    def _finished(self, host: str) -> Any:
        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._in_flight[host] -= 1
            if self._in_flight[host] <= 0:
                del self._in_flight[host]
            self._slot_freed.set()

        return done

    # -- claiming ---------------------------------------------------------------------------

    def _due(self, now: int) -> list[ColumnElement[bool]]:
        return [
            col(Callback.status) == retry.PENDING,
            col(Callback.next_attempt_ms) <= now,
            col(Callback.locked_until_ms) <= now,
        ]

    async def _claim(self, free: int) -> tuple[list[Job], bool]:
        per_host = self._cfg.per_host_concurrency
        saturated = [h for h, n in self._in_flight.items() if n >= per_host]
        async with transaction(self._sessions) as session:
            conn = await session.connection()
            if conn.dialect.name == "postgresql":
                # Losing a lease in a database crash can only cause a repeat send; the outbox
                # rows themselves were committed durably by record_event.
                await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            now = self._clock()
            query = select(col(Callback.id), col(Callback.host), col(Callback.url))
            query = query.where(*self._due(now))
            if saturated:
                host = col(Callback.host)
                query = query.where(or_(host.is_(None), host.not_in(saturated)))
            limit = free * CANDIDATES_PER_SLOT
            query = query.order_by(col(Callback.next_attempt_ms), col(Callback.id)).limit(limit)
            # Candidates are locked (PostgreSQL): concurrent workers skip them and take the next
            # ones instead of racing for the same rows. Those not chosen are free at commit.
            rows = (await conn.execute(query.with_for_update(skip_locked=True))).all()
            candidates = [(r.id, r.host or host_key(r.url)) for r in rows]
            chosen = pick(candidates, free, self._in_flight, per_host)
            if not chosen:
                return [], False
            lease = (
                update(Callback)
                .where(col(Callback.id).in_(chosen))
                .values(locked_until_ms=now + self.lease_ms, locked_by=self.worker_id)
            )
            if conn.dialect.name == "postgresql":
                # One round trip: lease and read what sending needs (UPDATE … FROM … RETURNING).
                leased = (await conn.execute(lease.where(*_JOINED).returning(*_SENDING))).all()
            else:  # SQLite's RETURNING sees only the updated table; no round trips to save
                await conn.execute(lease)
                sending = select(*_SENDING).where(col(Callback.id).in_(chosen), *_JOINED)
                leased = (await conn.execute(sending)).all()
        return self._jobs(leased), len(rows) == limit or len(chosen) < len(rows)

    def _jobs(self, leased: Sequence[Any]) -> list[Job]:
        plain: dict[str, str] = {}
        jobs = []
        for row in sorted(leased, key=lambda r: r.id):
            enc = row.webhook_secret_enc
            if enc not in plain:
                plain[enc] = self._box.decrypt(enc)
            event = PaymentEvent(**{name: getattr(row, name) for name in _EVENT_FIELDS})
            host = row.host or host_key(row.url)
            jobs.append(Job(row.id, host, row.url, row.attempts + 1, event, plain[enc]))
        return jobs

    # -- one attempt -------------------------------------------------------------------------

    async def _deliver(self, job: Job) -> None:
        event = job.event
        with log_context(
            callback_id=job.id, payment_id=event.payment_id, merchant_id=event.merchant_id
        ):
            try:
                outcome = await self._send(job)
                await self._mark(job, outcome)
            except Exception:
                # Not swallowed silently: the lease expires and the callback is sent again.
                log.exception("callback.attempt_crashed", attempt=job.attempt, host=job.host)

    def _request_parts(self, job: Job, timestamp: str) -> tuple[bytes, dict[str, str]]:
        signed = payload.callback_payload(job.event, job.secret, timestamp)
        body = payload.encode(signed)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            signing.SIGNATURE_HEADER: signed["signature"],
            signing.TIMESTAMP_HEADER: timestamp,
            signing.ATTEMPT_HEADER: str(job.attempt),
            signing.BODY_SIGNATURE_HEADER: signing.sign_body(job.secret, timestamp, body),
            signing.EVENT_ID_HEADER: job.event.event_id,
        }
        return body, headers

    async def _send(self, job: Job) -> Outcome:
        started_ms = self._clock()
        body, headers = self._request_parts(job, iso(started_ms))
        t0 = time.monotonic()
        code: int | None = None
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                code, answer = await self._post(job.url, body, headers)
            error = judge(code, answer)
        except TimeoutError:
            error = f"timed out after {self._cfg.timeout_s:g}s"
        except UnsafeCallbackUrl as exc:
            error = f"refused: {exc}"
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
        duration_ms = round((time.monotonic() - t0) * 1000)
        return Outcome(error is None, started_ms, duration_ms, code, error)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        target = await pin(url, self._cfg.allow_private_urls)
        request = self._http.build_request(
            "POST",
            target.url,
            content=body,
            headers={**headers, **target.headers},
            extensions=target.extensions,
            timeout=self._cfg.timeout_s,
        )
        response = await self._http.send(request, stream=True, follow_redirects=False)
        try:
            answer = b""
            async for chunk in response.aiter_bytes():
                answer += chunk
                if len(answer) >= MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code, answer[:MAX_RESPONSE_BYTES]

    async def _mark(self, job: Job, outcome: Outcome) -> None:
        """Store the attempt and its decision; outcomes finishing together share a commit."""
        decision = retry.decide(
            job.attempt,
            outcome.delivered,
            self._clock(),
            max_attempts=self._cfg.max_attempts,
            schedule=self._cfg.backoff_s,
            uniform=self._uniform,
        )
        marked: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._marks.append(_Mark(job, outcome, decision, marked))
        if not self._marking:
            await self._write_marks()
        self._log(job, outcome, decision, lease_lost=not await marked)
        if self._metrics is not None:
            self._metrics.callback_attempt(_metric_outcome(outcome, decision))

    async def _write_marks(self) -> None:
        # Group commit: whoever finds no writer running writes everything queued, in one
        # transaction, until the queue is empty. No timer, no added latency when idle.
        self._marking = True
        try:
            while self._marks:
                batch, self._marks = self._marks, []
                try:
                    kept = await self._store(batch)
                except Exception as exc:
                    for mark in batch:
                        mark.done.set_exception(exc)
                else:
                    for mark, ok in zip(batch, kept, strict=True):
                        mark.done.set_result(ok)
        finally:
            self._marking = False

    async def _store(self, batch: list[_Mark]) -> list[bool]:
        """Write a batch of marks; for each, whether the row was still leased to us."""
        ids = [m.job.id for m in batch]
        async with transaction(self._sessions) as session:
            conn = await session.connection()
            if conn.dialect.name == "postgresql":
                # A mark lost in a database crash only means the callback is sent again.
                await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            mine = select(col(Callback.id)).where(
                col(Callback.id).in_(ids), col(Callback.locked_by) == self.worker_id
            )
            owned = set((await conn.execute(mine.with_for_update())).scalars())
            await conn.execute(insert(CallbackAttempt), [self._attempt_row(m) for m in batch])
            # A row whose lease passed to another worker is theirs to mark, unless we delivered:
            # delivered is a fact, recorded regardless (their mark then finds it delivered).
            updates = [
                self._row_values(m)
                for m in batch
                if m.job.id in owned or m.decision.status == retry.DELIVERED
            ]
            if updates:
                await conn.execute(_MARK_ROW, updates)
        return [m.job.id in owned for m in batch]

    def _attempt_row(self, m: _Mark) -> dict[str, Any]:
        return {
            "callback_id": m.job.id,
            "attempt": m.job.attempt,
            "started_ms": m.outcome.started_ms,
            "duration_ms": m.outcome.duration_ms,
            "status_code": m.outcome.status_code,
            "error": m.outcome.error,
            "worker": self.worker_id,
        }

    @staticmethod
    def _row_values(m: _Mark) -> dict[str, Any]:
        delivered = m.decision.status == retry.DELIVERED
        return {
            "b_id": m.job.id,
            "b_status": m.decision.status,
            "b_next": m.decision.next_attempt_ms,
            "b_code": m.outcome.status_code,
            "b_error": m.outcome.error,
            "b_delivered": m.outcome.started_ms + m.outcome.duration_ms if delivered else None,
        }

    def _log(
        self, job: Job, outcome: Outcome, decision: retry.Decision, *, lease_lost: bool
    ) -> None:
        fields: dict[str, Any] = {
            "event_id": job.event.event_id,
            "attempt": job.attempt,
            "host": job.host,
            "status_code": outcome.status_code,
            "duration_ms": outcome.duration_ms,
            "worker": self.worker_id,
        }
        if lease_lost:
            log.warning("callback.lease_lost", **fields, error=outcome.error)
        elif decision.status == retry.DELIVERED:
            log.info("callback.delivered", **fields)
        elif decision.status == retry.DEAD:
            log.warning("callback.dead", **fields, error=outcome.error)
        else:
            log.info(
                "callback.failed",
                **fields,
                error=outcome.error,
                next_attempt_at=iso(decision.next_attempt_ms or 0),
            )
