"""Every state change appends an event and, in the same transaction, its outbox row.

The event keeps the payment's JSON as it was (watcher.payments.view), so every callback
attempt and GET /api/events show the same facts, whatever happens to the payment later.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from watcher import jsonio
from watcher.callbacks.doorbell import mark_queued
from watcher.db.models import Callback, Payment, PaymentEvent
from watcher.payments.methods import Block
from watcher.payments.states import EVENT_TYPES
from watcher.payments.view import payment_json
from watcher.secrets import new_id


async def record_event(
    session: AsyncSession,
    payment: Payment,
    event_type: str,
    now: int,
    extra: dict[str, Any] | None = None,
    *,
    block: Block | None = None,
) -> PaymentEvent:
    """Append `event_type` for `payment` (already updated) and enqueue its callback.

    `extra`: the event's `details`; `block`: the payment method's part of the payment's JSON
    as of now (watcher.payments.methods; the method's own code passes it).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type}")
    sequence = payment.next_sequence
    payment.next_sequence = sequence + 1
    payment.updated_ms = now
    data = payment_json(payment, block)
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
        mark_queued(session)
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
