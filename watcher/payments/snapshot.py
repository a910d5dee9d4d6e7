"""What a create transaction reads before it writes, in one statement: the operator switch,
the chain head and whether the merchant already has a payment with this externalRef.

One round trip instead of three; all three are read in the transaction that inserts, so the
switch and the head are those of the moment the payment is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select
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


_SNAPSHOT = select(
    select(col(Setting.value)).where(col(Setting.key) == SWITCH).scalar_subquery(),
    select(col(ChainCursor.block_number)).where(col(ChainCursor.name) == SEEN).scalar_subquery(),
    select(col(Payment.id))
    .where(
        col(Payment.merchant_id) == bindparam("merchant_id"),
        col(Payment.sandbox) == bindparam("sandbox"),
        col(Payment.external_ref) == bindparam("ref"),
    )
    .scalar_subquery(),
)


async def read(session: AsyncSession, key: AuthedKey, external_ref: str) -> Snapshot:
    # Built once, run on the session's connection (no ORM machinery: nothing is loaded).
    conn = await session.connection()
    params = {"merchant_id": key.merchant_id, "sandbox": key.sandbox, "ref": external_ref}
    disabled, head, existing_id = (await conn.execute(_SNAPSHOT, params)).one()
    return Snapshot(disabled=disabled == "1", head=head, existing_id=existing_id)
