"""Every state change appends an event and, in the same transaction, its outbox row.

The event keeps a snapshot of the payment as it was, so every callback attempt and
GET /api/events show the same facts, whatever happens to the payment later.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher import jsonio
from watcher.clock import iso
from watcher.db.models import Callback, Payment, PaymentEvent, Transfer
from watcher.money import from_kurus, from_micro, json_number
from watcher.payments.states import EVENT_TYPES
from watcher.secrets import new_id


async def payment_txids(session: AsyncSession, payment_id: str) -> list[str]:
    rows = await session.execute(
        select(col(Transfer.txid))
        .where(col(Transfer.payment_id) == payment_id, col(Transfer.state) != "dropped")
        .order_by(col(Transfer.block_number), col(Transfer.log_index))
    )
    return list(dict.fromkeys(r[0] for r in rows))


def snapshot(payment: Payment, txids: list[str]) -> dict[str, Any]:
    """The payment as merchants see it (status API, callbacks, events). Amounts are Decimal."""
    data: dict[str, Any] = {
        "transactionId": payment.id,
        "externalRef": payment.external_ref,
        "status": payment.status,
        "amount": json_number(from_kurus(payment.amount_kurus)),
        "currency": payment.currency,
        "provider": payment.provider,
        "fullName": payment.full_name,
        "late": payment.late,
        "createdAt": iso(payment.created_ms),
        "expiresAt": iso(payment.expires_ms),
        "metadata": jsonio.loads(payment.metadata_json or "{}"),
    }
    if payment.provider == "crypto":
        data["crypto"] = {
            "network": "TRC20",
            "address": payment.address,
            "amountUsdt": json_number(from_micro(payment.amount_micro or 0)),
            "receivedUsdt": json_number(from_micro(payment.received_micro)),
            "rate": json_number(_dec(payment.rate)),
            "txids": txids,
        }
        if payment.late_micro:
            data["crypto"]["lateUsdt"] = json_number(from_micro(payment.late_micro))
    return data


def _dec(text: str | None) -> Decimal:
    return Decimal(text or "0")


async def record_event(
    session: AsyncSession,
    payment: Payment,
    event_type: str,
    now: int,
    extra: dict[str, Any] | None = None,
) -> PaymentEvent:
    """Append `event_type` for `payment` (already updated) and enqueue its callback."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    sequence = payment.next_sequence
    payment.next_sequence = sequence + 1
    payment.updated_ms = now
    data = snapshot(payment, await payment_txids(session, payment.id))
    if extra:
        data["details"] = extra
    event = PaymentEvent(
        event_id=new_id("evt_"),
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        type=event_type,
        sequence=sequence,
        status=payment.status,
        created_ms=now,
        data_json=jsonio.dumps(data),  # exact: Decimals as JSON numbers
    )
    session.add(event)
    # The callback row references the event (FK) and the unit of work does not order inserts
    # of tables without a relationship(): write the event first.
    await session.flush()
    if payment.callback_url:
        session.add(
            Callback(
                event_id=event.event_id,
                payment_id=payment.id,
                merchant_id=payment.merchant_id,
                url=payment.callback_url,
                next_attempt_ms=now,
                created_ms=now,
            )
        )
    session.add(payment)
    await session.flush()
    return event
