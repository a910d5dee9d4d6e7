"""The states of a recorded USDT transfer, and the reads of transfers a payment's JSON needs.

`seen`: in a block walked at the head side, not final yet; `final`: its block is final (only
final transfers complete a payment); `dropped`: its block was forked out (it may be credited
again if it reappears in another block).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.models import Transfer

SEEN: Final = "seen"
FINAL: Final = "final"
DROPPED: Final = "dropped"


async def txids_of(session: AsyncSession, payment_ids: Collection[str]) -> dict[str, list[str]]:
    """Each payment's transaction ids in chain order, without the dropped ones (one query)."""
    found: dict[str, list[str]] = {pid: [] for pid in payment_ids}
    if not found:
        return found
    rows = await session.execute(
        select(col(Transfer.payment_id), col(Transfer.txid))
        .where(col(Transfer.payment_id).in_(list(found)), col(Transfer.state) != DROPPED)
        .order_by(col(Transfer.block_number), col(Transfer.log_index))
    )
    for payment_id, txid in rows:
        txids = found.setdefault(payment_id or "", [])
        if txid not in txids:
            txids.append(txid)
    return found
