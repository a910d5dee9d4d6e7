"""TRC20 wire encoding as the devchain writes it: call data and Transfer logs.

This is the *encoder* side only (hex strings, no `0x`); the follower has its own decoder, so
a bug here cannot hide a bug there.
"""

from __future__ import annotations

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_SELECTOR = "a9059cbb"
TRANSFER_FROM_SELECTOR = "23b872dd"
_PAD = "0" * 24


def word_address(hex41: str) -> str:
    """A 32-byte ABI word holding the 20-byte body of a `41…` address."""
    return _PAD + hex41[2:]


def word_uint(value: int) -> str:
    if not 0 <= value < 1 << 256:
        raise ValueError("a uint256 is between 0 and 2**256 - 1")
    return f"{value:064x}"


def transfer_call(to_hex41: str, amount: int) -> str:
    """Call data of `transfer(address,uint256)`."""
    return TRANSFER_SELECTOR + word_address(to_hex41) + word_uint(amount)


def transfer_topics(from_hex41: str, to_hex41: str) -> tuple[str, str, str]:
    return (TRANSFER_TOPIC, word_address(from_hex41), word_address(to_hex41))
