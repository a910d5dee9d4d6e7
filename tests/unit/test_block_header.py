"""tron.client.parse_header: an odd header is a node error (retried), never data.

A header read wrongly is worse than one refused: an empty parentHash looks like a fork to the
follower (it steps back, drops what it saw in the block, the payment goes confirming ->
reverted -> confirming and the merchant gets each callback), a crash ends the follower.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from watcher.tron.client import NodeError, _node_num, parse_header

NUMBER = 81_234_567
BLOCK_ID = f"{NUMBER:016x}" + "ab" * 24
PARENT = f"{NUMBER - 1:016x}" + "cd" * 24
GOOD: dict[str, Any] = {
    "blockID": BLOCK_ID,
    "block_header": {
        "raw_data": {
            "number": NUMBER,
            "txTrieRoot": "ef" * 32,
            "witness_address": "41" + "11" * 20,
            "parentHash": PARENT,
            "version": 31,
            "timestamp": 1_800_000_000_000,
        },
        "witness_signature": "00" * 65,
    },
}


def test_a_good_header() -> None:
    h = parse_header(GOOD, NUMBER)
    assert (h.number, h.block_id, h.parent_hash, h.timestamp_ms) == (
        NUMBER,
        BLOCK_ID,
        PARENT,
        1_800_000_000_000,
    )


def test_ids_are_compared_in_one_case() -> None:
    data = copy.deepcopy(GOOD)
    data["blockID"] = BLOCK_ID.upper()
    data["block_header"]["raw_data"]["parentHash"] = PARENT.upper()
    h = parse_header(data)
    assert (h.block_id, h.parent_hash) == (BLOCK_ID, PARENT)


def _without(key: str) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    del data["block_header"]["raw_data"][key]
    return data


def _with(**raw: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    data["block_header"]["raw_data"].update(raw)
    return data


@pytest.mark.parametrize(
    "data",
    [
        {"blockID": BLOCK_ID, "block_header": None},
        {"blockID": BLOCK_ID, "block_header": {"raw_data": "x"}},
        _without("parentHash"),
        _without("timestamp"),
        _without("number"),
        _with(number="eighty"),
        _with(number=True),
        _with(timestamp="soon"),
        _with(number=NUMBER + 1),  # blockID's first 8 bytes are the number
        {**GOOD, "blockID": "zz" * 32},
    ],
)
def test_odd_headers_are_node_errors(data: dict[str, Any]) -> None:
    with pytest.raises(NodeError):
        parse_header(data)


@pytest.mark.parametrize("text", ["Num:x,ID:ab", "Num:,ID:", None, "Num:-5,ID:ab"])
def test_odd_getnodeinfo_numbers_are_node_errors(text: object) -> None:
    with pytest.raises(NodeError):
        _node_num(text)
