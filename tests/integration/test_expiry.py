"""Expiry and late funds (docs/architecture.md#settlement): deadlines judged by block time,
partial sums kept, funds after the deadline recorded and flagged `late` with their own event."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from tests.integration.chainkit import LAG, USDT_10, Rig, cli
from watcher import jsonio
from watcher.db.models import Callback, PaymentEvent
from watcher.tron.expiry import Expirer

pytestmark = pytest.mark.asyncio


def deadline_after(r: Rig, blocks: int) -> int:
    """A deadline between block head+blocks and the one after it."""
    return r.block_ms(r.chain.head_number + blocks) + 1000


async def test_overdue_payment_expires_keeping_its_partial_sum(r: Rig) -> None:
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 2), callback_url="https://shop.test/cb")
    r.chain.transfer(p.address or "", 3_000_000)
    r.chain.mine(LAG + 4)
    await r.catch_up()
    r.clock.now = p.expires_ms + 1
    assert await r.expirer().step() is False  # one small batch, all done
    expired = await r.payment(p.id)
    assert (expired.status, expired.received_micro, expired.late) == ("expired", 3_000_000, False)
    assert expired.final_ms == r.clock.now
    assert await r.events(p.id) == ["payment.expired"]
    async with r.sessions() as s:
        outbox = (await s.execute(select(Callback).where(col(Callback.payment_id) == p.id))).all()
    assert len(outbox) == 1  # the event's callback is queued with it


async def test_no_expiry_until_the_chain_is_read_past_the_deadline(r: Rig) -> None:
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 2))
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(1)  # on time, but the follower has not read it yet
    r.chain.mine(LAG + 3)
    r.clock.now = p.expires_ms + 60_000  # the wall clock is past the deadline
    await r.expirer().step()
    assert (await r.payment(p.id)).status == "pending"
    await r.catch_up()
    await r.expirer().step()
    paid = await r.payment(p.id)
    assert (paid.status, paid.late) == ("completed", False)
    assert await r.events(p.id) == ["payment.completed"]


async def test_on_time_transfer_awaiting_finality_holds_expiry(r: Rig) -> None:
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 1))
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(3)  # the transfer's block is on time; the chain moves past the deadline
    await r.catch_up()
    r.clock.now = p.expires_ms + 1
    await r.expirer().step()
    assert (await r.payment(p.id)).status == "confirming"
    r.chain.mine(LAG)
    await r.catch_up()
    await r.expirer().step()
    assert (await r.payment(p.id)).status == "completed"
    assert await r.events(p.id) == ["payment.confirming", "payment.completed"]


async def test_late_funds_are_recorded_and_flag_the_payment_late(r: Rig) -> None:
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 1))
    r.chain.mine(3)
    await r.catch_up()
    r.clock.now = p.expires_ms + 1
    await r.expirer().step()
    assert (await r.payment(p.id)).status == "expired"
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(1)
    await r.catch_up()
    seen = await r.payment(p.id)
    assert (seen.status, seen.late, seen.confirming_micro) == ("expired", False, USDT_10)
    r.chain.mine(LAG)
    await r.catch_up()
    late = await r.payment(p.id)
    assert (late.status, late.late, late.late_micro, late.received_micro) == (
        "expired",
        True,
        USDT_10,
        0,
    )
    assert await r.events(p.id) == ["payment.expired", "payment.late"]
    (t,) = await r.transfers()
    assert (t.payment_id, t.late, t.state) == (p.id, True, "final")


async def test_late_transfer_seen_before_the_expirer_ran_expires_then_flags_late(r: Rig) -> None:
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 1))
    r.chain.mine(2)
    r.chain.transfer(p.address or "", 4_000_000)
    r.chain.mine(LAG + 1)
    r.clock.now = p.expires_ms + 1
    await r.catch_up()
    late = await r.payment(p.id)
    assert (late.status, late.late, late.late_micro) == ("expired", True, 4_000_000)
    assert await r.events(p.id) == ["payment.expired", "payment.late"]


async def test_expirer_loop_stops_when_asked(r: Rig) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(r.expirer().run(stop))
    await asyncio.sleep(0)
    stop.set()
    await task
    assert task.done() and task.exception() is None


async def test_funds_for_a_cancelled_payment_are_recorded_as_late(r: Rig) -> None:
    p = await r.pay(USDT_10, status="cancelled")
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(LAG + 1)
    await r.catch_up()
    kept = await r.payment(p.id)
    assert (kept.status, kept.late, kept.late_micro, kept.received_micro) == (
        "cancelled",
        True,
        USDT_10,
        0,
    )
    assert await r.events(p.id) == ["payment.late"]
    (t,) = await r.transfers()
    assert (t.payment_id, t.late) == (p.id, True)


async def test_funds_reaching_a_completed_payment_later_are_sent_as_overpaid(r: Rig) -> None:
    # They used to be added to receivedUsdt silently: no event, no callback, nowhere an
    # operator or the merchant would look.
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 6), callback_url="https://shop.test/cb")
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(1)
    r.chain.transfer(p.address or "", 2_000_000)  # on time, after the payment was paid
    r.chain.mine(7)
    r.chain.transfer(p.address or "", 500_000)  # after the deadline, in the late window
    r.chain.mine(LAG + 1)
    await r.catch_up()
    paid = await r.payment(p.id)
    assert (paid.status, paid.received_micro, paid.late, paid.late_micro) == (
        "completed",
        USDT_10 + 2_500_000,
        False,
        0,
    )
    assert await r.events(p.id) == ["payment.completed", "payment.overpaid", "payment.overpaid"]
    async with r.sessions() as s:
        rows = await s.execute(
            select(PaymentEvent).where(col(PaymentEvent.payment_id) == p.id).order_by("id")
        )
        events = list(rows.scalars())
        outbox = (await s.execute(select(Callback).where(col(Callback.payment_id) == p.id))).all()
    assert len(outbox) == 3
    last = jsonio.loads(events[-1].data_json)
    assert (last["status"], last["crypto"]["receivedUsdt"]) == ("completed", Decimal("12.5"))
    assert last["details"] == {
        "overpaidUsdt": Decimal("0.5"),
        "excessUsdt": Decimal("2.5"),
    }
    listed = await cli(r, "payments", "list", "--json")
    (row,) = [p for p in jsonio.loads(listed.stdout) if p["id"] == paid.id]
    assert (row["status"], row["overpaid"], row["receivedUsdt"]) == ("completed", True, 12.5)


class _Interleaved(Expirer):
    """An expirer that lets the follower take one step between reading the cursor and
    choosing the overdue payments: the moment a real scheduler may pick on PostgreSQL."""

    def __init__(self, r: Rig) -> None:
        super().__init__(r.settings, r.sessions, r.clock)
        self.r = r

    async def _overdue(self, s: AsyncSession, before_ms: int) -> list[str]:
        step = asyncio.create_task(self.r.follower.step())
        await asyncio.wait({step}, timeout=0.3)  # blocks on the cursor's lock, once fixed
        self.step_task = step
        return await super()._overdue(s, before_ms)


async def test_fork_rollback_during_a_sweep_does_not_expire_an_on_time_payment(r: Rig) -> None:
    """The follower rolls `seen` back past the deadline (a fork found at solidification)
    while the expirer is mid-sweep: judged with the `seen` block it read before, the payment
    was expired, and completed a moment later when the fork's blocks brought its on-time
    transfer back (`payment.expired` then `payment.completed` to the merchant)."""
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 2))
    r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(4)  # the transfer's block is on time, the last two are past the deadline
    await r.catch_up()
    assert (await r.payment(p.id)).status == "confirming"
    r.chain.fork(4)  # the transfer moves one block later, still before the deadline
    r.chain.mine(LAG + 1)  # by the next look the replaced blocks are final
    r.clock.now = p.expires_ms + 1
    sweep = _Interleaved(r)
    await sweep.step()
    await sweep.step_task
    await r.catch_up()
    done = await r.payment(p.id)
    assert (done.status, done.received_micro) == ("completed", USDT_10)
    assert await r.events(p.id) == ["payment.confirming", "payment.reverted", "payment.completed"]


class _FlakySessions:
    """A session factory whose first `fail` uses raise what a dropped connection raises."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], fail: int) -> None:
        self._sessions, self.fail = sessions, fail

    def __call__(self) -> AsyncSession:
        if self.fail:
            self.fail -= 1
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return self._sessions()


async def test_expirer_outlives_a_database_error(r: Rig) -> None:
    """A dropped connection or a busy SQLite file used to end the expirer's task, which took
    the scanner (and with it the follower) down."""
    p = await r.pay(USDT_10, expires_ms=deadline_after(r, 1))
    r.chain.mine(3)
    await r.catch_up()
    r.clock.now = p.expires_ms + 1
    flaky = _FlakySessions(r.sessions, fail=2)
    expirer = Expirer(r.settings, flaky, r.clock, interval_s=0.01)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(expirer.run(stop))
    for _ in range(200):
        if (await r.payment(p.id)).status == "expired" or task.done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert flaky.fail == 0 and (await r.payment(p.id)).status == "expired"
