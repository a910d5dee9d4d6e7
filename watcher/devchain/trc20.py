"""TRC20 wire encoding as the devchain writes it: call data and Transfer logs.

This is the *encoder* side only (hex strings, no `0x`), done with tronpy's ABI codec (eth_abi
with TRON addresses), while the follower decodes with its own few lines (tron/decode.py): the
two sides share no code, so a bug in one cannot hide a bug in the other.
"""

from __future__ import annotations

from tronpy.abi import trx_abi

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_SELECTOR = "a9059cbb"
TRANSFER_FROM_SELECTOR = "23b872dd"


def word_address(hex41: str) -> str:
    """A 32-byte ABI word holding the 20-byte body of a `41…` address."""
    return _encode(["address"], [hex41])


def word_uint(value: int) -> str:
    if not 0 <= value < 1 << 256:
        raise ValueError("a uint256 is between 0 and 2**256 - 1")
    return _encode(["uint256"], [value])


def transfer_call(to_hex41: str, amount: int) -> str:
    """Call data of `transfer(address,uint256)`."""
    return TRANSFER_SELECTOR + _encode(["address", "uint256"], [to_hex41, amount])


def transfer_topics(from_hex41: str, to_hex41: str) -> tuple[str, str, str]:
    return (TRANSFER_TOPIC, word_address(from_hex41), word_address(to_hex41))


def _encode(types: list[str], values: list[object]) -> str:
    return str(trx_abi.encode(types, values).hex())
