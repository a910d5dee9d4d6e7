"""The TRC20 log decoder against an independent encoder (bytes + bip_utils base58).

Each generated transaction is described by a model (token, sender, recipient, amount, result,
extra events); the encoder prints it the way java-tron does, in hex or visible form, and the
decoder must return exactly the transfers the model says count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from bip_utils import Base58Encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.config import MAINNET_USDT
from watcher.tron.decode import (
    MAX_AMOUNT,
    Token,
    TokenTransfer,
    decode_infos,
    transfers_in,
    transfers_in_block,
)

USDT = Token(MAINNET_USDT)
USDT_BODY = bytes.fromhex("a614f803b6fd780986a42c78ec9c7f77e6ded13c")
TRANSFER = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
APPROVAL = bytes.fromhex("8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925")


@dataclass(frozen=True)
class Log:
    contract: bytes  # 20 bytes
    topic0: bytes
    sender: bytes
    recipient: bytes
    amount: int


def word(b: bytes) -> str:
    return b.rjust(32, b"\0").hex()


def b58(body20: bytes) -> str:
    return str(Base58Encoder.CheckEncode(b"\x41" + body20))


def encode_log(log: Log, visible: bool) -> dict[str, Any]:
    address = b58(log.contract) if visible else log.contract.hex()
    return {
        "address": address,
        "topics": [log.topic0.hex(), word(log.sender), word(log.recipient)],
        "data": log.amount.to_bytes(32, "big").hex(),
    }


def encode_info(txid: str, logs: list[Log], result: str, visible: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": txid,
        "blockNumber": 1000,
        "blockTimeStamp": 1_700_000_000_000,
        "contract_address": b58(USDT_BODY) if visible else "41" + USDT_BODY.hex(),
        "receipt": {"energy_usage_total": 14650, "net_usage": 345, "result": result},
    }
    if result == "SUCCESS" and logs:
        info["log"] = [encode_log(lg, visible) for lg in logs]
    if result != "SUCCESS":
        info["result"] = "FAILED"
    return info


def counts(log: Log, result: str) -> bool:
    return (
        result == "SUCCESS"
        and log.contract == USDT_BODY
        and log.topic0 == TRANSFER
        and 0 < log.amount <= MAX_AMOUNT
    )


addresses = st.binary(min_size=20, max_size=20)
logs = st.builds(
    Log,
    contract=st.one_of(st.just(USDT_BODY), addresses),
    topic0=st.sampled_from([TRANSFER, TRANSFER, APPROVAL]),
    sender=addresses,
    recipient=addresses,
    amount=st.one_of(st.just(0), st.integers(1, 10**12), st.integers(0, 2**256 - 1)),
)
txs = st.tuples(
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.lists(logs, max_size=5),
    st.sampled_from(["SUCCESS", "SUCCESS", "REVERT", "OUT_OF_ENERGY"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(txs, max_size=8), st.booleans())
def test_decoder_finds_exactly_the_counting_transfers(
    block: list[tuple[str, list[Log], str]], visible: bool
) -> None:
    infos = [encode_info(txid, lgs, result, visible) for txid, lgs, result in block]
    expected = [
        TokenTransfer(
            txid,
            i,
            "41" + USDT_BODY.hex(),
            "41" + lg.sender.hex(),
            "41" + lg.recipient.hex(),
            lg.amount,
        )
        for txid, lgs, result in block
        for i, lg in enumerate(lgs)
        if counts(lg, result)
    ]
    assert transfers_in_block(infos, USDT) == expected
    # As the follower reads them: straight from the node's JSON into views.
    assert transfers_in_block(decode_infos(json.dumps(infos).encode()), USDT) == expected


def _usdt_log(amount: int, to: bytes = b"\x11" * 20) -> Log:
    return Log(USDT_BODY, TRANSFER, b"\x22" * 20, to, amount)


@pytest.mark.parametrize("visible", [False, True])
def test_several_transfers_in_one_transaction_keep_their_log_index(visible: bool) -> None:
    other = Log(b"\x33" * 20, APPROVAL, b"\x22" * 20, b"\x11" * 20, 5)
    info = encode_info("ab" * 32, [_usdt_log(1), other, _usdt_log(2)], "SUCCESS", visible)
    assert [(t.log_index, t.amount) for t in transfers_in(info, USDT)] == [(0, 1), (2, 2)]


def test_log_address_with_41_prefix_and_0x_topics_are_understood() -> None:
    info = encode_info("cd" * 32, [_usdt_log(7)], "SUCCESS", False)
    info["log"][0]["address"] = "41" + USDT_BODY.hex()
    info["log"][0]["topics"] = ["0x" + t for t in info["log"][0]["topics"]]
    (t,) = transfers_in(info, USDT)
    assert t.amount == 7 and t.recipient == "41" + "11" * 20


def test_failed_transaction_with_logs_never_counts() -> None:
    info = encode_info("ef" * 32, [], "SUCCESS", False)
    info["log"] = [encode_log(_usdt_log(9), False)]
    info["receipt"]["result"] = "REVERT"
    assert list(transfers_in(info, USDT)) == []
    info["receipt"]["result"] = "SUCCESS"
    info["result"] = "FAILED"
    assert list(transfers_in(info, USDT)) == []


def test_plain_trx_transfer_and_malformed_logs_are_ignored() -> None:
    trx = {"id": "aa" * 32, "blockNumber": 5, "receipt": {"net_usage": 268}}
    odd = encode_info("bb" * 32, [_usdt_log(3)], "SUCCESS", False)
    odd["log"].append({"address": USDT_BODY.hex(), "topics": [TRANSFER.hex()], "data": ""})
    odd["log"].append({"address": USDT_BODY.hex(), "topics": "x", "data": "zz"})
    odd["log"].append("not a log")
    assert [t.amount for t in transfers_in_block([trx, odd, "junk"], USDT)] == [3]
    # From the node's JSON: such an answer does not fit the views and takes the plain path.
    decoded = decode_infos(json.dumps([trx, odd, "junk"]).encode())
    assert [t.amount for t in transfers_in_block(decoded, USDT)] == [3]


def test_amount_beyond_int64_is_not_a_transfer() -> None:
    """The amount columns are BIGINT: a larger value cannot be stored (and exceeds any real
    token supply), so it is left out rather than crash the block's transaction."""
    info = encode_info("ab" * 32, [_usdt_log(2**63), _usdt_log(2**63 - 1)], "SUCCESS", False)
    assert [t.log_index for t in transfers_in(info, USDT)] == [1]


def test_topic_that_is_not_hex_is_not_an_address() -> None:
    info = encode_info("cd" * 32, [_usdt_log(5)], "SUCCESS", False)
    info["log"][0]["topics"][2] = "zz" * 32
    assert list(transfers_in(info, USDT)) == []


def test_txid_is_lowercased_so_one_transfer_has_one_key() -> None:
    """(txid, log index) is the once-only key: a node printing the id in upper case must not
    make the same transfer a second row."""
    info = encode_info("AB" * 32, [_usdt_log(5)], "SUCCESS", False)
    (t,) = transfers_in(info, USDT)
    assert t.txid == "ab" * 32
