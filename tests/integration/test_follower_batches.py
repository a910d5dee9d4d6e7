"""Catching up: blocks fetched ahead and final blocks stored in batches, with the guarantees of
one block per transaction kept — the same states and events, no block skipped, each
(txid, log index) once, and a SIGKILL at any moment loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from tests.integration.chainkit import DAY_MS, FOLLOWER_PROCESS, LAG, T0, USDT_10, Rig, rig
from watcher.db.models import ChainBlock, PaymentEvent
from watcher.devchain.faults import FaultKind
from watcher.devchain.server import DevChainServer
from watcher.tron.follower import Follower

pytestmark = pytest.mark.asyncio

USDT = 1_000_000


@pytest.fixture
async def r0(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> AsyncIterator[Rig]:
    """A rig with no late window: a closed payment's address stops taking funds at once."""
    async with rig(db_url, sessions, server=devchain, late_window_h=0) as made:
        await made.start()
        yield made


async def _fetched_ahead(r: Rig, follower: Follower, first: int) -> None:
    """Walk up to `first` and let every block after it be fetched before the next step."""
    while await r.cursor("seen") < first:
        await follower.step()
    for _ in range(500):
        if not follower.ahead_in_flight:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("blocks are still being fetched")


async def _events(r: Rig, payment_id: str) -> list[tuple[int, str, str]]:
    async with r.sessions() as s:
        rows = await s.execute(
            select(col(PaymentEvent.sequence), col(PaymentEvent.type), col(PaymentEvent.data_json))
            .where(col(PaymentEvent.payment_id) == payment_id)
            .order_by(col(PaymentEvent.id))
        )
        return [(seq, kind, json.loads(data)["status"]) for seq, kind, data in rows]


@pytest.mark.parametrize("batch", [1, 50])
async def test_a_run_of_final_blocks_in_one_transaction_settles_as_block_by_block(
    batch: int, r0: Rig
) -> None:
    """Each block is settled with its own time and the statuses the blocks before it left:
    a payment completed early in the run takes no funds after its deadline later in it."""
    r = r0
    await r.catch_up()
    first = r.chain.head_number + 1
    block_ms = T0 + (first - r.chain.first_number) * 3000  # the devchain's 3 s slots
    r.clock.now = T0 + 2 * DAY_MS  # every deadline below has passed on the wall clock
    split = await r.pay(10 * USDT)
    late = await r.pay(10 * USDT, expires_ms=block_ms + 2 * 3000 - 1)  # before the 4th block
    over = await r.pay(10 * USDT)
    cancelled = await r.pay(10 * USDT, status="cancelled")
    early = await r.pay(10 * USDT, expires_ms=block_ms + 3000)  # the 2nd block's time
    plan = [
        [(early, 10), (split, 4)],
        [(over, 10)],
        [(split, 6)],
        [(late, 10)],
        [(over, 3), (cancelled, 5)],
        [(early, 2)],  # completed, its deadline passed, no late window: not its funds
    ]
    for transfers in plan:
        for p, usdt in transfers:
            r.chain.transfer(p.address or "", usdt * USDT)
        r.chain.add_filler(3)
        r.chain.mine(1)
    r.chain.mine(LAG)
    follower = r.new_follower(batch_blocks=batch)
    await _fetched_ahead(r, follower, first)
    await r.catch_up(follower)

    assert (follower.walk_commits < follower.walked_blocks) == (batch > 1)
    states = {p.id: await r.payment(p.id) for p in (split, late, over, cancelled, early)}
    assert [
        (states[p.id].status, states[p.id].received_micro, states[p.id].late_micro)
        for p in (split, late, over, cancelled, early)
    ] == [
        ("completed", 10 * USDT, 0),
        ("expired", 0, 10 * USDT),
        ("completed", 13 * USDT, 0),
        ("cancelled", 0, 5 * USDT),
        ("completed", 10 * USDT, 0),
    ]
    assert await _events(r, split.id) == [(1, "payment.completed", "completed")]
    assert await _events(r, late.id) == [
        (1, "payment.expired", "expired"),
        (2, "payment.late", "expired"),
    ]
    assert await _events(r, over.id) == [
        (1, "payment.completed", "completed"),
        (2, "payment.overpaid", "completed"),
    ]
    assert await _events(r, cancelled.id) == [(1, "payment.late", "cancelled")]
    assert await _events(r, early.id) == [(1, "payment.completed", "completed")]
    rows = await r.transfers()
    assert len(rows) == 8 and all(t.state == "final" for t in rows)
    (stray,) = [t for t in rows if t.payment_id is None]
    assert (stray.to_address, stray.amount_micro) == (early.address, 2 * USDT)


async def test_faults_while_fetching_ahead_skip_no_block(r: Rig) -> None:
    """Errors, throttling, timeouts and lagging infos hit requests for blocks fetched ahead
    at random: every block is still walked once, in order, every transfer credited once."""
    rng = random.Random(5)
    await r.catch_up()
    r.server.hang_s, r.server.slow_s = 0.4, 0.05
    payments = [await r.pay(USDT_10) for _ in range(40)]
    for p in payments:
        r.chain.transfer(p.address or "", USDT_10)
        r.chain.add_filler(rng.randint(0, 6))
        r.chain.mine(1)
    r.chain.mine(LAG)
    kinds = [k for k in FaultKind if k is not FaultKind.STALE_HEAD]
    for _ in range(25):
        r.chain.inject_fault(rng.choice(kinds), rng.randint(1, 2))
    follower = r.new_follower(r.new_client())
    errors = await r.catch_up(follower)
    assert errors > 0 and r.chain.faults_queued == 0
    assert await r.cursor("final") == r.chain.solid_number
    rows = await r.transfers()
    assert sorted(t.payment_id or "" for t in rows) == sorted(p.id for p in payments)
    for p in payments:
        done = await r.payment(p.id)
        assert (done.status, done.received_micro) == ("completed", USDT_10)
    final = await r.cursor("final")
    async with r.sessions() as s:  # walked-block rows are kept only above the final height
        walked = [b.number for b in (await s.execute(select(ChainBlock))).scalars()]
    assert sorted(walked) == list(range(final + 1, await r.cursor("seen") + 1))


async def test_sigkill_at_random_moments_of_a_catch_up_loses_nothing(r: Rig) -> None:
    """A follower process catching up (batches of final blocks in flight) is killed with
    SIGKILL at random moments and started again; in the end every transfer is credited
    exactly once and every payment completed once.

    Each kill comes a random moment after the process has committed something, not after a
    fixed time: on a fast machine the whole catch-up fits in the time a fixed sleep allows,
    and the kills then cut nothing."""
    rng = random.Random(11)
    await r.catch_up()
    payments = [await r.pay(USDT_10) for _ in range(12)]
    expected = []
    for i in range(300):
        p = payments[i % len(payments)]
        expected.append(r.chain.transfer(p.address or "", USDT_10 // 25 + 1))
        r.chain.add_filler(rng.randint(0, 30))
        r.chain.mine(1)
    r.chain.mine(LAG)
    args = json.dumps({"settings": r.settings.model_dump(mode="json"), "now": r.clock()})
    kills = cuts = 0
    while (start := await r.cursor("final")) < r.chain.solid_number and kills < 12:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            FOLLOWER_PROCESS,
            args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(3000):  # until its first commit (imports take a while under load)
            if await r.cursor("final") > start or proc.returncode is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(rng.uniform(0, 0.08))  # somewhere in the next batch
        proc.kill()
        await proc.wait()
        kills += 1
        cuts += await r.cursor("final") < r.chain.solid_number
    assert cuts >= 2, f"the catch-up should have been cut at least twice ({kills} kills)"
    await r.catch_up(r.new_follower(r.new_client()))
    rows = await r.transfers()
    assert sorted(t.txid for t in rows) == sorted(expected)
    assert all(t.state == "final" for t in rows)
    for p in payments:
        done = await r.payment(p.id)
        assert done.status == "completed"
        assert done.received_micro == sum(t.amount_micro for t in rows if t.payment_id == p.id)
        assert (await r.events(p.id)).count("payment.completed") == 1
