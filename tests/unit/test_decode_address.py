"""TRON address forms: base58check <-> hex, checked against bip_utils as an independent encoder."""

from __future__ import annotations

import pytest
from bip_utils import Base58Encoder
from hypothesis import given
from hypothesis import strategies as st

from watcher.tron.address import InvalidAddress, is_valid, to_base58, to_hex

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_HEX = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"


def test_usdt_contract_both_ways() -> None:
    assert to_hex(USDT) == USDT_HEX
    assert to_base58(USDT_HEX) == USDT
    assert to_base58(USDT_HEX[2:]) == USDT  # the 20-byte form found in logs
    assert to_base58("0x" + USDT_HEX.upper()) == USDT


@pytest.mark.parametrize(
    "bad",
    [USDT[:-1] + "u", USDT[:-1], "0" + USDT[1:], "", "41" + "zz" * 20, "42" + "00" * 20],
)
def test_rejects_malformed(bad: str) -> None:
    assert not is_valid(bad)
    with pytest.raises(InvalidAddress):
        to_hex(bad)


# Base58Check strings that start with T and carry a valid checksum, but whose version byte is
# 0x40 or 0x42, not TRON's 0x41: a library that checks only the checksum and length takes them.
WRONG_VERSION = ["T4AcVAKD1vmNJgGbTkhBWt7rUVNkB5wCdd", "TtYVP8bMEVVGodhXpCH3CxTPDhdHMExR2q"]


@pytest.mark.parametrize(
    "bad",
    [
        *WRONG_VERSION,
        "42" + "00" * 20,  # hex with another version byte: encodes to a T… string too
        "0x42" + "00" * 20,
        "0x" + "41" + "zz" * 20,
        "41" + "00" * 20 + "00",  # 22 bytes
        " " + USDT,
        USDT + "\n",
        "T" + "1" * 33,
    ],
)
def test_rejects_what_a_checksum_alone_lets_through(bad: str) -> None:
    assert not is_valid(bad)
    with pytest.raises(InvalidAddress):
        to_hex(bad)
    with pytest.raises(InvalidAddress):
        to_base58(bad)


def test_twenty_byte_forms_get_the_tron_prefix() -> None:
    body = USDT_HEX[2:]
    assert to_hex(body) == USDT_HEX and to_hex("0x" + body) == USDT_HEX
    assert to_hex(USDT_HEX.upper()) == USDT_HEX


@given(st.binary(min_size=20, max_size=20))
def test_roundtrip_matches_independent_encoder(body: bytes) -> None:
    raw = b"\x41" + body
    expected = Base58Encoder.CheckEncode(raw)
    assert to_base58(raw.hex()) == expected
    assert to_hex(expected) == raw.hex()
    assert is_valid(expected) and expected.startswith("T") and len(expected) == 34
