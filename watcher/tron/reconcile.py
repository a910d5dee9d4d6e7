"""Apply `settle` to stored payments: the one place chain facts become payment state.

Called inside the transaction that changed the facts (the follower's blocks, the expirer's
sweep, `watcher chain verify`), so the new state, its events and their outbox rows commit
together with the transfers and cursor moves that caused them. `resettle` reads the stored
transfers; the follower instead holds a `Ledger` over a run of blocks and adds each block's
transfers to it before settling that block.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

import msgspec
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.lists import one_of
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
from watcher.tron.transfers import DROPPED
from watcher.tron.view import crypto_block

log = structlog.get_logger("watcher.tron.reconcile")

_TRANSFER = Transfer.metadata.tables["transfer"]


def due_of(payment: Payment) -> Due:
    return Due(
        status=payment.status,
        amount_micro=payment.amount_micro or 0,
        expires_ms=payment.expires_ms,
        created_block=-1 if payment.created_block is None else payment.created_block,
        late_micro=payment.late_micro,
        received_micro=payment.received_micro,
    )


class Held(msgspec.Struct, frozen=True, gc=False):
    """A transfer credited to a payment, with its once-only key, as a Ledger holds it (a
    Struct, as Credit is: one per stored transfer of each payment held)."""

    credit: Credit
    txid: str
    log_index: int


class Ledger:
    """Payments and their transfers (dropped ones aside: they never count), locked and held
    for one transaction.

    Facts are added block after block and each block is settled in memory with that block's
    time, so a run of blocks stored in one transaction gives exactly the states and events
    one transaction per block would have given, without reading the payments back each time.
    Payment rows are locked as they are taken in (FOR UPDATE on PostgreSQL; SQLite's BEGIN
    IMMEDIATE already serializes writers), in id order within each call.
    """

    def __init__(self) -> None:
        self.payments: dict[str, Payment] = {}
        self._held: dict[str, list[Held]] = defaultdict(list)

    @classmethod
    async def of_payments(cls, session: AsyncSession, ids: Collection[str]) -> Ledger:
        ledger = cls()
        await ledger.hold(session, ids)
        return ledger

    async def hold(self, session: AsyncSession, ids: Collection[str]) -> None:
        """Lock and read the payments among `ids` not held yet, with their transfers."""
        wanted = sorted(set(ids) - self.payments.keys())
        if not wanted:
            return
        query = (
            select(Payment)
            .where(one_of(session, col(Payment.id), wanted))
            .order_by(col(Payment.id))
            .with_for_update()
        )
        payments = (await session.execute(query)).scalars().all()
        if not payments:
            return
        # A Core select of the table's columns: its rows come back as they are, without the
        # ORM's row processing (a payment can have many transfers, all read here).
        rows = await session.execute(
            select(
                _TRANSFER.c.payment_id,
                _TRANSFER.c.block_number,
                _TRANSFER.c.block_ms,
                _TRANSFER.c.amount_micro,
                _TRANSFER.c.state,
                _TRANSFER.c.txid,
                _TRANSFER.c.log_index,
            ).where(
                one_of(session, _TRANSFER.c.payment_id, [p.id for p in payments]),
                _TRANSFER.c.state != DROPPED,
            )
        )
        for pid, number, block_ms, amount, state, txid, index in rows:
            held = Held(Credit(number, block_ms, amount, state), txid, index)
            self._held[pid or ""].append(held)
        self.payments.update((p.id, p) for p in payments)

    def add(self, payment_id: str, held: Held) -> None:
        self._held[payment_id].append(held)

    def txids(self, payment_id: str) -> list[str]:
        """The payment's transactions in chain order, as its JSON lists them."""
        ordered = sorted(
            self._held.get(payment_id, ()), key=lambda h: (h.credit.block_number, h.log_index)
        )
        return list(dict.fromkeys(h.txid for h in ordered))

    async def settle(
        self,
        session: AsyncSession,
        ids: Collection[str],
        *,
        now_ms: int,
        chain_ms: int,
        tolerance_micro: int,
    ) -> int:
        """Re-derive these payments' states from what the ledger holds; the number of events."""
        events = 0
        for payment_id in sorted(set(ids)):
            payment = self.payments[payment_id]  # KeyError: not held (`hold` it first)
            s = settle(
                due_of(payment),
                [h.credit for h in self._held.get(payment_id, ())],
                now_ms=now_ms,
                chain_ms=chain_ms,
                tolerance_micro=tolerance_micro,
            )
            # The payment's txids go into its events' JSON: sorted only when there is one.
            txids = self.txids(payment_id) if s.announcements else []
            events += await apply(session, payment, s, now_ms, txids)
        return events


async def resettle(
    session: AsyncSession,
    payment_ids: Collection[str],
    *,
    now_ms: int,
    chain_ms: int,
    tolerance_micro: int,
) -> int:
    """Re-derive the state of these payments from their stored transfers; the number of events."""
    if not payment_ids:
        return 0
    ledger = await Ledger.of_payments(session, payment_ids)
    return await ledger.settle(
        session,
        ledger.payments.keys(),
        now_ms=now_ms,
        chain_ms=chain_ms,
        tolerance_micro=tolerance_micro,
    )


async def apply(
    session: AsyncSession, payment: Payment, s: Settlement, now_ms: int, txids: list[str]
) -> int:
    """Store the settlement on the payment (one the session holds) and record its events, in
    order (`txids`: the payment's transactions in chain order, for its JSON)."""
    late_before, received_before = payment.late_micro, payment.received_micro
    _set(payment, received_micro=s.received_micro, confirming_micro=s.confirming_micro)
    for a in s.announcements:
        payment.status = a.status
        if a.event == LATE_EVENT:
            payment.late_micro, payment.late = s.late_micro, s.late
        if a.status in FINAL_STATES and payment.final_ms is None:
            payment.final_ms = now_ms
        details = _details(a.event, s, late_before, received_before)
        block = crypto_block(payment, txids)
        await record_event(session, payment, a.event, now_ms, details, block=block)
        log.info(
            "payment." + a.event.removeprefix("payment."),
            payment_id=payment.id,
            status=payment.status,
            received_micro=s.received_micro,
            late_micro=s.late_micro,
        )
    _set(payment, status=s.status, late_micro=s.late_micro, late=s.late, updated_ms=now_ms)
    return len(s.announcements)


def _set(payment: Payment, **values: Any) -> None:
    """Assign the values that differ: each assignment to a model costs validation and change
    tracking, and a settlement mostly confirms what is stored."""
    for name, value in values.items():
        if getattr(payment, name) != value:
            setattr(payment, name, value)


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
