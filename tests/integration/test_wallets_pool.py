"""Pool deposit addresses: (address, amount) unique among open payments, tags held past the
late window, load spread over the addresses."""

from __future__ import annotations

import asyncio
from collections import Counter as Tally
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher.config import ConfigError, Settings
from watcher.db.engine import transaction
from watcher.db.models import Merchant, Payment
from watcher.errors import ProviderError
from watcher.wallets import build_allocator
from watcher.wallets.base import Allocation
from watcher.wallets.pool import PoolAllocator

A = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
B = "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK"
C = "TYJPRrdB5APNeRs4R7fYZSwW3TcrTKw2gx"
T0 = 1_790_000_000_000
HOUR = 3_600_000
USDT_281_69 = 281_690_000

sqlite_only = pytest.mark.parametrize("db_kind", ["sqlite"])


@pytest.fixture
async def merchant(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as session:
        session.add(Merchant(id=1, name="shop", webhook_secret_enc="x", created_ms=T0))


@dataclass
class FakeClock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


async def create(
    sessions: async_sessionmaker[AsyncSession],
    pool: PoolAllocator,
    n: int,
    amount_micro: int = USDT_281_69,
    release_ms: int = T0 + 25 * HOUR,
) -> Allocation:
    """A payment row and its allocation in one transaction, as payment creation does it."""
    async with transaction(sessions) as session:
        session.add(
            Payment(
                id=f"txn_{n}",
                merchant_id=1,
                external_ref=f"ref-{n}",
                provider="crypto",
                amount_kurus=1_000_000,
                full_name="Ada",
                created_ms=T0,
                updated_ms=T0,
                expires_ms=release_ms - 24 * HOUR,
            )
        )
        await session.flush()
        return await pool.allocate(session, f"txn_{n}", amount_micro, release_ms)


@sqlite_only
@pytest.mark.usefixtures("merchant")
async def test_payments_on_one_address_get_the_smallest_free_tags(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    pool = PoolAllocator([A], FakeClock())
    amounts = [(await create(sessions, pool, n)).amount_micro for n in range(3)]
    assert amounts == [USDT_281_69, USDT_281_69 + 1, USDT_281_69 + 2]
    other = await create(sessions, pool, 3, amount_micro=100_000_000)
    assert (other.address, other.amount_micro, other.index) == (A, 100_000_000, None)


@sqlite_only
@pytest.mark.usefixtures("merchant")
async def test_new_payments_go_to_the_least_loaded_address(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    pool = PoolAllocator([A, B, C], FakeClock())
    allocations = [await create(sessions, pool, n) for n in range(9)]
    assert Tally(a.address for a in allocations) == {A: 3, B: 3, C: 3}
    assert len({(a.address, a.amount_micro) for a in allocations}) == 9


@sqlite_only
@pytest.mark.usefixtures("merchant")
async def test_a_tag_is_held_until_the_late_window_has_passed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock()
    pool = PoolAllocator([A], clock)
    release = T0 + 30 * 60_000 + 24 * HOUR  # deadline + late window
    first = await create(sessions, pool, 0, release_ms=release)
    clock.now = T0 + 2 * HOUR  # expired, but a late transfer could still arrive
    assert (await create(sessions, pool, 1)).amount_micro == first.amount_micro + 1
    clock.now = release
    assert (await create(sessions, pool, 2)).amount_micro == first.amount_micro


@sqlite_only
@pytest.mark.usefixtures("merchant")
async def test_when_every_tag_is_held_creation_fails_with_a_provider_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    pool = PoolAllocator([A], FakeClock(), max_tag=2)
    for n in range(3):
        await create(sessions, pool, n)
    with pytest.raises(ProviderError, match=r"wallet\.addresses"):
        await create(sessions, pool, 3)


@pytest.mark.usefixtures("merchant")
async def test_concurrent_creates_never_share_an_address_and_amount(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    pool = PoolAllocator([A, B], FakeClock())
    allocations = await asyncio.gather(*(create(sessions, pool, n) for n in range(30)))
    assert len({(a.address, a.amount_micro) for a in allocations}) == 30
    assert {a.address for a in allocations} == {A, B}
    assert all(0 <= a.amount_micro - USDT_281_69 < 30 for a in allocations)


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        ([], "empty"),
        ([A, "TNotAnAddress"], "not TRON addresses"),
        ([A, A], "twice"),
        (["41" + "00" * 20], "not TRON addresses"),  # hex form: config takes base58
    ],
)
def test_bad_pool_addresses_are_refused_at_start(addresses: list[str], message: str) -> None:
    settings = Settings.model_validate({"wallet": {"mode": "pool", "addresses": addresses}})
    with pytest.raises(ConfigError, match=rf"wallet\.addresses.*{message}"):
        build_allocator(settings)


@sqlite_only
@pytest.mark.usefixtures("merchant")
async def test_with_a_tolerance_no_two_held_amounts_are_within_twice_of_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # A transfer pays the payment within tolerance_micro of it: overlapping windows would
    # leave every payer of either amount unmatched.
    pool = PoolAllocator([A], FakeClock(), tolerance_micro=50)
    amounts = [(await create(sessions, pool, n)).amount_micro for n in range(3)]
    assert amounts == [USDT_281_69, USDT_281_69 + 101, USDT_281_69 + 202]
    assert all(a - USDT_281_69 <= 9_999 - 100 for a in amounts)  # below the next cent's
    with pytest.raises(ConfigError, match="tolerance_micro"):
        PoolAllocator([A], FakeClock(), tolerance_micro=5_000)
