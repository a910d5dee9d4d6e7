"""Which payment a transfer belongs to (docs/architecture.md#deposit-addresses): pool addresses,
exact amounts, unmatched."""

from __future__ import annotations

import random

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.chainkit import DAY_MS, LAG, T0, USDT_10, address, rig
from watcher.devchain.server import DevChainServer

pytestmark = pytest.mark.asyncio


async def test_pool_address_pays_the_payment_with_the_exact_amount_else_unmatched(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    rng = random.Random(5)
    shared, idle = address(rng), address(rng)
    pool = {"mode": "pool", "addresses": [shared, idle]}
    async with rig(db_url, sessions, server=devchain, wallet=pool) as r:
        await r.start()
        one = await r.pay(USDT_10 + 1, to=shared)
        two = await r.pay(USDT_10 + 2, to=shared)
        r.chain.transfer(shared, USDT_10 + 2)
        r.chain.transfer(shared, USDT_10 + 1)
        r.chain.transfer(shared, 5_000_000)  # matches neither: kept for ops
        r.chain.transfer(idle, 7_000_000)  # a pool address nobody is paying right now
        r.chain.mine(LAG + 1)
        await r.catch_up()
        assert (await r.payment(one.id)).received_micro == USDT_10 + 1
        assert (await r.payment(two.id)).received_micro == USDT_10 + 2
        assert (await r.payment(one.id)).status == (await r.payment(two.id)).status == "completed"
        by_amount = {t.amount_micro: t for t in await r.transfers()}
        assert by_amount[USDT_10 + 1].payment_id == one.id
        assert by_amount[USDT_10 + 2].payment_id == two.id
        assert by_amount[5_000_000].payment_id is None
        assert (by_amount[7_000_000].payment_id, by_amount[7_000_000].to_address) == (None, idle)


async def test_address_of_a_payment_past_its_late_window_keeps_funds_as_unmatched(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    async with rig(db_url, sessions, server=devchain) as r:
        await r.start()
        old = await r.pay(USDT_10, expires_ms=T0 - 2 * DAY_MS, status="expired")
        r.chain.transfer(old.address or "", USDT_10)
        r.chain.mine(LAG + 1)
        await r.catch_up()
        (t,) = await r.transfers()
        assert (t.payment_id, t.to_address, t.state) == (None, old.address, "final")
        p = await r.payment(old.id)
        assert (p.status, p.late, p.received_micro, p.late_micro) == ("expired", False, 0, 0)


async def test_pool_mode_credits_only_the_exact_amount_even_to_a_lone_payment(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    # A pool address is reused over time: a stray or very late transfer to it used to pay
    # whichever single payment held the address then, whatever its amount.
    rng = random.Random(9)
    shared = address(rng)
    pool = {"mode": "pool", "addresses": [shared]}
    async with rig(db_url, sessions, server=devchain, wallet=pool, tolerance_micro=50) as r:
        await r.start()
        lone = await r.pay(USDT_10 + 3, to=shared)
        r.chain.transfer(shared, 4_000_000)  # someone else's stray funds
        r.chain.transfer(shared, USDT_10 + 3 + 51)  # just outside the tolerance
        r.chain.mine(LAG + 1)
        await r.catch_up()
        p = await r.payment(lone.id)
        assert (p.status, p.received_micro, p.confirming_micro) == ("pending", 0, 0)
        assert {t.amount_micro: t.payment_id for t in await r.transfers()} == {
            4_000_000: None,
            USDT_10 + 3 + 51: None,
        }
        r.chain.transfer(shared, USDT_10 + 3 - 50)  # within the tolerance: this one pays
        r.chain.mine(LAG + 1)
        await r.catch_up()
        p = await r.payment(lone.id)
        assert (p.status, p.received_micro) == ("completed", USDT_10 + 3 - 50)


async def test_hd_mode_still_credits_any_amount_to_the_address_owner(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    async with rig(db_url, sessions, server=devchain) as r:
        await r.start()
        p = await r.pay(USDT_10)
        r.chain.transfer(p.address or "", 4_000_000)
        r.chain.mine(LAG + 1)
        await r.catch_up()
        assert (await r.payment(p.id)).received_micro == 4_000_000
