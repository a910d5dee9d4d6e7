"""java-tron's JSON shapes for blocks, transactions, transaction infos and node info.

Two address forms, as java-tron prints them: by default hex with the `41` prefix (and a log's
`address` as the bare 20 bytes), with `visible=true` base58 everywhere, log addresses
included; topics, call data and hashes stay hex either way. java-tron leaves out fields that
hold their default value: an empty block has no `transactions`, a successful transaction info
has no `result`, a TRX transfer has no `receipt.result`, a transaction without logs no `log`.

Sealed blocks never change, so their bodies are rendered once and kept on the block.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from watcher.devchain.blocks import Block, Tx, TxKind
from watcher.tron.address import to_base58

Json = dict[str, Any]

BLOCK_VERSION = 31
FEE_LIMIT = 100_000_000
TRUE_WORD = "0" * 63 + "1"
_TYPE_URL = "type.googleapis.com/protocol."
_RES_MESSAGES = {
    "REVERT": "REVERT opcode executed",
    "OUT_OF_ENERGY": "Not enough energy for 'SSTORE' operation executing: "
    "curInvokeEnergyLimit[14000], curOpEnergy[5000], usedEnergy[13950]",
}


@lru_cache(maxsize=1 << 17)
def _base58(hex41: str) -> str:
    return to_base58(hex41)


def address(hex41: str, visible: bool) -> str:
    return _base58(hex41) if visible else hex41


def log_address(hex41: str, visible: bool) -> str:
    """java-tron prints a log's emitting contract as 20 bytes of hex, or base58 if visible."""
    return _base58(hex41) if visible else hex41[2:]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def header(block: Block, visible: bool) -> Json:
    return {
        "blockID": block.block_id,
        "block_header": {
            "raw_data": {
                "number": block.number,
                "txTrieRoot": block.tx_root,
                "witness_address": address(block.witness, visible),
                "parentHash": block.parent,
                "version": BLOCK_VERSION,
                "timestamp": block.timestamp,
            },
            "witness_signature": block.block_id * 2 + "00",
        },
    }


def block(blk: Block, visible: bool, *, detail: bool = True) -> Json:
    out = header(blk, visible)
    if detail and blk.txs:
        out["transactions"] = [transaction(tx, blk, visible) for tx in blk.txs]
    return out


def transaction(tx: Tx, blk: Block | None, visible: bool) -> Json:
    ref = blk.number if blk is not None else 0
    value: Json = {"owner_address": address(tx.owner, visible)}
    if tx.kind is TxKind.TRX:
        value["amount"] = tx.amount
        value["to_address"] = address(tx.target, visible)
    else:
        value["data"] = tx.data
        value["contract_address"] = address(tx.target, visible)
    raw: Json = {
        "contract": [
            {
                "parameter": {"value": value, "type_url": _TYPE_URL + tx.kind.value},
                "type": tx.kind.value,
            }
        ],
        "ref_block_bytes": f"{ref & 0xFFFF:04x}",
        "ref_block_hash": tx.txid[:16],
        "expiration": tx.created_ms + 60_000,
        "timestamp": tx.created_ms,
    }
    if tx.kind is TxKind.TRIGGER:
        raw["fee_limit"] = FEE_LIMIT
    return {
        "ret": [{"contractRet": tx.result}],
        "signature": [tx.txid * 2 + "1b"],
        "txID": tx.txid,
        "raw_data": raw,
        "visible": visible,
    }


def info(tx: Tx, blk: Block, visible: bool) -> Json:
    out: Json = {"id": tx.txid}
    if tx.fee:
        out["fee"] = tx.fee
    out["blockNumber"] = blk.number
    out["blockTimeStamp"] = blk.timestamp
    if tx.kind is TxKind.TRX:
        out["contractResult"] = [""]
        out["receipt"] = {"net_usage": tx.net}
        return out
    out["contractResult"] = [TRUE_WORD if not tx.failed else ""]
    out["contract_address"] = address(tx.target, visible)
    out["receipt"] = {
        "energy_fee": tx.fee,
        "energy_usage_total": tx.energy,
        "net_usage": tx.net,
        "result": tx.result,
    }
    if tx.logs:
        out["log"] = [
            {
                "address": log_address(lg.address, visible),
                "topics": list(lg.topics),
                "data": lg.data,
            }
            for lg in tx.logs
        ]
    if tx.failed:
        out["result"] = "FAILED"
        message = _RES_MESSAGES.get(tx.result, tx.result)
        out["resMessage"] = message.encode().hex()
    return out


def infos(blk: Block, visible: bool) -> list[Json]:
    return [info(tx, blk, visible) for tx in blk.txs]


def node_info(head: Block, solid: Block, first_number: int) -> Json:
    return {
        "beginSyncNum": first_number,
        "block": f"Num:{head.number},ID:{head.block_id}",
        "solidityBlock": f"Num:{solid.number},ID:{solid.block_id}",
        "currentConnectCount": 30,
        "activeConnectCount": 8,
        "passiveConnectCount": 22,
        "totalFlow": 0,
        "peerList": [],
        "configNodeInfo": {
            "codeVersion": "4.7.7",
            "p2pVersion": "11111",
            "listenPort": 18888,
            "discoverEnable": True,
            "maxConnectCount": 30,
            "dbVersion": 2,
            "supportConstant": True,
        },
        "machineInfo": {"threadCount": 200, "cpuCount": 16, "processCpuRate": 0},
        "cheatWitnessInfoMap": {},
    }


def cached(blk: Block, kind: str, visible: bool) -> bytes:
    """The body of `kind` ("block", "header", "infos") for this block, rendered once."""
    key = f"{kind}:{'v' if visible else 'h'}"
    body = blk.cache.get(key)
    if body is None:
        if kind == "infos":
            body = dumps(infos(blk, visible))
        else:
            body = dumps(block(blk, visible, detail=kind == "block"))
        blk.cache[key] = body
    return body
