"""The states of a recorded USDT transfer, and the reads of transfers a payment's JSON needs.

`seen`: in a block walked at the head side, not final yet; `final`: its block is final (only
final transfers complete a payment); `dropped`: its block was forked out (it may be credited
again if it reappears in another block).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.models import Transfer

SEEN: Final = "seen"
FINAL: Final = "final"
DROPPED: Final = "dropped"


# Built once, run on the session's connection: a Core statement skips the ORM's execution
# machinery, a good part of a status request's CPU time.
_TXIDS = (
    select(col(Transfer.payment_id), col(Transfer.txid))
    .where(
        col(Transfer.payment_id).in_(bindparam("b_ids", expanding=True)),
        col(Transfer.state) != DROPPED,
    )
    .order_by(col(Transfer.block_number), col(Transfer.log_index))
)


async def txids_of(session: AsyncSession, payment_ids: Collection[str]) -> dict[str, list[str]]:
    """Each payment's transaction ids in chain order, without the dropped ones (one query,
    on the session's connection: transfers added to the session but not flushed are not
    seen)."""
    found: dict[str, list[str]] = {pid: [] for pid in payment_ids}
    if not found:
        return found
    conn = await session.connection()
    rows = await conn.execute(_TXIDS, {"b_ids": list(found)})
    for payment_id, txid in rows:
        txids = found.setdefault(payment_id or "", [])
        if txid not in txids:
            txids.append(txid)
    return found
