"""The outbox rows as the delivery worker uses them: claim (lease) due callbacks, mark attempts.

Claims are leases on the row (`locked_until_ms`, `locked_by`), never memory: a worker that dies
between sending and marking leaves the lease to expire, and the callback is sent again (the
receiver may see an attempt twice, never none; eventId lets it drop the repeat).

Claiming locks due candidates with `FOR UPDATE SKIP LOCKED` on PostgreSQL (hosts at their
limit excluded in SQL), picks what fits the free slots per host and leases those in the same
transaction, so several `watcher deliver` processes never hold the same callback and never
queue behind each other's rows. On SQLite every transaction starts with BEGIN IMMEDIATE
(watcher.db.engine), which makes the same steps atomic. On PostgreSQL the statements are
written out once (watcher.callbacks.outbox_pg); on SQLite they are built here.

Both claims and marks commit asynchronously on PostgreSQL (`synchronous_commit = off`): losing
one in a database crash can only cause a repeat send. The outbox rows themselves are written
durably, with the state change, by watcher.payments.events.record_event.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.callbacks import outbox_pg, retry
from watcher.callbacks.payload import EventRow
from watcher.callbacks.urls import host_key
from watcher.db.engine import transaction
from watcher.db.models import Callback, CallbackAttempt, Merchant, Payment, PaymentEvent
from watcher.secrets import SecretBox

# Candidates read (and, on PostgreSQL, locked) per free slot when a host's limit may leave
# some of them out; when no host can reach its limit, each candidate fills a slot.
CANDIDATES_PER_SLOT = 4


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What a callback's payload is built from: its event row's columns (payload.EventRow),
    without an ORM object's cost."""

    event_id: str
    payment_id: str
    merchant_id: int
    type: str
    sequence: int
    status: str
    created_ms: int
    data_json: str


@dataclass(frozen=True)
class Job:
    """A claimed callback with everything needed to send it (no database during the send)."""

    id: int
    host: str
    url: str
    attempt: int  # the number of this attempt, 1-based
    event: EventRow
    # Out of repr: logged tracebacks show frame locals, and a Job is one in every attempt.
    # None: the merchant has no test webhook secret yet (never the live one instead).
    secret: str | None = field(repr=False)
    livemode: bool = True  # False: a test-mode payment's, signed with the test secret


@dataclass(frozen=True)
class Mark:
    """The outcome of one attempt and the retry decision to store for it."""

    job: Job
    started_ms: int
    duration_ms: int
    status_code: int | None
    error: str | None
    decision: retry.Decision


_MARK_ROW = (
    update(Callback)
    .where(col(Callback.id) == bindparam("b_id"), col(Callback.status) != retry.DELIVERED)
    .values(
        attempts=col(Callback.attempts) + 1,
        status=bindparam("b_status"),
        next_attempt_ms=func.coalesce(
            bindparam("b_next_ms", type_=BigInteger), col(Callback.next_attempt_ms)
        ),
        locked_until_ms=0,
        locked_by=None,
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        delivered_ms=bindparam("b_delivered_ms", type_=BigInteger),
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
    col(Payment.id) == col(PaymentEvent.payment_id),
)
_SENDING = (
    col(Callback.id),
    col(Callback.host),
    col(Callback.url),
    col(Callback.attempts),
    *(col(getattr(PaymentEvent, name)) for name in _EVENT_FIELDS),
    col(Merchant.webhook_secret_enc),
    col(Merchant.test_webhook_secret_enc),
    col(Payment.sandbox),
)


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


class Outbox:
    """Claims and marks for one worker (`worker_id` is written into its leases)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        worker_id: str,
        lease_ms: int,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        engine: AsyncEngine = sessions.kw["bind"]
        self._pg = engine if engine.dialect.name == "postgresql" else None

    async def claim(
        self, now: int, free: int, in_flight: Mapping[str, int], per_host: int
    ) -> tuple[list[Job], bool]:
        """Lease up to `free` due callbacks within per-host limits: (jobs, maybe more due)."""
        unbound = free + max(in_flight.values(), default=0) <= per_host
        limit = free if unbound else free * CANDIDATES_PER_SLOT
        # Candidates are locked (PostgreSQL): concurrent workers skip them and take the next
        # ones instead of racing for the same rows. Those not chosen are free at commit.
        if self._pg is not None:
            until = now + self.lease_ms
            leased = await outbox_pg.claim(
                self._pg, now, free, in_flight, per_host, limit, until, self.worker_id
            )
            seen = leased[0].seen if leased else 0
        else:
            seen, leased = await self._claim_sqlite(now, free, in_flight, per_host, limit)
        if not leased:
            return [], False
        return self._jobs(leased), seen == limit or len(leased) < seen

    async def _claim_sqlite(
        self, now: int, free: int, in_flight: Mapping[str, int], per_host: int, limit: int
    ) -> tuple[int, Sequence[Any]]:
        saturated = [h for h, n in in_flight.items() if n >= per_host]
        async with transaction(self._sessions) as session:
            conn = await session.connection()
            query = select(col(Callback.id), col(Callback.host), col(Callback.url))
            query = query.where(*_due(now))
            if saturated:
                host = col(Callback.host)
                query = query.where(or_(host.is_(None), host.not_in(saturated)))
            query = query.order_by(col(Callback.next_attempt_ms), col(Callback.id)).limit(limit)
            rows = (await conn.execute(query)).all()
            candidates = [(r.id, r.host or host_key(r.url)) for r in rows]
            chosen = pick(candidates, free, in_flight, per_host)
            if not chosen:
                return len(rows), []
            return len(rows), await self._lease(conn, chosen, now)

    async def _lease(self, conn: AsyncConnection, ids: list[int], now: int) -> Sequence[Any]:
        # SQLite's RETURNING sees only the updated table (and it has no round trips to save).
        lease = (
            update(Callback)
            .where(col(Callback.id).in_(ids))
            .values(locked_until_ms=now + self.lease_ms, locked_by=self.worker_id)
        )
        await conn.execute(lease)
        return (
            await conn.execute(select(*_SENDING).where(col(Callback.id).in_(ids), *_JOINED))
        ).all()

    def _jobs(self, leased: Sequence[Any]) -> list[Job]:
        plain: dict[str, str] = {}
        jobs = []
        for row in sorted(leased, key=lambda r: r.id):
            livemode = not row.sandbox
            enc = row.webhook_secret_enc if livemode else row.test_webhook_secret_enc
            if enc is not None and enc not in plain:
                plain[enc] = self._box.decrypt(enc)
            secret = None if enc is None else plain[enc]
            event = EventFacts(*(getattr(row, name) for name in _EVENT_FIELDS))
            host = row.host or host_key(row.url)
            jobs.append(Job(row.id, host, row.url, row.attempts + 1, event, secret, livemode))
        return jobs

    async def mark(self, batch: Sequence[Mark]) -> list[bool]:
        """Store attempts and decisions in one transaction; for each, whether we held the lease."""
        rows = [_stored(m) for m in batch]
        if self._pg is not None:
            owned = await outbox_pg.mark(self._pg, self.worker_id, rows)
        else:
            owned = await self._mark_sqlite(rows)
        return [m.job.id in owned for m in batch]

    async def _mark_sqlite(self, rows: list[dict[str, Any]]) -> set[int]:
        ids = [r["id"] for r in rows]
        async with transaction(self._sessions) as session:
            conn = await session.connection()
            mine = select(col(Callback.id)).where(
                col(Callback.id).in_(ids), col(Callback.locked_by) == self.worker_id
            )
            owned = {int(i) for i in (await conn.execute(mine)).scalars() if i is not None}
            attempts = [{**_attempt(r), "worker": self.worker_id} for r in rows]
            await conn.execute(insert(CallbackAttempt), attempts)
            # A row whose lease passed to another worker is theirs to mark, unless we delivered:
            # delivered is a fact, recorded regardless (their mark then finds it delivered).
            updates = [
                {f"b_{key}": r[key] for key in _MARK_ROW_KEYS}
                for r in rows
                if r["id"] in owned or r["status"] == retry.DELIVERED
            ]
            if updates:
                await conn.execute(_MARK_ROW, updates)
        return owned


_MARK_ROW_KEYS = ("id", "status", "next_ms", "status_code", "error", "delivered_ms")


def _stored(m: Mark) -> dict[str, Any]:
    """What a mark stores for one attempt (outbox_pg.MARK_COLUMNS)."""
    delivered = m.decision.status == retry.DELIVERED
    return {
        "id": m.job.id,
        "attempt": m.job.attempt,
        "started_ms": m.started_ms,
        "duration_ms": m.duration_ms,
        "status_code": m.status_code,
        "error": m.error,
        "status": m.decision.status,
        "next_ms": m.decision.next_attempt_ms,
        "delivered_ms": m.started_ms + m.duration_ms if delivered else None,
    }


def _attempt(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "callback_id": row["id"],
        "attempt": row["attempt"],
        "started_ms": row["started_ms"],
        "duration_ms": row["duration_ms"],
        "status_code": row["status_code"],
        "error": row["error"],
    }


def _due(now: int) -> list[ColumnElement[bool]]:
    return [
        col(Callback.status) == retry.PENDING,
        col(Callback.next_attempt_ms) <= now,
        col(Callback.locked_until_ms) <= now,
    ]
