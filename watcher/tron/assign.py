"""Crediting an unmatched transfer to a payment by hand (`watcher payments assign`).

Pool mode keeps every transfer that is not a payment's exact amount as unmatched (a partial
payment, a payer who sent two halves, a stray transfer); an operator who has found out whose
it is credits it here. The transfer then counts exactly as if the follower had matched it:
the payment is settled again in the same transaction and the usual events (and callbacks)
follow. Each transfer is credited once: one already credited, automatically or by hand, is
refused, also when two operators race (the update only takes a transfer with no payment).

Refused too: a transfer not final yet (a fork could still take it away, and a transfer that
reappears after a fork is matched afresh), one sent to another address than the payment's,
and one in a block at or below the payment's creation block (it cannot be for that payment).

Locks in the follower's order (transfer rows, the `seen` cursor, then the payment), so an
assignment and a block being walked never wait on each other in a cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.db.engine import transaction
from watcher.db.models import Payment, PaymentEvent, Transfer
from watcher.payments.states import CLOSED_WITHOUT_FUNDS
from watcher.tron import cursors
from watcher.tron.reconcile import resettle
from watcher.tron.transfers import FINAL

log = structlog.get_logger("watcher.tron.assign")

_REF = re.compile(r"(?P<txid>[0-9a-fA-F]{64})(?::(?P<index>[0-9]{1,6}))?")


class AssignError(Exception):
    """The transfer cannot be credited to that payment; the message says why."""


@dataclass(frozen=True)
class Assigned:
    transfer: Transfer
    payment: Payment
    events: list[str]  # the event types the credit caused, in order


def parse_ref(text: str) -> tuple[str, int | None]:
    """`TXID` or `TXID:LOG_INDEX` (as `watcher payments unmatched` lists them)."""
    found = _REF.fullmatch(text.strip())
    if found is None:
        raise AssignError(f"{text!r} is not a transfer: give TXID or TXID:LOG_INDEX")
    index = found["index"]
    return found["txid"].lower(), None if index is None else int(index)


async def assign(
    sessions: async_sessionmaker[AsyncSession],
    ref: str,
    payment_id: str,
    *,
    now_ms: int,
    tolerance_micro: int,
) -> Assigned:
    """Credit the transfer `ref` to `payment_id`; AssignError when it may not be."""
    txid, index = parse_ref(ref)
    async with transaction(sessions) as s:
        transfer = await _transfer(s, txid, index)
        payment = await s.get(Payment, payment_id)
        _check(transfer, payment, payment_id)
        assert payment is not None
        credited = await s.execute(
            update(Transfer)
            .where(col(Transfer.id) == transfer.id, col(Transfer.payment_id).is_(None))
            .values(payment_id=payment.id, late=_late(transfer, payment))
        )
        if credited.rowcount != 1:  # type: ignore[attr-defined]
            raise AssignError(f"transfer {ref} was credited to a payment meanwhile")
        seen = await cursors.seen_for_share(s)
        chain_ms = seen.block_ms if seen is not None else transfer.block_ms
        locked = await s.get(Payment, payment.id, with_for_update=True, populate_existing=True)
        before = locked.next_sequence if locked is not None else payment.next_sequence
        await resettle(
            s, [payment.id], now_ms=now_ms, chain_ms=chain_ms, tolerance_micro=tolerance_micro
        )
        events = await _events_since(s, payment.id, before)
        await s.refresh(transfer)
        await s.refresh(payment)
    log.warning(
        "transfer.assigned",
        txid=transfer.txid,
        log_index=transfer.log_index,
        payment_id=payment.id,
        amount_micro=transfer.amount_micro,
        status=payment.status,
        events=events,
    )
    return Assigned(transfer, payment, events)


async def _transfer(s: AsyncSession, txid: str, index: int | None) -> Transfer:
    query = select(Transfer).where(col(Transfer.txid) == txid)
    if index is not None:
        query = query.where(col(Transfer.log_index) == index)
    rows = list((await s.execute(query.with_for_update())).scalars())
    shown = txid if index is None else f"{txid}:{index}"
    if not rows:
        raise AssignError(f"no transfer {shown} is recorded (see `watcher payments unmatched`)")
    if len(rows) > 1:
        indexes = ", ".join(str(t.log_index) for t in rows)
        raise AssignError(f"{txid} holds several transfers (logs {indexes}): give TXID:LOG_INDEX")
    return rows[0]


def _check(transfer: Transfer, payment: Payment | None, payment_id: str) -> None:
    ref = f"{transfer.txid}:{transfer.log_index}"
    if transfer.payment_id is not None:
        raise AssignError(f"transfer {ref} is already credited to {transfer.payment_id}")
    if payment is None or payment.address is None:
        raise AssignError(f"no payment {payment_id!r} paid on chain")
    if transfer.to_address != payment.address:
        raise AssignError(
            f"transfer {ref} was sent to {transfer.to_address}, payment {payment.id} asks "
            f"for funds at {payment.address}"
        )
    if payment.created_block is not None and transfer.block_number <= payment.created_block:
        raise AssignError(
            f"transfer {ref} (block {transfer.block_number}) is older than payment "
            f"{payment.id} (created at block {payment.created_block})"
        )
    if transfer.state != FINAL:
        raise AssignError(
            f"transfer {ref} is {transfer.state}, not final: assign it once its block is final"
        )


def _late(transfer: Transfer, payment: Payment) -> bool:
    return payment.status in CLOSED_WITHOUT_FUNDS or transfer.block_ms > payment.expires_ms


async def _events_since(s: AsyncSession, payment_id: str, sequence: int) -> list[str]:
    rows = await s.execute(
        select(col(PaymentEvent.type))
        .where(col(PaymentEvent.payment_id) == payment_id, col(PaymentEvent.sequence) >= sequence)
        .order_by(col(PaymentEvent.sequence))
    )
    return [t for (t,) in rows]
