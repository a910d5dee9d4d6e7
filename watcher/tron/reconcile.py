"""Apply `settle` to stored payments: the one place chain facts become payment state.

Called inside the transaction that changed the facts (the follower's block, the expirer's
sweep, `watcher chain verify`), so the new state, its events and their outbox rows commit
together with the transfers and cursor moves that caused them. Payment rows are locked
(FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers), in id order
so two writers never wait on each other in a cycle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.models import Payment, Transfer
from watcher.money import from_micro, json_number
from watcher.payments.events import record_event
from watcher.payments.states import (
    COMPLETED,
    FINAL_STATES,
    LATE_EVENT,
    OVERPAID_EVENT,
    REVERTED_EVENT,
)
from watcher.tron.settle import Credit, Due, Settlement, settle
from watcher.tron.view import crypto_blocks

log = structlog.get_logger("watcher.tron.reconcile")


def due_of(payment: Payment) -> Due:
    return Due(
        status=payment.status,
        amount_micro=payment.amount_micro or 0,
        expires_ms=payment.expires_ms,
        created_block=-1 if payment.created_block is None else payment.created_block,
        late_micro=payment.late_micro,
        received_micro=payment.received_micro,
    )


async def resettle(
    session: AsyncSession,
    payment_ids: Collection[str],
    *,
    now_ms: int,
    chain_ms: int,
    tolerance_micro: int,
) -> int:
    """Re-derive the state of these payments from their transfers; the number of events."""
    if not payment_ids:
        return 0
    ids = sorted(set(payment_ids))
    payments = (
        (
            await session.execute(
                select(Payment)
                .where(col(Payment.id).in_(ids))
                .order_by(Payment.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    rows = await session.execute(
        select(
            col(Transfer.payment_id),
            col(Transfer.block_number),
            col(Transfer.block_ms),
            col(Transfer.amount_micro),
            col(Transfer.state),
        ).where(col(Transfer.payment_id).in_(ids))
    )
    by_payment: dict[str, list[Credit]] = defaultdict(list)
    for pid, number, block_ms, amount, state in rows:
        by_payment[pid or ""].append(Credit(number, block_ms, amount, state))
    events = 0
    for p in payments:
        s = settle(
            due_of(p),
            by_payment[p.id],
            now_ms=now_ms,
            chain_ms=chain_ms,
            tolerance_micro=tolerance_micro,
        )
        events += await apply(session, p, s, now_ms)
    return events


async def apply(session: AsyncSession, payment: Payment, s: Settlement, now_ms: int) -> int:
    """Store the settlement on the payment and record its events, in order."""
    late_before, received_before = payment.late_micro, payment.received_micro
    payment.received_micro = s.received_micro
    payment.confirming_micro = s.confirming_micro
    for a in s.announcements:
        payment.status = a.status
        if a.event == LATE_EVENT:
            payment.late_micro, payment.late = s.late_micro, s.late
        if a.status in FINAL_STATES and payment.final_ms is None:
            payment.final_ms = now_ms
        [block] = (await crypto_blocks(session, [payment])).values()
        details = _details(a.event, s, late_before, received_before)
        await record_event(session, payment, a.event, now_ms, details, block=block)
        log.info(
            "payment." + a.event.removeprefix("payment."),
            payment_id=payment.id,
            status=payment.status,
            received_micro=s.received_micro,
            late_micro=s.late_micro,
        )
    payment.status, payment.late_micro, payment.late = s.status, s.late_micro, s.late
    payment.updated_ms = now_ms
    session.add(payment)
    return len(s.announcements)


def _details(
    event: str, s: Settlement, late_before: int, received_before: int
) -> dict[str, Any] | None:
    if event == OVERPAID_EVENT:
        return {
            "overpaidUsdt": json_number(from_micro(s.received_micro - received_before)),
            "excessUsdt": json_number(from_micro(s.excess_micro)),
        }
    if event == LATE_EVENT:
        return {
            "lateUsdt": json_number(from_micro(s.late_micro - late_before)),
            "lateTotalUsdt": json_number(from_micro(s.late_micro)),
        }
    if event == "payment." + COMPLETED and s.excess_micro:
        return {"excessUsdt": json_number(from_micro(s.excess_micro))}
    if event == REVERTED_EVENT:
        return {"reason": "the transfer that made the payment confirming left the chain"}
    return None
