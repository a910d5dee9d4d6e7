"""Forks on the devchain: unsolidified blocks replaced, their transactions moved or gone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from watcher.devchain import DevChain, DevChainServer, ForkRefused
from watcher.tron.address import to_base58

SHOP = to_base58("41" + "11" * 20)
START = 1_000_000
LAG = 5


@pytest.fixture
async def served() -> AsyncIterator[tuple[DevChain, httpx.AsyncClient]]:
    chain = DevChain(start_time_ms=1_700_000_000_000, solidify_lag=LAG)
    async with DevChainServer(chain) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield chain, http


async def post(http: httpx.AsyncClient, path: str, **body: Any) -> Any:
    r = await http.post(path, json=body)
    assert r.status_code == 200
    return r.json()


async def ids(http: httpx.AsyncClient, numbers: range) -> list[str]:
    return [(await post(http, "/wallet/getblockbynum", num=n))["blockID"] for n in numbers]


async def where(http: httpx.AsyncClient, txid: str) -> int | None:
    info = await post(http, "/wallet/gettransactioninfobyid", value=txid)
    return info.get("blockNumber")


async def test_fork_replaces_blocks_with_new_ids_and_a_consistent_parent_chain(
    served: tuple[DevChain, httpx.AsyncClient],
) -> None:
    chain, http = served
    chain.mine(10)
    heights = range(chain.head_number - 3, chain.head_number + 1)
    before = await ids(http, heights)
    chain.fork(3)
    after = await ids(http, heights)
    assert after[0] == before[0]  # below the fork: untouched
    assert all(a != b for a, b in zip(after[1:], before[1:], strict=True))
    assert chain.head_number == heights[-1]  # same heights
    for n, parent_id in zip(heights[1:], after, strict=False):
        blk = await post(http, "/wallet/getblockbynum", num=n)
        assert blk["block_header"]["raw_data"]["parentHash"] == parent_id
        assert int(blk["blockID"][:16], 16) == n
    assert await post(http, "/wallet/getblock", id_or_num=before[-1]) == {}  # gone
    node = await post(http, "/wallet/getnodeinfo")
    assert node["block"] == f"Num:{heights[-1]},ID:{after[-1]}"


async def test_moved_transaction_reappears_one_block_later_and_dropped_one_vanishes(
    served: tuple[DevChain, httpx.AsyncClient],
) -> None:
    chain, http = served
    chain.mine(LAG + 1)
    moved = chain.transfer(SHOP, 5_000_000)
    dropped = chain.transfer(SHOP, 6_000_000)
    (first,) = chain.mine()
    chain.mine()
    assert await where(http, moved) == first
    chain.fork(2, drop={dropped})
    assert await where(http, moved) == first + 1
    assert await where(http, dropped) is None
    assert await post(http, "/wallet/gettransactioninfobyblocknum", num=first) == []
    (info,) = await post(http, "/wallet/gettransactioninfobyblocknum", num=first + 1)
    assert info["id"] == moved and info["blockNumber"] == first + 1
    blk = await post(http, "/wallet/getblockbynum", num=first + 1)
    assert info["blockTimeStamp"] == blk["block_header"]["raw_data"]["timestamp"]


async def test_fork_of_the_head_block_keeps_its_transactions_at_the_same_height(
    served: tuple[DevChain, httpx.AsyncClient],
) -> None:
    chain, http = served
    chain.mine(LAG + 1)
    txid = chain.transfer(SHOP, 1_000_000)
    (num,) = chain.mine()
    (old,) = await ids(http, range(num, num + 1))
    chain.fork(1)
    (new,) = await ids(http, range(num, num + 1))
    assert new != old and await where(http, txid) == num


async def test_fork_without_move_sends_transactions_back_to_the_pool(
    served: tuple[DevChain, httpx.AsyncClient],
) -> None:
    chain, http = served
    chain.mine(LAG + 1)
    txid = chain.transfer(SHOP, 1_000_000)
    (num,) = chain.mine()
    chain.fork(1, move=False)
    assert await where(http, txid) is None
    assert await post(http, "/wallet/gettransactioninfobyblocknum", num=num) == []
    (later,) = chain.mine()
    assert await where(http, txid) == later == num + 1


async def test_fork_refuses_to_touch_a_solidified_block(
    served: tuple[DevChain, httpx.AsyncClient],
) -> None:
    chain, http = served
    chain.mine(LAG + 3)
    assert chain.solid_number == chain.head_number - LAG
    chain.fork(LAG)  # the deepest allowed: stops just above the solidified head
    before = chain.head().block_id
    with pytest.raises(ForkRefused):
        chain.fork(LAG + 1)
    r = await http.post("/_dev/fork", json={"depth": LAG + 1})
    assert r.status_code == 409 and "solidified" in r.json()["error"]
    assert chain.head().block_id == before


async def test_fork_through_the_control_api(served: tuple[DevChain, httpx.AsyncClient]) -> None:
    chain, http = served
    chain.mine(LAG + 1)
    txid = (await post(http, "/_dev/transfer", to=SHOP, amount=2_000_000, mine=1))["txid"]
    head_before = (await post(http, "/_dev/state"))["head_id"]
    state = await post(http, "/_dev/fork", depth=1, drop=[txid])
    assert state["head_id"] != head_before and state["head"] == chain.head_number
    assert await where(http, txid) is None
