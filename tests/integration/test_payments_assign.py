"""`watcher payments assign TRANSFER PAYMENT`: an operator credits an unmatched transfer.

Pool mode keeps anything but the exact amount unmatched; the operator who has found out whose
it is credits it by hand, once, with the events any credit causes. Run as the operator runs
it: the real command line, printing JSON, against a database the follower filled.
"""

from __future__ import annotations

import random

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.chainkit import LAG, USDT_10, address, cli, rig
from watcher import jsonio
from watcher.devchain.server import DevChainServer

pytestmark = pytest.mark.asyncio


async def test_an_unmatched_transfer_is_credited_once_with_the_usual_events(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    shared = address(random.Random(21))
    pool = {"mode": "pool", "addresses": [shared]}
    async with rig(db_url, sessions, server=devchain, wallet=pool) as r:
        await r.start()
        p = await r.pay(USDT_10 + 1, to=shared, callback_url="https://shop.example/hook")
        first = r.chain.transfer(shared, 6_000_000)  # the payer split the payment in two
        second = r.chain.transfer(shared, 4_000_001)
        r.chain.mine(LAG + 1)
        await r.catch_up()
        assert {t.txid: t.payment_id for t in await r.transfers()} == {first: None, second: None}

        done = await cli(r, "payments", "assign", first, p.id, "--json")
        assert done.exit_code == 0, done.output
        shown = jsonio.loads(done.stdout)
        assert (shown["payment"]["status"], shown["payment"]["receivedUsdt"]) == (
            "pending",
            jsonio.loads("6"),
        )
        assert shown["events"] == []  # a partial payment moves no state

        again = await cli(r, "payments", "assign", first, p.id)
        assert again.exit_code == 1 and "already credited to " + p.id in again.stderr

        done = await cli(r, "payments", "assign", f"{second}:0", p.id, "--json")
        assert done.exit_code == 0, done.output
        shown = jsonio.loads(done.stdout)
        assert shown["payment"]["status"] == "completed"
        assert shown["events"] == ["payment.completed"]
        assert "transfer.assigned" in done.stderr  # the operator's action is logged

        assert await r.events(p.id) == ["payment.completed"]
        paid = await r.payment(p.id)
        assert (paid.status, paid.received_micro) == ("completed", USDT_10 + 1)
        listed = await cli(r, "payments", "unmatched", "--json")
        assert jsonio.loads(listed.stdout) == []


async def test_assign_refuses_what_cannot_be_that_payments(
    db_url: str, sessions: async_sessionmaker[AsyncSession], devchain: DevChainServer
) -> None:
    rng = random.Random(22)
    shared, other = address(rng), address(rng)
    pool = {"mode": "pool", "addresses": [shared, other]}
    async with rig(db_url, sessions, server=devchain, wallet=pool) as r:
        await r.start()
        p = await r.pay(USDT_10, to=shared)
        elsewhere = r.chain.transfer(other, 3_000_000)
        unfinished = r.chain.transfer(shared, 2_000_000)
        r.chain.mine(1)
        await r.catch_up()  # seen, not final yet
        cases = [
            (unfinished, p.id, "not final"),
            (elsewhere, p.id, "was sent to " + other),
            ("ab" * 32, p.id, "no transfer"),
            (unfinished, "txn_nope", "no payment"),
            ("not-a-txid", p.id, "TXID"),
        ]
        for transfer, payment, why in cases:
            result = await cli(r, "payments", "assign", transfer, payment)
            assert result.exit_code == 1 and why in result.stderr, (transfer, result.output)
        assert (await r.payment(p.id)).received_micro == 0
