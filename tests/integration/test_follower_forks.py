"""Forks before solidification, and restarts in the middle of a range."""

from __future__ import annotations

import asyncio
import json
import random
import sys

import pytest
from sqlalchemy import update
from sqlmodel import col

from tests.integration.chainkit import FOLLOWER_PROCESS, LAG, USDT_10, Rig
from watcher.db.models import ChainBlock

pytestmark = pytest.mark.asyncio


async def test_fork_that_drops_the_transfer_reverts_the_payment(r: Rig) -> None:
    p = await r.pay(USDT_10)
    txid = r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(1)
    await r.catch_up()
    assert (await r.payment(p.id)).status == "confirming"
    r.chain.fork(1, drop={txid})
    r.chain.mine(LAG + 1)
    await r.catch_up()
    back = await r.payment(p.id)
    assert (back.status, back.received_micro, back.confirming_micro) == ("pending", 0, 0)
    assert await r.events(p.id) == ["payment.confirming", "payment.reverted"]
    (t,) = await r.transfers()
    assert (t.txid, t.state) == (txid, "dropped")


async def test_transfer_moved_by_a_fork_is_credited_in_its_new_block_once(r: Rig) -> None:
    p = await r.pay(USDT_10)
    txid = r.chain.transfer(p.address or "", USDT_10)
    (first,) = r.chain.mine(1)
    r.chain.mine(1)
    await r.catch_up()
    r.chain.fork(2)  # the transfer moves from `first` to the block after it
    r.chain.mine(1)  # the new branch is longer: seen at the head side, not final yet
    await r.catch_up()
    (t,) = await r.transfers()
    assert (t.state, t.block_number) == ("seen", first + 1)
    assert (await r.payment(p.id)).status == "confirming"
    r.chain.mine(LAG)
    await r.catch_up()
    (t,) = await r.transfers()
    assert (t.txid, t.state, t.block_number) == (txid, "final", first + 1)
    moved_to = r.chain.block(first + 1)
    assert moved_to is not None and t.block_id == moved_to.block_id
    done = await r.payment(p.id)
    assert (done.status, done.received_micro) == ("completed", USDT_10)
    assert await r.events(p.id) == [
        "payment.confirming",
        "payment.reverted",
        "payment.confirming",
        "payment.completed",
    ]


async def test_fork_found_at_solidification_credits_the_moved_transfer_as_final(r: Rig) -> None:
    p = await r.pay(USDT_10)
    txid = r.chain.transfer(p.address or "", USDT_10)
    (first,) = r.chain.mine(2)[:1]
    await r.catch_up()
    r.chain.fork(2)
    r.chain.mine(LAG + 1)  # by the next look, the replaced blocks are already final
    await r.catch_up()
    (t,) = await r.transfers()
    assert (t.txid, t.state, t.block_number) == (txid, "final", first + 1)
    assert await r.events(p.id) == ["payment.confirming", "payment.reverted", "payment.completed"]


async def test_block_replaced_before_it_became_final_is_read_again(r: Rig) -> None:
    """The walked id of a block differs from the final one (answers from a node on the losing
    branch): at solidification what was seen in it is dropped and the block walked again."""
    p = await r.pay(USDT_10)
    r.chain.transfer(p.address or "", USDT_10)
    (h,) = r.chain.mine(1)
    await r.catch_up()
    async with r.sessions() as s, s.begin():
        await s.execute(
            update(ChainBlock).where(col(ChainBlock.number) == h).values(block_id="ab" * 32)
        )
    r.chain.mine(LAG)
    await r.catch_up()
    (t,) = await r.transfers()
    assert (t.state, t.block_number) == ("final", h)
    assert (await r.payment(p.id)).status == "completed"
    assert await r.events(p.id) == ["payment.confirming", "payment.reverted", "payment.completed"]


async def _killed_follower(r: Rig, kill_after_blocks: int) -> int:
    """Run a follower in its own process and SIGKILL it once `seen` moved that far."""
    args = {"settings": r.settings.model_dump(mode="json"), "now": r.clock()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FOLLOWER_PROCESS,
        json.dumps(args),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    start = await r.cursor("seen")
    target = min(start + kill_after_blocks, r.chain.head_number)
    try:
        for _ in range(5000):
            if await r.cursor("seen") >= target:
                break
            await asyncio.sleep(0.002)
    finally:
        proc.kill()
        await proc.wait()
    return await r.cursor("seen")


async def test_restarts_at_any_moment_credit_each_transfer_exactly_once(r: Rig) -> None:
    rng = random.Random(3)
    payments = [await r.pay(USDT_10) for _ in range(6)]
    expected = set()
    for i in range(48):
        p = payments[i % 6]
        expected.add(r.chain.transfer(p.address or "", USDT_10 // 8))
        r.chain.add_filler(20)
        r.chain.mine(1)
    r.chain.mine(LAG)
    # Killed (SIGKILL, mid-step: its transaction never commits) and restarted…
    for _ in range(2):
        await _killed_follower(r, rng.randint(2, 12))
    # …and stopped politely (finishes the step in flight) and restarted.
    for _ in range(3):
        stop = asyncio.Event()
        task = asyncio.create_task(r.new_follower(r.new_client()).run(stop))
        await asyncio.sleep(rng.uniform(0, 0.02))
        stop.set()
        await task
    await r.catch_up(r.new_follower(r.new_client()))
    rows = await r.transfers()
    assert sorted(t.txid for t in rows) == sorted(expected)
    assert all(t.state == "final" for t in rows)
    for p in payments:
        done = await r.payment(p.id)
        assert (done.status, done.received_micro) == ("completed", USDT_10)
        events = await r.events(p.id)
        assert events.count("payment.completed") == 1
        assert "payment.reverted" not in events


@pytest.mark.parametrize("depth", [1, LAG])
async def test_fork_that_replaces_the_start_block_is_recovered_from(depth: int, r: Rig) -> None:
    """At the first start the follower is placed at the solidified head, never above it: a
    fork of any block not yet solidified then (the head included) is walked like any other."""
    p = await r.pay(USDT_10)
    r.chain.fork(depth)  # the head at first start, or everything above the solidified head
    txid = r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(LAG + 1)
    await r.catch_up(limit=200)
    assert await r.cursor("final") == r.chain.solid_number
    (t,) = await r.transfers()
    assert (t.txid, t.state) == (txid, "final")
    assert (await r.payment(p.id)).status == "completed"


async def test_block_fetched_ahead_before_a_fork_is_never_taken_as_final(r: Rig) -> None:
    """Blocks above the solidified head are fetched ahead, then a fork replaces them and they
    become final on the new branch: what was fetched before the fork is stale, so it is
    never stored as final (its transfer is on no chain any more)."""
    p = await r.pay(USDT_10)
    await r.catch_up()
    (h,) = r.chain.mine(1)
    txid = r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(3)  # h+1 holds the transfer; h..h+3 are not final
    follower = r.new_follower()
    while await r.cursor("seen") < h:
        await follower.step()  # walks up to h, fetches h+1.. ahead
    while follower.ahead_in_flight:
        await asyncio.sleep(0.01)
    assert await r.cursor("seen") == h
    r.chain.fork(3, drop={txid})
    r.chain.mine(LAG + 1)  # the new h+1..h+3 are final by the next look…
    await asyncio.sleep(0.05)  # …which comes at once (the poll interval has passed)
    await r.catch_up(follower)
    assert await r.transfers() == []
    back = await r.payment(p.id)
    assert (back.status, back.received_micro) == ("pending", 0)
    assert await r.events(p.id) == []
    assert await r.cursor("final") == r.chain.solid_number
