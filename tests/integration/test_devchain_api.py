"""The devchain answers java-tron's HTTP API in java-tron's shapes, over real HTTP.

Every endpoint in both address forms: hex (`41…`, log addresses as 20 bytes) by default and
base58 with `visible=true`; POST bodies and GET queries.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from watcher.devchain import DevChain, DevChainServer
from watcher.tron.address import to_base58, to_hex

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_HEX = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
PAYER = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
SHOP = to_base58("41" + "11" * 20)
FAKE_TOKEN = to_base58("41" + "22" * 20)
ROUTER = to_base58("41" + "33" * 20)
START = 1_000_000
T0 = 1_700_000_000_000


@dataclass
class Node:
    chain: DevChain
    server: DevChainServer
    http: httpx.AsyncClient

    async def post(self, path: str, **body: Any) -> Any:
        r = await self.http.post(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    async def get(self, path: str, **query: Any) -> Any:
        r = await self.http.get(path, params=query)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    chain = DevChain(start_time_ms=T0, solidify_lag=3)
    async with (
        DevChainServer(chain) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        yield Node(chain, server, http)


def topic_address(hex41: str) -> str:
    return "0" * 24 + hex41[2:]


async def test_blocks_chain_by_parent_hash_and_id_carries_the_number(node: Node) -> None:
    node.chain.mine(3)
    blocks = [await node.post("/wallet/getblockbynum", num=n) for n in range(START, START + 4)]
    for prev, blk in itertools.pairwise(blocks):
        raw = blk["block_header"]["raw_data"]
        assert raw["parentHash"] == prev["blockID"]
        assert raw["timestamp"] == prev["block_header"]["raw_data"]["timestamp"] + 3000
    for n, blk in enumerate(blocks, START):
        assert len(blk["blockID"]) == 64 and int(blk["blockID"][:16], 16) == n
        raw = blk["block_header"]["raw_data"]
        assert raw["number"] == n
        assert set(raw) == {
            "number",
            "txTrieRoot",
            "witness_address",
            "parentHash",
            "version",
            "timestamp",
        }
        assert raw["witness_address"].startswith("41") and len(raw["witness_address"]) == 42
        assert "transactions" not in blk  # java-tron leaves out an empty list


async def test_usdt_transfer_in_block_hex_and_visible(node: Node) -> None:
    txid = node.chain.transfer(SHOP, 12_500_000, sender=PAYER)
    (num,) = node.chain.mine()
    hexed = await node.post("/wallet/getnowblock")
    assert hexed["block_header"]["raw_data"]["number"] == num
    (tx,) = hexed["transactions"]
    assert tx["txID"] == txid
    assert tx["ret"] == [{"contractRet": "SUCCESS"}]
    contract = tx["raw_data"]["contract"][0]
    assert contract["type"] == "TriggerSmartContract"
    value = contract["parameter"]["value"]
    assert value["owner_address"] == to_hex(PAYER)
    assert value["contract_address"] == USDT_HEX
    assert value["data"] == "a9059cbb" + topic_address(to_hex(SHOP)) + f"{12_500_000:064x}"

    visible = await node.post("/wallet/getblockbynum", num=num, visible=True)
    value = visible["transactions"][0]["raw_data"]["contract"][0]["parameter"]["value"]
    assert value["owner_address"] == PAYER
    assert value["contract_address"] == USDT
    assert value["data"].startswith("a9059cbb")
    assert visible["block_header"]["raw_data"]["witness_address"].startswith("T")
    assert visible["blockID"] == hexed["blockID"]


async def test_transaction_infos_hex_and_visible(node: Node) -> None:
    txid = node.chain.transfer(SHOP, 7_000_000, sender=PAYER)
    (num,) = node.chain.mine()
    (info,) = await node.post("/wallet/gettransactioninfobyblocknum", num=num)
    assert info["id"] == txid
    assert info["blockNumber"] == num
    assert info["blockTimeStamp"] == T0 + 3000
    assert info["contract_address"] == USDT_HEX
    assert info["receipt"]["result"] == "SUCCESS"
    assert info["receipt"]["energy_usage_total"] > 0 and info["fee"] > 0
    assert "result" not in info  # java-tron omits the default SUCCESS
    (log,) = info["log"]
    assert log["address"] == USDT_HEX[2:]  # the 20-byte form, no 41
    assert log["topics"] == [
        TRANSFER_TOPIC,
        topic_address(to_hex(PAYER)),
        topic_address(to_hex(SHOP)),
    ]
    assert int(log["data"], 16) == 7_000_000

    (vis,) = await node.get("/wallet/gettransactioninfobyblocknum", num=num, visible="true")
    assert vis["contract_address"] == USDT
    assert vis["log"][0]["address"] == USDT
    assert vis["log"][0]["topics"] == log["topics"]  # topics stay hex
    assert vis["log"][0]["data"] == log["data"]


@pytest.mark.parametrize("result", ["REVERT", "OUT_OF_ENERGY"])
async def test_failed_transfer_is_on_chain_without_log(node: Node, result: str) -> None:
    txid = node.chain.transfer(SHOP, 5_000_000, result=result)
    (num,) = node.chain.mine()
    blk = await node.post("/wallet/getblockbynum", num=num)
    assert blk["transactions"][0]["ret"] == [{"contractRet": result}]
    (info,) = await node.post("/wallet/gettransactioninfobyblocknum", num=num)
    assert info["id"] == txid
    assert info["result"] == "FAILED"
    assert info["receipt"]["result"] == result
    assert bytes.fromhex(info["resMessage"]).decode()
    assert info["fee"] > 0
    assert "log" not in info
    # the call data still names the recipient and the amount: a trap for call-data decoders
    data = blk["transactions"][0]["raw_data"]["contract"][0]["parameter"]["value"]["data"]
    assert to_hex(SHOP)[2:] in data


async def test_fake_token_batch_router_and_zero_transfers(node: Node) -> None:
    fake = node.chain.transfer(SHOP, 1_000_000, token=FAKE_TOKEN)
    routed = node.chain.transfer(SHOP, 2_000_000, via_contract=ROUTER)
    zero = node.chain.transfer(SHOP, 0, sender=PAYER)
    batch = node.chain.batch_transfer([(SHOP, 3_000_000), (PAYER, 4_000_000)], via_contract=ROUTER)
    (num,) = node.chain.mine()
    infos = {i["id"]: i for i in await node.post("/wallet/gettransactioninfobyblocknum", num=num)}

    assert infos[fake]["contract_address"] == to_hex(FAKE_TOKEN)
    assert infos[fake]["log"][0]["address"] == to_hex(FAKE_TOKEN)[2:]

    assert infos[routed]["contract_address"] == to_hex(ROUTER)
    assert infos[routed]["log"][0]["address"] == USDT_HEX[2:]
    assert int(infos[routed]["log"][0]["data"], 16) == 2_000_000

    assert int(infos[zero]["log"][0]["data"], 16) == 0
    assert infos[zero]["receipt"]["result"] == "SUCCESS"

    logs = infos[batch]["log"]
    assert [lg["address"] for lg in logs] == [USDT_HEX[2:]] * 2
    assert [lg["topics"][2] for lg in logs] == [
        topic_address(to_hex(SHOP)),
        topic_address(to_hex(PAYER)),
    ]
    assert [int(lg["data"], 16) for lg in logs] == [3_000_000, 4_000_000]
    assert infos[batch]["contract_address"] == to_hex(ROUTER)


async def test_filler_has_trx_transfers_without_receipt_result(node: Node) -> None:
    node.chain.add_filler(60)
    (num,) = node.chain.mine()
    blk = await node.post("/wallet/getblockbynum", num=num)
    infos = await node.post("/wallet/gettransactioninfobyblocknum", num=num)
    assert len(blk["transactions"]) == len(infos) == 60
    assert await node.post("/wallet/gettransactioncountbyblocknum", num=num) == {"count": 60}
    assert await node.get("/wallet/gettransactioncountbyblocknum", num=num + 1) == {"count": 0}
    assert [t["txID"] for t in blk["transactions"]] == [i["id"] for i in infos]
    kinds = {t["raw_data"]["contract"][0]["type"] for t in blk["transactions"]}
    assert kinds == {"TransferContract", "TriggerSmartContract"}
    trx = [
        i
        for i, t in zip(infos, blk["transactions"], strict=True)
        if "to_address" in t["raw_data"]["contract"][0]["parameter"]["value"]
    ]
    assert trx and all("result" not in i["receipt"] and "log" not in i for i in trx)


async def test_getblock_header_only_or_detail_by_number_or_id(node: Node) -> None:
    node.chain.transfer(SHOP, 1)
    (num,) = node.chain.mine()
    node.chain.mine()
    light = await node.post("/wallet/getblock", id_or_num=str(num), detail=False)
    assert light["block_header"]["raw_data"]["number"] == num
    assert "transactions" not in light
    full = await node.get("/wallet/getblock", id_or_num=light["blockID"], detail="true")
    assert full["blockID"] == light["blockID"] and len(full["transactions"]) == 1
    head = await node.post("/wallet/getblock")
    assert head["block_header"]["raw_data"]["number"] == num + 1
    assert await node.post("/wallet/getblockbyid", value=light["blockID"]) == full


async def test_blocks_not_there_yet(node: Node) -> None:
    head = node.chain.head_number
    assert await node.post("/wallet/getblockbynum", num=head + 1) == {}
    assert await node.post("/wallet/getblock", id_or_num=str(head + 1)) == {}
    assert await node.post("/wallet/gettransactioninfobyblocknum", num=head + 1) == []
    assert await node.post("/wallet/gettransactioninfobyblocknum", num=head) == []  # empty


async def test_transaction_by_id(node: Node) -> None:
    txid = node.chain.transfer(SHOP, 9_000_000)
    assert await node.post("/wallet/gettransactionbyid", value=txid) == {}  # still pending
    assert await node.post("/wallet/gettransactioninfobyid", value=txid) == {}
    node.chain.mine()
    tx = await node.post("/wallet/gettransactionbyid", value=txid)
    assert tx["txID"] == txid and tx["ret"][0]["contractRet"] == "SUCCESS"
    info = await node.post("/wallet/gettransactioninfobyid", value=txid, visible=True)
    assert info["id"] == txid and info["log"][0]["address"] == USDT
    assert await node.post("/wallet/gettransactioninfobyid", value="ab" * 32) == {}


async def test_node_info_and_solidified_head(node: Node) -> None:
    node.chain.mine(10)
    head, solid = node.chain.head_number, node.chain.solid_number
    assert solid == head - 3
    info = await node.get("/wallet/getnodeinfo")
    head_blk = await node.post("/wallet/getnowblock")
    solid_blk = await node.post("/walletsolidity/getnowblock")
    assert info["block"] == f"Num:{head},ID:{head_blk['blockID']}"
    assert info["solidityBlock"] == f"Num:{solid},ID:{solid_blk['blockID']}"
    light = await node.post("/walletsolidity/getblock", detail=False)
    assert light["blockID"] == solid_blk["blockID"] and "transactions" not in light
    assert await node.post("/walletsolidity/getblockbynum", num=solid + 1) == {}
    assert (await node.post("/walletsolidity/getblockbynum", num=solid))["blockID"] == (
        solid_blk["blockID"]
    )


async def test_block_ranges(node: Node) -> None:
    node.chain.mine(5)
    got = await node.post("/wallet/getblockbylimitnext", startNum=START + 1, endNum=START + 4)
    assert [b["block_header"]["raw_data"]["number"] for b in got["block"]] == [
        START + 1,
        START + 2,
        START + 3,
    ]
    capped = await node.post("/wallet/getblockbylimitnext", startNum=START + 4, endNum=START + 50)
    assert [b["block_header"]["raw_data"]["number"] for b in capped["block"]] == [
        START + 4,
        START + 5,
    ]
    assert await node.post("/wallet/getblockbylimitnext", startNum=START, endNum=START + 101) == {}
    latest = await node.post("/wallet/getblockbylatestnum", num=2)
    assert [b["block_header"]["raw_data"]["number"] for b in latest["block"]] == [
        START + 4,
        START + 5,
    ]


async def test_bad_parameters_get_error_body_with_200(node: Node) -> None:
    r = await node.http.post("/wallet/getblockbynum", json={"num": "twelve"})
    assert r.status_code == 200 and "NumberFormatException" in r.json()["Error"]
    r = await node.http.post("/wallet/getblockbynum", content=b"{not json")
    assert r.status_code == 200 and "Error" in r.json()
    r = await node.http.post("/wallet/gettransactioninfobyid", json={})
    assert r.status_code == 200 and "Error" in r.json()


def test_same_seed_same_chain() -> None:
    def build(seed: int) -> tuple[list[str], list[str]]:
        chain = DevChain(start_time_ms=T0, seed=seed)
        txids = [chain.transfer(SHOP, 1_000_000), chain.batch_transfer([(SHOP, 1)])]
        chain.add_filler(20)
        chain.mine(3)
        chain.fork(2)
        ids = [b.block_id for n in range(START, START + 4) if (b := chain.block(n))]
        return txids, ids

    assert build(7) == build(7)
    assert build(7) != build(8)
