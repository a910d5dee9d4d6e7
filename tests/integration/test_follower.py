"""The follower against the devchain over real HTTP, on SQLite and PostgreSQL.

Each test makes the chain do one thing a payer (or a scammer, or a fork) does, runs the
follower to the head, and checks what a merchant would see: the payment's status, sums,
events, and the transfers recorded.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.chainkit import LAG, USDT_10, Rig, address, rig
from watcher.api.health import check_health
from watcher.config import LogSettings
from watcher.devchain.server import DevChainServer
from watcher.logs import configure_logging
from watcher.tron.follower import NODE_BEHIND_GRACE_S

pytestmark = pytest.mark.asyncio


FAKE_USDT = "TXLAQ63Xg1NAzckPwKHvzw7CSEmLMEqcdj"  # any other contract: same symbol, not USDT


async def test_usdt_transfer_confirms_then_completes_when_final(r: Rig) -> None:
    p = await r.pay(USDT_10)
    txid = r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(1)
    await r.catch_up()
    seen = await r.payment(p.id)
    assert (seen.status, seen.confirming_micro, seen.received_micro) == ("confirming", USDT_10, 0)
    r.chain.mine(LAG)
    await r.catch_up()
    done = await r.payment(p.id)
    assert (done.status, done.received_micro, done.confirming_micro) == ("completed", USDT_10, 0)
    assert await r.events(p.id) == ["payment.confirming", "payment.completed"]
    (t,) = await r.transfers()
    assert (t.txid, t.state, t.payment_id, t.to_address) == (txid, "final", p.id, p.address)
    assert await r.cursor("seen") == r.chain.head_number
    assert await r.cursor("final") == r.chain.solid_number


async def test_fake_token_failed_and_zero_transfers_never_count(r: Rig) -> None:
    p = await r.pay(USDT_10)
    to = p.address or ""
    r.chain.transfer(to, USDT_10, token=FAKE_USDT)
    r.chain.transfer(to, USDT_10, result="REVERT")
    r.chain.transfer(to, USDT_10, result="OUT_OF_ENERGY")
    r.chain.transfer(to, 0)
    r.chain.batch_transfer([(to, 0)])
    r.chain.mine(LAG + 1)
    await r.catch_up()
    assert (await r.payment(p.id)).status == "pending"
    assert await r.transfers() == []
    assert await r.events(p.id) == []


async def test_several_transfers_in_one_transaction_each_count_once(r: Rig) -> None:
    a, b = await r.pay(USDT_10), await r.pay(2 * USDT_10)
    stranger = r.address()
    txid = r.chain.batch_transfer(
        [
            (a.address or "", 4_000_000),
            (stranger, 1),
            (b.address or "", 2 * USDT_10),
            (a.address or "", 6_000_000),
        ]
    )
    r.chain.mine(LAG + 1)
    await r.catch_up()
    rows = await r.transfers()
    assert [(t.txid, t.log_index, t.amount_micro) for t in rows] == [
        (txid, 0, 4_000_000),
        (txid, 2, 2 * USDT_10),
        (txid, 3, 6_000_000),
    ]
    assert (await r.payment(a.id)).status == "completed"
    assert (await r.payment(b.id)).status == "completed"
    assert await r.events(a.id) == ["payment.completed"]  # final at first sight: no confirming


async def test_transfer_made_by_a_batch_sender_contract_counts(r: Rig) -> None:
    p = await r.pay(USDT_10)
    router = r.address()
    r.chain.transfer(p.address or "", USDT_10, via_contract=router)
    r.chain.batch_transfer([(p.address or "", 1)], via_contract=router)
    r.chain.mine(LAG + 1)
    await r.catch_up()
    done = await r.payment(p.id)
    assert (done.status, done.received_micro) == ("completed", USDT_10 + 1)


async def test_partial_payments_accumulate_and_overpayment_records_the_excess(r: Rig) -> None:
    under, over = await r.pay(USDT_10), await r.pay(USDT_10)
    r.chain.transfer(under.address or "", 3_000_000)
    r.chain.transfer(over.address or "", 15_000_000)
    r.chain.mine(LAG + 1)
    await r.catch_up()
    partial = await r.payment(under.id)
    assert (partial.status, partial.received_micro) == ("pending", 3_000_000)
    r.chain.transfer(under.address or "", 7_000_000)
    r.chain.mine(LAG + 1)
    await r.catch_up()
    assert (await r.payment(under.id)).status == "completed"
    paid = await r.payment(over.id)
    assert (paid.status, paid.received_micro) == ("completed", 15_000_000)


async def test_transfer_at_or_before_the_payments_creation_block_is_kept_unmatched(r: Rig) -> None:
    to = r.address()
    r.chain.transfer(to, USDT_10)
    (early,) = r.chain.mine(1)
    p = await r.pay(USDT_10, to=to, created_block=early)
    await r.catch_up()
    assert (await r.payment(p.id)).status == "pending"
    (t,) = await r.transfers()
    assert (t.payment_id, t.block_number, t.to_address) == (None, early, to)


async def test_unrelated_addresses_are_not_recorded(r: Rig) -> None:
    r.chain.make_mainnet_like(3, txs=40, usdt_transfers=15)
    r.chain.mine(LAG)
    await r.catch_up()
    assert await r.transfers() == []
    assert await r.cursor("final") == r.chain.solid_number


async def test_visible_true_answers_are_read_the_same(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    """java-tron with visible=true prints base58 everywhere, log addresses included."""
    async with rig(db_url, sessions, server=devchain, visible=True) as r:
        await r.start()
        a, b = await r.pay(USDT_10), await r.pay(USDT_10)
        r.chain.transfer(a.address or "", USDT_10)
        r.chain.transfer(b.address or "", USDT_10, token=FAKE_USDT)
        r.chain.transfer(b.address or "", USDT_10, result="REVERT")
        r.chain.batch_transfer([(b.address or "", 4_000_000), (b.address or "", 0)])
        r.chain.mine(1)
        await r.catch_up()
        assert (await r.payment(a.id)).status == "confirming"
        r.chain.mine(LAG)
        await r.catch_up()
        assert (await r.payment(a.id)).status == "completed"
        partial = await r.payment(b.id)
        assert (partial.status, partial.received_micro) == ("pending", 4_000_000)
        assert len(await r.transfers()) == 2


async def test_latest_start_block_is_resolved_once_and_kept(r: Rig) -> None:
    first = await r.cursor("seen")
    assert first == r.chain.solid_number  # final, so no fork can replace it
    r.chain.mine(3)
    assert await r.start() == first  # a restart does not jump to the new head
    assert await r.cursor("final") == first


async def test_numbered_start_block_walks_from_that_block(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    chain = devchain.chain
    to = address(random.Random(9))
    before = chain.transfer(to, USDT_10)
    (skipped,) = chain.mine(1)
    counted = chain.transfer(to, USDT_10)
    (start,) = chain.mine(1)
    chain.mine(LAG)
    async with rig(db_url, sessions, server=devchain, start_block=start) as r:
        assert await r.start() == start - 1
        assert await r.cursor("final") == start - 1
        p = await r.pay(USDT_10, to=to, created_block=skipped - 1)
        await r.catch_up()
        (t,) = await r.transfers()
        assert (t.txid, t.block_number) == (counted, start)
        assert before != counted and (await r.payment(p.id)).status == "completed"


async def test_amount_too_large_for_the_columns_does_not_stop_the_follower(r: Rig) -> None:
    """A uint256 beyond BIGINT (no USDT transfer can be that large: it exceeds the supply)
    used to crash every attempt at its block, so no later payment was ever credited."""
    p = await r.pay(USDT_10)
    r.chain.transfer(p.address or "", 2**64)
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(LAG + 1)
    await r.catch_up()
    done = await r.payment(p.id)
    assert (done.status, done.received_micro) == ("completed", USDT_10)
    assert [t.amount_micro for t in await r.transfers()] == [USDT_10]
    assert await r.cursor("final") == r.chain.solid_number


async def test_a_node_back_with_a_lower_head_is_waited_for_and_said_so(r: Rig) -> None:
    """A node restarted from an older snapshot (or a lagging one behind a load balancer)
    answers a head below what was already walked: the follower waits, and says why in its
    log and in /healthz, then carries on once the node is past it again."""
    r.chain.mine(3)
    await r.catch_up()
    seen = await r.cursor("seen")
    buf = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_logs=True), stream=buf)
    try:
        r.chain.inject_fault("stale_head", 1000, behind=5)
        for _ in range(3):  # it lasts past the grace given to load-balancer skew
            assert await r.follower.step() is False
            r.clock.now += int(NODE_BEHIND_GRACE_S * 1000)
        waiting = [e for e in _events(buf) if e["event"] == "follower.node_behind"]
        assert len(waiting) == 1, _events(buf)
        assert (waiting[0]["node_head"], waiting[0]["seen"]) == (seen - 5, seen)
        health = await check_health(r.sessions, r.settings, r.clock())
        follower = health.checks["follower"]
        assert follower["nodeHead"] == seen - 5
        assert (
            f"the TRON node's head {seen - 5} is below the seen block {seen}"
            in (follower["waiting"])
        )

        r.chain.clear_faults()
        r.chain.mine(1)
        await r.catch_up()
        assert await r.cursor("seen") == seen + 1
        assert "follower.node_caught_up" in [e["event"] for e in _events(buf)]
        health = await check_health(r.sessions, r.settings, r.clock())
        assert "waiting" not in health.checks["follower"]
        assert health.checks["follower"]["nodeHead"] == seen + 1
    finally:
        configure_logging(LogSettings(level="WARNING", json_logs=False))


async def test_a_node_a_block_behind_now_and_then_is_not_reported(r: Rig) -> None:
    """Behind a load balancer (TronGrid) a head poll often reaches a node one block behind
    the one that served the last block: that skew is routine, not a node to warn about.
    Warned only once the node has stayed behind for a while."""
    r.chain.mine(3)
    await r.catch_up()
    buf = io.StringIO()
    configure_logging(LogSettings(level="INFO", json_logs=True), stream=buf)
    try:
        for _ in range(5):
            r.chain.inject_fault("stale_head", 1, behind=1)
            assert await r.follower.step() is False
            r.clock.now += 1_000
            assert await r.follower.step() is False
            r.clock.now += 1_000
        assert [e for e in _events(buf) if e["event"].startswith("follower.node")] == []
    finally:
        configure_logging(LogSettings(level="WARNING", json_logs=False))


def _events(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]
