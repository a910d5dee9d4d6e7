"""Node faults the devchain plays on request, each as a client sees it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from watcher.devchain import DevChain, DevChainServer
from watcher.tron.address import to_base58

SHOP = to_base58("41" + "11" * 20)
NODEINFO = "/wallet/getnodeinfo"
INFOS = "/wallet/gettransactioninfobyblocknum"


@pytest.fixture
async def served() -> AsyncIterator[tuple[DevChain, DevChainServer, httpx.AsyncClient]]:
    chain = DevChain(start_time_ms=1_700_000_000_000, solidify_lag=3)
    chain.mine(20)
    async with DevChainServer(chain) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield chain, server, http


async def head_seen(http: httpx.AsyncClient) -> int:
    r = await http.get(NODEINFO)
    assert r.status_code == 200
    return int(r.json()["block"].split(",")[0].removeprefix("Num:"))


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("error_body", 200, "lack of computing resources"),
        ("throttle_429", 429, "frequency limit"),
        ("throttle_403", 403, "frequency limit"),
        ("plain_text", 200, "this API is closed because this node is a lite fullnode"),
        ("http_500", 500, "HTTP ERROR 500"),
        ("http_503", 503, "503 Service Temporarily Unavailable"),
    ],
)
async def test_fault_answers_once_then_node_recovers(
    served: tuple[DevChain, DevChainServer, httpx.AsyncClient], kind: str, status: int, body: str
) -> None:
    chain, _, http = served
    chain.inject_fault(kind)
    r = await http.post("/wallet/getblockbynum", json={"num": chain.head_number})
    assert r.status_code == status and body in r.text
    if kind in ("error_body", "throttle_429", "throttle_403"):
        assert "Error" in r.json()
    if kind == "plain_text":
        assert r.text == body
    r = await http.post("/wallet/getblockbynum", json={"num": chain.head_number})
    assert r.status_code == 200 and r.json()["block_header"]["raw_data"]["number"] == (
        chain.head_number
    )


async def test_fault_count_and_path(
    served: tuple[DevChain, DevChainServer, httpx.AsyncClient],
) -> None:
    chain, _, http = served
    chain.inject_fault("http_503", 2, path=INFOS)
    assert (await http.get(NODEINFO)).status_code == 200  # other paths unaffected
    for _ in range(2):
        assert (await http.post(INFOS, json={"num": 1})).status_code == 503
    assert (await http.post(INFOS, json={"num": 1})).status_code == 200
    assert chain.faults_queued == 0


async def test_timeout_holds_the_request_past_the_client_timeout(
    served: tuple[DevChain, DevChainServer, httpx.AsyncClient],
) -> None:
    chain, server, http = served
    assert server.hang_s >= 30
    chain.inject_fault("timeout")
    with pytest.raises(httpx.ReadTimeout):
        await http.get(NODEINFO, timeout=0.3)
    assert await head_seen(http) == chain.head_number  # the next one is answered


async def test_slow_answer_is_late_but_right(
    served: tuple[DevChain, DevChainServer, httpx.AsyncClient],
) -> None:
    chain, server, http = served
    server.slow_s = 0.6
    chain.inject_fault("slow", 2)
    with pytest.raises(httpx.ReadTimeout):
        await http.get(NODEINFO, timeout=0.1)
    assert await head_seen(http) == chain.head_number


async def test_stale_head_hides_the_newest_blocks(
    served: tuple[DevChain, DevChainServer, httpx.AsyncClient],
) -> None:
    chain, _, http = served
    head = chain.head_number
    chain.inject_fault("stale_head", 3, behind=4)
    assert await head_seen(http) == head - 4
    r = await http.post("/wallet/getnowblock")
    assert r.json()["block_header"]["raw_data"]["number"] == head - 4
    assert (await http.post("/wallet/getblockbynum", json={"num": head})).json() == {}
    assert await head_seen(http) == head


async def test_lagging_infos_miss_entries_of_the_block(
    served: tuple[DevChain, DevChainServer, httpx.AsyncClient],
) -> None:
    chain, _, http = served
    for i in range(4):
        chain.transfer(SHOP, 1_000_000 + i)
    (num,) = chain.mine()
    chain.inject_fault("lagging_infos")
    await head_seen(http)  # not an infos request: the fault waits
    block = (await http.post("/wallet/getblockbynum", json={"num": num})).json()
    lagging = (await http.post(INFOS, json={"num": num})).json()
    assert len(block["transactions"]) == 4
    assert 0 < len(lagging) < 4
    assert len((await http.post(INFOS, json={"num": num})).json()) == 4


async def test_fault_through_the_control_api_and_unknown_kind(
    served: tuple[DevChain, DevChainServer, httpx.AsyncClient],
) -> None:
    _, _, http = served
    r = await http.post("/_dev/fault", json={"kind": "throttle_429", "count": 1})
    assert r.status_code == 200 and r.json()["faults_queued"] == 1
    assert (await http.get(NODEINFO)).status_code == 429
    r = await http.post("/_dev/fault", json={"kind": "meteor_strike"})
    assert r.status_code == 400
