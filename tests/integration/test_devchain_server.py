"""The devchain server as other code uses it: timer mining, the /_dev/ control API, a thread
of its own for synchronous callers, the API key header, the Binance ticker, bulk blocks."""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal

import httpx
import pytest

from watcher.clock import now_ms
from watcher.devchain import DevChain, DevChainServer
from watcher.devchain.binance import FakeBinance
from watcher.tron.address import to_base58, to_hex

USDT_HEX = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SHOP = to_base58("41" + "11" * 20)
OTHER = to_base58("41" + "44" * 20)


async def test_timer_mines_blocks_stamped_with_the_wall_clock() -> None:
    chain = DevChain(block_interval_ms=20, solidify_lag=5)
    chain.mine(5)  # mined up front: stamped up to now, not ahead of the clock
    assert chain.head().timestamp <= now_ms()
    start = chain.head_number
    began = now_ms()
    async with DevChainServer(chain, block_time_ms=20) as server, httpx.AsyncClient() as http:
        for _ in range(500):
            if chain.head_number >= start + 3:
                break
            await asyncio.sleep(0.01)
        info = (await http.get(server.url + "/wallet/getnodeinfo")).json()
    ended = now_ms()
    assert chain.head_number >= start + 3
    assert int(info["block"].split(",")[0][4:]) >= start + 3
    stamps = [b.timestamp for n in range(start + 1, start + 4) if (b := chain.block(n))]
    assert all(later > earlier for earlier, later in itertools.pairwise(stamps))
    assert all(t % 20 == 0 and began - 20 <= t <= ended + 40 for t in stamps)


async def test_control_api_drives_the_chain() -> None:
    chain = DevChain(start_time_ms=1_700_000_000_000)
    async with DevChainServer(chain) as server, httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/_dev/transfer", json={"to": SHOP, "amount": 3_000_000})
        txid = r.json()["txid"]
        r = await http.post(
            "/_dev/batch", json={"transfers": [[SHOP, 1], {"to": OTHER, "amount": 2}]}
        )
        batch = r.json()["txid"]
        failed = (
            await http.post("/_dev/transfer", json={"to": SHOP, "amount": 5, "result": "REVERT"})
        ).json()["txid"]
        await http.post("/_dev/filler", json={"n": 7})
        assert (await http.get("/_dev/state")).json()["pending"] == 10
        mined = (await http.post("/_dev/mine", json={"n": 2})).json()
        assert mined["blocks"] == [chain.head_number - 1, chain.head_number]
        infos = (
            await http.post(
                "/wallet/gettransactioninfobyblocknum", json={"num": mined["blocks"][0]}
            )
        ).json()
        by_id = {i["id"]: i for i in infos}
        assert len(infos) == 10
        assert int(by_id[txid]["log"][0]["data"], 16) == 3_000_000
        assert len(by_id[batch]["log"]) == 2
        assert by_id[failed]["result"] == "FAILED"
        state = (await http.post("/_dev/state")).json()
        assert state["head"] == chain.head_number and state["pending"] == 0
        assert state["usdt_contract"] == chain.usdt_contract

        for bad in (
            {"to": "not-an-address", "amount": 1},
            {"to": SHOP, "amount": "1.5"},
            {"to": SHOP, "amount": -1},
            {"to": SHOP, "amount": 1, "result": "MAYBE"},
        ):
            r = await http.post("/_dev/transfer", json=bad)
            assert r.status_code == 400 and r.json()["error"]
        assert chain.pending_count == 0


def test_thread_mode_serves_synchronous_callers() -> None:
    chain = DevChain(start_time_ms=1_700_000_000_000)
    with DevChainServer(chain) as server:
        txid = chain.transfer(SHOP, 1_000_000)  # from this thread, while the server runs
        chain.mine()
        info = httpx.post(server.url + "/wallet/gettransactioninfobyid", json={"value": txid})
        assert info.json()["blockNumber"] == chain.head_number
        r = httpx.post(server.url + "/_dev/mine", json={})
        assert r.json()["head"] == chain.head_number
    with pytest.raises(httpx.TransportError):  # stopped: nothing listens any more
        httpx.get(server.url + "/wallet/getnodeinfo", timeout=0.5)


async def test_api_key_is_required_and_logged() -> None:
    chain = DevChain()
    async with DevChainServer(chain, api_key="k-123") as server, httpx.AsyncClient() as http:
        r = await http.post(server.url + "/wallet/getnowblock")
        assert r.status_code == 401 and "Error" in r.json()
        r = await http.post(
            server.url + "/wallet/getnowblock", headers={"TRON-PRO-API-KEY": "k-123"}
        )
        assert r.status_code == 200 and r.json()["blockID"]
        await http.get(server.url + "/_dev/state")  # control calls are not logged
    paths = [path for path, _ in server.requests]
    assert paths == ["/wallet/getnowblock", "/wallet/getnowblock"]
    assert "tron-pro-api-key" not in server.requests[0][1]
    assert server.requests[1][1]["tron-pro-api-key"] == "k-123"


async def test_binance_ticker_is_mounted() -> None:
    binance = FakeBinance(price=Decimal("41.25"))
    async with DevChainServer(DevChain(), binance=binance) as server, httpx.AsyncClient() as h:
        r = await h.get(server.url + "/api/v3/ticker/price", params={"symbol": "USDTTRY"})
    assert r.json() == {"symbol": "USDTTRY", "price": "41.25000000"}


async def test_mainnet_like_blocks() -> None:
    watched = [to_base58(f"41{i:040x}") for i in range(1, 51)]
    chain = DevChain(start_time_ms=1_700_000_000_000)
    began = time.perf_counter()
    chain.make_mainnet_like(100, recipients=watched)
    elapsed = time.perf_counter() - began
    print(f"make_mainnet_like: 100 blocks x 300 txs in {elapsed:.2f} s")
    async with DevChainServer(chain) as server, httpx.AsyncClient(base_url=server.url) as http:
        num = chain.head_number - 50
        blk = (await http.post("/wallet/getblockbynum", json={"num": num})).json()
        infos = (await http.post("/wallet/gettransactioninfobyblocknum", json={"num": num})).json()
    assert len(blk["transactions"]) == len(infos) == 300
    usdt = [
        lg
        for i in infos
        if i.get("receipt", {}).get("result") == "SUCCESS"
        for lg in i.get("log", [])
        if lg["address"] == USDT_HEX[2:] and lg["topics"][0] == TRANSFER_TOPIC
    ]
    assert len(usdt) == 100
    watched_topics = {"0" * 24 + to_hex(a)[2:] for a in watched}
    assert all(lg["topics"][2] in watched_topics for lg in usdt)
    others = [i for i in infos if i.get("log") and i["log"][0]["address"] != USDT_HEX[2:]]
    failed = [i for i in infos if i.get("result") == "FAILED"]
    assert others and failed  # background traffic a follower must skip
