"""Outbox rows made the way the daemon makes them: a payment, its state change, record_event."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher import jsonio
from watcher.config import Settings
from watcher.db.models import Callback, CallbackAttempt, Payment, PaymentEvent
from watcher.merchants import Credentials, create_merchant
from watcher.money import to_kurus, to_micro, usdt_for_try
from watcher.payments.events import record_event
from watcher.payments.states import EVENT_FOR_STATE
from watcher.payments.view import payment_json
from watcher.secrets import SecretBox, new_id
from watcher.tron.view import crypto_block

RATE = Decimal("35.50")
ADDRESS = "TXj9Qm1kGkq3a7bVx5v8d3X1nQ2sS5tWcK"


def callback_settings(db_url: str, **callbacks: Any) -> Settings:
    values: dict[str, Any] = {"allow_private_urls": True, "timeout_s": 5, "backoff_s": [60]}
    values.update(callbacks)
    return Settings.model_validate({"database": {"url": db_url}, "callbacks": values})


async def new_merchant(
    sessions: async_sessionmaker[AsyncSession], box: SecretBox, name: str = "Kasa Dükkân"
) -> Credentials:
    async with sessions() as s, s.begin():
        return await create_merchant(s, box, name)


async def add_event(
    session: AsyncSession,
    merchant_id: int,
    url: str | None,
    now: int,
    *,
    ref: str,
    amount: Decimal = Decimal("1000.00"),
    full_name: str = "Ahmet Yılmaz",
    status: str = "completed",
    provider: str = "crypto",
    metadata: dict[str, Any] | None = None,
) -> PaymentEvent:
    """A payment that has just reached `status`, with its event and (if `url`) its callback."""
    payment = _payment(merchant_id, url, now, ref, amount, full_name, status, provider, metadata)
    session.add(payment)
    await session.flush()
    block = crypto_block(payment, []) if provider == "crypto" else None
    return await record_event(session, payment, EVENT_FOR_STATE[status], now, block=block)


def _payment(
    merchant_id: int,
    url: str | None,
    now: int,
    ref: str,
    amount: Decimal,
    full_name: str = "Ahmet Yılmaz",
    status: str = "completed",
    provider: str = "crypto",
    metadata: dict[str, Any] | None = None,
) -> Payment:
    usdt = usdt_for_try(amount, RATE)
    return Payment(
        id=new_id("txn_"),
        merchant_id=merchant_id,
        external_ref=ref,
        provider=provider,
        amount_kurus=to_kurus(amount),
        full_name=full_name,
        callback_url=url,
        metadata_json=json.dumps(metadata or {"userId": "11420076"}, ensure_ascii=False),
        status=status,
        created_ms=now,
        updated_ms=now,
        expires_ms=now + 30 * 60_000,
        address=ADDRESS if provider == "crypto" else None,
        amount_micro=to_micro(usdt) if provider == "crypto" else None,
        received_micro=to_micro(usdt) if status == "completed" else 0,
        rate=str(RATE) if provider == "crypto" else None,
    )


async def add_events(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: int,
    url: str,
    now: int,
    count: int,
    prefix: str = "ORD",
) -> list[PaymentEvent]:
    async with sessions() as s, s.begin():
        return [
            await add_event(s, merchant_id, url, now, ref=f"{prefix}-{i}") for i in range(count)
        ]


async def bulk_events(
    sessions: async_sessionmaker[AsyncSession],
    merchant_id: int,
    url: str,
    now: int,
    count: int,
    prefix: str = "BULK",
) -> list[str]:
    """`count` completed payments with their events and callbacks, inserted in bulk.

    The same rows record_event writes (the payment's JSON, stored the way it stores it), without a
    flush per payment: for tests and benches that need thousands. Returns the eventIds.
    """
    payments, events, callbacks = [], [], []
    for i in range(count):
        payment = _payment(merchant_id, url, now, f"{prefix}-{i}", Decimal("1000.00"))
        payment.next_sequence = 2
        event_id = new_id("evt_")
        data = jsonio.dumps(payment_json(payment, crypto_block(payment, [])))
        payments.append(payment.model_dump())
        events.append(
            {
                "event_id": event_id,
                "payment_id": payment.id,
                "merchant_id": merchant_id,
                "type": "payment.completed",
                "sequence": 1,
                "status": payment.status,
                "created_ms": now,
                "data_json": data,
            }
        )
        callbacks.append(
            {
                "event_id": event_id,
                "payment_id": payment.id,
                "merchant_id": merchant_id,
                "url": url,
                "next_attempt_ms": now,
                "created_ms": now,
            }
        )
    async with sessions() as s, s.begin():
        conn = await s.connection()
        for table, rows in ((Payment, payments), (PaymentEvent, events), (Callback, callbacks)):
            for start in range(0, len(rows), 1000):
                await conn.execute(insert(table), rows[start : start + 1000])
    return [str(e["event_id"]) for e in events]


async def callback_rows(sessions: async_sessionmaker[AsyncSession]) -> list[Callback]:
    async with sessions() as s:
        return list((await s.execute(select(Callback).order_by(Callback.id))).scalars())  # type: ignore[arg-type]


async def attempt_rows(sessions: async_sessionmaker[AsyncSession]) -> list[CallbackAttempt]:
    async with sessions() as s:
        query = select(CallbackAttempt).order_by(CallbackAttempt.id)  # type: ignore[arg-type]
        return list((await s.execute(query)).scalars())
