"""hypothesis against the TRC20 log decoder with what a broken or hostile node could send:
any bytes, any JSON, and transaction infos whose fields have any type and near-valid logs
with one thing wrong. Decoding answers views or msgspec.DecodeError (not JSON), finding
transfers never raises, and every transfer it finds is one the columns can hold. The two
ways in (the node's bytes, plain dicts) find the same transfers.

test_decode_logs.py checks that well-formed transfers are found exactly; this checks that
nothing else breaks the follower.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config import MAINNET_USDT
from watcher.tron.decode import (
    MAX_AMOUNT,
    TRANSFER_TOPIC,
    Token,
    TokenTransfer,
    decode_infos,
    transfers_in_block,
    views_of,
)

USDT = Token(MAINNET_USDT)
FUZZ = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_ADDRESS = re.compile(r"41[0-9a-f]{40}")

hexes = st.text("0123456789abcdefABCDEF", max_size=70)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**30, -(2**63), 2**64, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    hexes,
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
address_words = st.binary(min_size=20, max_size=20).map(lambda b: "0" * 24 + b.hex())
uint_words = st.one_of(st.integers(0, MAX_AMOUNT + 1), st.integers(0, 2**256 - 1)).map(
    lambda n: f"{n:064x}"
)
words = st.one_of(address_words, uint_words, hexes.map(lambda h: "0x" + h), anything)
token_forms = st.sampled_from(
    [USDT.hex, USDT.hex[2:], USDT.base58, "0x" + USDT.hex[2:], USDT.hex.upper()]
)
# Mostly a Transfer of the token with one part (or none) broken.
logs = st.fixed_dictionaries(
    {
        "address": st.one_of(token_forms, token_forms, anything),
        "topics": st.one_of(
            st.tuples(st.just(TRANSFER_TOPIC), address_words, address_words).map(list),
            st.lists(st.one_of(st.just(TRANSFER_TOPIC), words), min_size=3, max_size=3),
            st.lists(words, max_size=4),
            anything,
        ),
        "data": st.one_of(uint_words, uint_words.map(lambda w: "0x" + w + "ff"), words),
    },
    optional={"extra": anything},
)
infos = st.fixed_dictionaries(
    {
        "id": st.one_of(hexes, anything),
        "receipt": st.one_of(st.just({"result": "SUCCESS"}), anything),
        "log": st.one_of(st.lists(st.one_of(logs, logs, anything), max_size=4), anything),
    },
    optional={"result": st.one_of(st.just("FAILED"), anything), "blockNumber": anything},
)
blocks = st.one_of(st.lists(st.one_of(infos, anything), max_size=5), anything)


def _storable(found: list[TokenTransfer], size: int) -> None:
    for transfer in found:
        assert 0 < transfer.amount <= MAX_AMOUNT
        assert _ADDRESS.fullmatch(transfer.sender) and _ADDRESS.fullmatch(transfer.recipient)
        assert transfer.token == USDT.hex and transfer.txid == transfer.txid.lower()
        assert 0 <= transfer.log_index < size


def _found(decoded: Any) -> list[TokenTransfer]:
    if not isinstance(decoded, list):
        return []  # the follower refuses an answer that is not a list
    found = transfers_in_block(decoded, USDT)
    longest = max((len(i.log or []) for i in views_of(decoded) if i is not None), default=0)
    _storable(found, longest)
    return found


@FUZZ
@given(content=st.binary(max_size=300))
def test_any_bytes_decode_or_are_not_json(content: bytes) -> None:
    try:
        decoded = decode_infos(content)
    except msgspec.DecodeError:
        return
    _found(decoded)


@FUZZ
@given(block=blocks)
def test_infos_of_any_shape_never_break_the_decoder(block: Any) -> None:
    content = json.dumps(block).encode()
    from_node = _found(decode_infos(content))
    if isinstance(block, list):
        assert _found(block) == from_node


def _transfer(sender: bytes, recipient: bytes, amount: int) -> dict[str, Any]:
    return {
        "id": "ab" * 32,
        "receipt": {"result": "SUCCESS"},
        "log": [
            {
                "address": USDT.hex,
                "topics": [TRANSFER_TOPIC, "0" * 24 + sender.hex(), "0" * 24 + recipient.hex()],
                "data": f"{amount:064x}",
            }
        ],
    }


FIELDS = ["id", "receipt", "result", "log", "log.address", "log.data", "log.topics"]
FIELDS += ["log.topics.0", "log.topics.1", "log.topics.2"]


def _mutate(info: dict[str, Any], where: str, value: Any) -> None:
    """Set the field named `where` ("receipt", "log.data", "log.topics.1") to `value`."""
    parts = where.split(".")
    if len(parts) == 1:
        info[where] = value
    elif len(parts) == 2:
        info["log"][0][parts[1]] = value
    else:
        info["log"][0]["topics"][int(parts[2])] = value


edits = st.one_of(
    anything,
    hexes,
    st.sampled_from(["", "0x", " ", "0" * 64, "f" * 64, "0" * 63, "0" * 65, "\u0661" * 64]),
)


@FUZZ
@given(
    sender=st.binary(min_size=20, max_size=20),
    recipient=st.binary(min_size=20, max_size=20),
    amount=st.integers(1, MAX_AMOUNT),
    where=st.one_of(st.none(), st.sampled_from(FIELDS)),
    value=edits,
)
def test_a_transfer_with_one_part_broken_is_read_or_left_out(
    sender: bytes, recipient: bytes, amount: int, where: str | None, value: Any
) -> None:
    info = _transfer(sender, recipient, amount)
    if where is not None:
        _mutate(info, where, value)
    found = _found(decode_infos(json.dumps([info]).encode()))
    assert _found([info]) == found
    if where is None:
        assert [(t.sender, t.recipient, t.amount) for t in found] == [
            ("41" + sender.hex(), "41" + recipient.hex(), amount)
        ]
