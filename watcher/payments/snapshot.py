"""What a create transaction reads before it writes, in one statement: the operator switch,
the chain head and whether the merchant already has a payment with this externalRef.

One round trip instead of three; all three are read in the transaction that inserts, so the
switch and the head are those of the moment the payment is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.models import ChainCursor, Payment, Setting
from watcher.merchants import AuthedKey
from watcher.payments.switch import KEY as SWITCH
from watcher.tron.cursors import SEEN


@dataclass(frozen=True, slots=True)
class Snapshot:
    disabled: bool  # `watcher system disable`: no new payments
    head: int | None  # the follower's `seen` cursor; None before its first start
    existing_id: str | None  # the merchant's payment with this externalRef (same mode)


async def read(session: AsyncSession, key: AuthedKey, external_ref: str) -> Snapshot:
    switch = select(col(Setting.value)).where(col(Setting.key) == SWITCH)
    head = select(col(ChainCursor.block_number)).where(col(ChainCursor.name) == SEEN)
    existing = select(col(Payment.id)).where(
        col(Payment.merchant_id) == key.merchant_id,
        col(Payment.sandbox) == key.sandbox,
        col(Payment.external_ref) == external_ref,
    )
    row = (
        await session.execute(
            select(switch.scalar_subquery(), head.scalar_subquery(), existing.scalar_subquery())
        )
    ).one()
    return Snapshot(disabled=row[0] == "1", head=row[1], existing_id=row[2])
