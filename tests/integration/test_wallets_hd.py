"""HD deposit addresses: published TRON BIP44 vectors and atomic index allocation."""

from __future__ import annotations

import asyncio

import pytest
from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.integration.conftest import ApiHarness
from watcher.config import ConfigError, Settings
from watcher.db.engine import transaction
from watcher.db.models import Counter
from watcher.tron.address import is_valid
from watcher.wallets import build_allocator
from watcher.wallets.hd import DEMO_XPUB, HdAllocator, HdDeriver

ABANDON = " ".join(["abandon"] * 11 + ["about"])  # the BIP39 test mnemonic

# m/44'/195'/0'/0/i of the mnemonic above, as published independently: index 0 by the Ledger
# TRON app's test script and Ian Coleman's BIP39 tool, 0-4 in TronWeb-checked wallet tests,
# 5 and 42 in a TRON deposit-address write-up.
PUBLISHED = {
    0: "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH",
    1: "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK",
    2: "TYJPRrdB5APNeRs4R7fYZSwW3TcrTKw2gx",
    3: "TRhVWK5XEDkQBDevcdCWW7RW51aRncty4W",
    4: "TT2X2yyubp7qpAWYYNE5JQWBtoZ7ikQFsY",
    5: "TBdYXtwq18cAhi1BA574TrP6tw2G86anu1",
    42: "TEnzFm6jmsVnizS7RSuBr7H6zzn4e7H7Pb",
}


def account_xpub(mnemonic: str) -> str:
    seed = Bip39SeedGenerator(mnemonic).Generate()
    account = Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0)
    return str(account.PublicKey().ToExtended())


def test_addresses_from_the_account_xpub_match_published_vectors() -> None:
    deriver = HdDeriver(account_xpub(ABANDON))
    assert {i: deriver.address(i) for i in PUBLISHED} == PUBLISHED


def test_the_demo_xpub_is_the_test_mnemonic_s_account_key() -> None:
    assert DEMO_XPUB == account_xpub(ABANDON)
    assert HdDeriver(DEMO_XPUB).address(0) == PUBLISHED[0]


def test_a_private_extended_key_is_refused() -> None:
    seed = Bip39SeedGenerator(ABANDON).Generate()
    xprv = Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0).PrivateKey()
    with pytest.raises(ConfigError, match=r"wallet\.xpub .*PRIVATE"):
        HdDeriver(str(xprv.ToExtended()))


@pytest.mark.parametrize(
    ("xpub", "why"),
    [
        ("", "empty"),
        ("xpub-not-really", "not a valid"),
        (DEMO_XPUB[:-1] + "e", "not a valid"),  # checksum broken
        (  # the change-level key m/44'/195'/0'/0: one level too deep
            "xpub6EuK4CZWW5urEHdwAVDdDw327danAtccFcrXYvgf1DHrPXRwErt36xStQ2PNhn4hpwzPbzJ8pJVpe"
            "wgChRnSs59q5Ay61GCfQZKUe71gbLq",
            "depth 4",
        ),
    ],
)
def test_a_bad_xpub_is_refused_at_start_naming_wallet_xpub(xpub: str, why: str) -> None:
    settings = Settings.model_validate({"wallet": {"mode": "hd", "xpub": xpub}})
    with pytest.raises(ConfigError, match=rf"wallet\.xpub .*{why}"):
        build_allocator(settings)


async def test_50_concurrent_allocations_get_50_distinct_addresses(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    allocator = HdAllocator(DEMO_XPUB)

    async def one(n: int) -> tuple[str, int | None]:
        async with transaction(sessions) as session:
            allocation = await allocator.allocate(session, f"txn_{n}", 1_000_000, 0)
            return allocation.address, allocation.index

    results = await asyncio.gather(*(one(n) for n in range(50)))
    assert len({address for address, _ in results}) == 50
    assert sorted(index for _, index in results) == list(range(50))
    assert all(is_valid(address) for address, _ in results)
    assert dict((i, a) for a, i in results if i in PUBLISHED) == {
        i: a for i, a in PUBLISHED.items() if i < 50
    }


async def test_a_rolled_back_create_gives_its_index_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    allocator = HdAllocator(DEMO_XPUB)
    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            assert (await allocator.allocate(session, "txn_a", 1, 0)).index == 0
            raise RuntimeError("create failed after allocating")
    async with transaction(sessions) as session:
        allocation = await allocator.allocate(session, "txn_b", 1, 0)
    assert (allocation.index, allocation.address) == (0, PUBLISHED[0])
    async with sessions() as session:
        counter = await session.get(Counter, "hd_index")
    assert counter is not None and counter.value == 1


async def test_50_concurrent_creates_answer_with_50_distinct_derived_addresses(
    api: ApiHarness,
) -> None:
    responses = await asyncio.gather(
        *(api.create(externalRef=f"HD-{n}", amount=10000) for n in range(50))
    )
    assert {r.status_code for r in responses} == {200}
    data = [r.json()["data"] for r in responses]
    addresses = {d["walletAddress"] for d in data}
    assert len(addresses) == 50
    assert addresses == {HdDeriver(DEMO_XPUB).address(i) for i in range(50)}
    assert {(d["amount"], d["rate"]) for d in data} == {(281.69, 35.5)}  # one locked rate
    assert api.binance.ticker_calls == 1


async def test_on_postgresql_a_create_still_open_does_not_hold_up_the_next_address(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The index is reserved in a statement of its own, before the create transaction: a
    create that is slow to commit does not make every other create wait for its row lock."""
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite creates write one at a time anyway (BEGIN IMMEDIATE)")
    allocator = HdAllocator(DEMO_XPUB, engine)
    async with transaction(sessions) as slow:
        first = await allocator.allocate(slow, "txn_a", 1, 0, await allocator.reserve())
        async with asyncio.timeout(5):  # with the row lock held by `slow`: forever
            reserved = await allocator.reserve()
            async with transaction(sessions) as other:
                second = await allocator.allocate(other, "txn_b", 1, 0, reserved)
    assert (first.index, second.index) == (0, 1)
    assert (first.address, second.address) == (PUBLISHED[0], PUBLISHED[1])
