"""The follower's two persisted cursors and the blocks walked but not yet final
(docs/architecture.md#chain-following).

`seen`: the last block walked at the head side; transfers in it show as "confirming".
`final`: the last block known final (solidified, or head - N); only final blocks complete a
payment. final <= seen always. Blocks in (final, seen] have a `chain_block` row holding the
id they had when walked, compared again when they become final to catch forks.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.models import ChainBlock, ChainCursor

SEEN = "seen"
FINAL = "final"
# Not a cursor of ours: the node's head as the follower last polled it, kept beside the
# cursors so that any process's /healthz can tell when the node is behind what was walked.
NODE = "node"


@dataclass(frozen=True, slots=True)
class Position:
    number: int
    block_id: str
    block_ms: int


@dataclass(frozen=True, slots=True)
class Cursors:
    seen: Position
    final: Position


async def read(session: AsyncSession) -> Cursors | None:
    """Both cursors, or None before the first start (see follower.ensure_start_cursor)."""
    rows = (await session.execute(select(ChainCursor))).scalars().all()
    by_name = {r.name: Position(r.block_number, r.block_id, r.block_ms) for r in rows}
    if SEEN not in by_name or FINAL not in by_name:
        return None
    return Cursors(seen=by_name[SEEN], final=by_name[FINAL])


async def node_head(session: AsyncSession) -> Position | None:
    row = await session.get(ChainCursor, NODE)
    return None if row is None else Position(row.block_number, row.block_id, row.block_ms)


def waiting_reason(node: int, seen: int) -> str:
    """Why the follower does nothing while the node's head is below the `seen` block."""
    return (
        f"the TRON node's head {node} is below the seen block {seen}: waiting for the node to "
        "catch up (restarted from an older state, or a lagging node behind a load balancer)"
    )


async def seen_for_share(session: AsyncSession) -> Position | None:
    """The `seen` cursor, share-locked until the transaction ends (PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serializes writers): the follower cannot move it meanwhile,
    so a decision taken on "the chain is read up to here" stays true until it commits."""
    row = (
        await session.execute(
            select(ChainCursor).where(col(ChainCursor.name) == SEEN).with_for_update(read=True)
        )
    ).scalar_one_or_none()
    return None if row is None else Position(row.block_number, row.block_id, row.block_ms)


async def write(session: AsyncSession, name: str, pos: Position, now: int) -> None:
    """Create or move a cursor (first start, `chain verify` has no need to)."""
    row = await session.get(ChainCursor, name)
    if row is None:
        row = ChainCursor(name=name, block_number=pos.number, updated_ms=now)
    row.block_number = pos.number
    row.block_id = pos.block_id
    row.block_ms = pos.block_ms
    row.updated_ms = now
    session.add(row)


_MOVE = (
    update(ChainCursor)
    .where(
        col(ChainCursor.name) == bindparam("c_name"),
        col(ChainCursor.block_number) == bindparam("c_was"),
    )
    .values(
        block_number=bindparam("c_number"),
        block_id=bindparam("c_id"),
        block_ms=bindparam("c_ms"),
        updated_ms=bindparam("c_now"),
    )
)


class CursorMoved(Exception):
    """The cursor is not where this writer last saw it: another follower is running."""


async def move(session: AsyncSession, name: str, was: int, pos: Position, now: int) -> None:
    """Move a cursor from block `was` to `pos`; raise CursorMoved if it was elsewhere.

    One UPDATE, no read: the follower keeps its cursors in memory between steps and this
    check keeps that honest.
    """
    result = await session.execute(
        _MOVE,
        {
            "c_name": name,
            "c_was": was,
            "c_number": pos.number,
            "c_id": pos.block_id,
            "c_ms": pos.block_ms,
            "c_now": now,
        },
    )
    if getattr(result, "rowcount", 1) != 1:
        raise CursorMoved(f"the {name} cursor is no longer at block {was}")


async def walked(session: AsyncSession, number: int) -> Position | None:
    """The block as it was when walked, if it is not final yet."""
    row = await session.get(ChainBlock, number)
    if row is None:
        return None
    return Position(row.number, row.block_id, row.timestamp_ms)


async def remember(session: AsyncSession, pos: Position, parent_hash: str) -> None:
    session.add(
        ChainBlock(
            number=pos.number,
            block_id=pos.block_id,
            parent_hash=parent_hash,
            timestamp_ms=pos.block_ms,
        )
    )


async def forget_from(session: AsyncSession, number: int) -> None:
    """Drop the walked-block rows at and above `number`."""
    await session.execute(delete(ChainBlock).where(ChainBlock.number >= number))  # type: ignore[arg-type]


async def forget_upto(session: AsyncSession, number: int) -> None:
    await session.execute(delete(ChainBlock).where(ChainBlock.number <= number))  # type: ignore[arg-type]
