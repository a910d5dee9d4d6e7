"""Node faults (TRON.md): every one is retried, no block is skipped, nothing is read as data.

A watched transfer sits in every block of the range, so a skipped block or an error body
taken for "no transfers" would leave a payment unpaid.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.chainkit import LAG, USDT_10, Rig, rig
from watcher.devchain.faults import FaultKind
from watcher.devchain.server import DevChainServer

pytestmark = pytest.mark.asyncio


BLOCKS = 3
API_KEY = "k-3f1c9a"


@pytest.fixture
def db_kind() -> str:
    """Node faults touch no storage path the other tests do not: SQLite is enough here."""
    return "sqlite"


async def _transfer_in_every_block(r: Rig) -> list[str]:
    ids = []
    for _ in range(BLOCKS):
        p = await r.pay(USDT_10)
        r.chain.transfer(p.address or "", USDT_10)
        r.chain.add_filler(4)
        r.chain.mine(1)
        ids.append(p.id)
    r.chain.mine(LAG)
    return ids


async def _all_paid_once(r: Rig, ids: list[str]) -> None:
    for pid in ids:
        p = await r.payment(pid)
        assert (p.status, p.received_micro) == ("completed", USDT_10)
    rows = await r.transfers()
    assert len(rows) == BLOCKS and len({t.block_number for t in rows}) == BLOCKS
    assert await r.cursor("final") == r.chain.solid_number


@pytest.mark.parametrize("kind", [k.value for k in FaultKind])
async def test_node_fault_is_retried_and_no_block_is_skipped(
    kind: str, db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    async with rig(db_url, sessions, server=devchain, request_timeout_s=0.3) as r:
        await r.start()
        await r.catch_up()  # up to the head: the faults below meet the blocks with transfers
        r.server.hang_s = 1.0  # a `timeout` fault holds the request longer than we wait
        r.server.slow_s = 0.05  # a `slow` answer still comes within the timeout
        ids = await _transfer_in_every_block(r)
        # A fault on the infos and one on the headers (lagging_infos only ever hits the
        # infos), plus a run on whatever comes next.
        r.chain.inject_fault(kind, 1, path="/wallet/gettransactioninfobyblocknum")
        if kind != FaultKind.LAGGING_INFOS:
            r.chain.inject_fault(kind, 1, path="/wallet/getblock")
        r.chain.inject_fault(kind, 2)
        errors = await r.catch_up()
        await _all_paid_once(r, ids)
        assert r.chain.faults_queued == 0
        if kind in (FaultKind.SLOW, FaultKind.STALE_HEAD):
            assert errors >= 0  # a late or stale answer is not an error in itself
        else:
            assert errors > 0 or any(e.errors for e in r.client.endpoints)


@pytest.mark.parametrize("fetch_ahead", [1, 8])
async def test_lagging_infos_are_retried_never_taken_as_no_transfers(
    fetch_ahead: int,
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    devchain: DevChainServer,
) -> None:
    async with rig(db_url, sessions, server=devchain, fetch_ahead=fetch_ahead) as r:
        await r.start()
        await r.catch_up()
        ids = await _transfer_in_every_block(r)
        r.chain.inject_fault("lagging_infos", 2 * BLOCKS)
        errors = await r.catch_up()
        # One block at a time, each block with a transfer meets the lagging answers; fetched
        # ahead, they fall on whichever blocks are asked for first (empty ones pass).
        assert errors >= (BLOCKS if fetch_ahead == 1 else 1)
        assert r.chain.faults_queued == 0
        await _all_paid_once(r, ids)


async def test_fails_over_to_the_next_endpoint_and_sends_the_api_key(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    dead = "http://127.0.0.1:9"  # nothing listens there: connection refused
    async with rig(db_url, sessions, extra_endpoints=(dead,), api_key=API_KEY) as r:
        await r.start()
        ids = await _transfer_in_every_block(r)
        assert await r.catch_up() == 0  # the second endpoint answers every time
        await _all_paid_once(r, ids)
        down, up = r.client.endpoints
        assert (down.url, down.healthy, up.healthy) == (dead, False, True)
        assert down.errors >= 1 and up.errors == 0
        assert r.server.requests
        assert all(h.get("tron-pro-api-key") == API_KEY for _, h in r.server.requests)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "57P01", "08006"])
async def test_transient_database_errors_are_retried(sqlstate: str, r: Rig) -> None:
    """asyncpg's deadlock, serialization failure, admin shutdown and lost connection come
    as a plain DBAPIError (not OperationalError): they used to end the follower's task, and
    with it the scanner."""
    p = await r.pay(USDT_10)
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(LAG + 1)
    follower = r.follower
    real, failures = follower.step, [DBAPIError("UPDATE chain_cursor", {}, _PgError(sqlstate))]

    async def step() -> bool:
        if failures:
            raise failures.pop()
        moved = await real()
        if not moved:
            stop.set()
        return moved

    stop = asyncio.Event()
    follower.step = step  # type: ignore[method-assign]
    await asyncio.wait_for(follower.run(stop), timeout=10)
    assert (await r.payment(p.id)).status == "completed"
