"""What a claim takes, on SQLite and PostgreSQL (where the pick is made in SQL): the oldest due
callbacks, as many as the free slots, never more per host than its limit allows beside the
attempts already in flight, none of a host at its limit, none leased to someone else."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support.callbacks import add_event, new_merchant
from watcher.callbacks.outbox import Outbox
from watcher.clock import now_ms
from watcher.secrets import load_box

A, B = "a.example:80", "b.example:80"


@pytest.fixture
async def outbox(db_url: str, sessions: async_sessionmaker[AsyncSession]) -> tuple[Outbox, int]:
    """Six callbacks due for host a (the oldest), then six for host b."""
    box = load_box(db_url)
    merchant = await new_merchant(sessions, box)
    t0 = now_ms()
    async with sessions() as s, s.begin():
        for i in range(6):
            await add_event(s, merchant.id, "http://a.example/hook", t0 - 1000 + i, ref=f"A-{i}")
        for i in range(6):
            await add_event(s, merchant.id, "http://b.example/hook", t0 + i, ref=f"B-{i}")
    return Outbox(sessions, box, "w", 60_000), t0 + 10


async def test_the_oldest_are_taken_when_no_limit_binds(outbox: tuple[Outbox, int]) -> None:
    box, now = outbox
    jobs, more = await box.claim(now, 4, {}, 16)
    assert Counter(j.host for j in jobs) == {A: 4} and more


async def test_a_host_gets_no_more_than_its_limit_beside_what_is_in_flight(
    outbox: tuple[Outbox, int],
) -> None:
    box, now = outbox
    jobs, more = await box.claim(now, 5, {A: 1}, 3)
    assert Counter(j.host for j in jobs) == {A: 2, B: 3} and more
    assert [j.attempt for j in jobs] == [1] * 5
    again, _ = await box.claim(now, 5, {A: 3, B: 3}, 3)
    assert again == []  # both hosts at their limit


async def test_a_host_at_its_limit_is_skipped(outbox: tuple[Outbox, int]) -> None:
    box, now = outbox
    jobs, _ = await box.claim(now, 4, {A: 3}, 3)
    assert Counter(j.host for j in jobs) == {B: 3}


async def test_what_is_leased_is_not_claimed_again_until_the_lease_ends(
    outbox: tuple[Outbox, int],
) -> None:
    box, now = outbox
    first, _ = await box.claim(now, 8, {}, 16)
    second, more = await box.claim(now, 8, {}, 16)
    assert len(first) == 8 and len(second) == 4 and not more
    assert not {j.id for j in first} & {j.id for j in second}
    assert await box.claim(now, 8, {}, 16) == ([], False)
    after, _ = await box.claim(now + 60_001, 16, {}, 16)
    assert sorted(j.id for j in after) == sorted(j.id for j in first + second)
