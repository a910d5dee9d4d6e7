"""TRON addresses: Base58Check (`T…`, 34 chars) and hex (`41` + 20 bytes, 42 hex digits).

java-tron answers with hex unless asked for `visible=true`; logs carry the 20-byte form
without the `41` prefix. The Base58Check encoding and checksum are tronpy's (`tronpy.keys`).
tronpy checks the checksum and the length but not the version byte (it encodes `42…` hex, and
accepts a `T…` string whose payload starts with 0x40 or 0x42), and lets `ValueError` out of
bad hex: the shape is checked here first, so only a mainnet address (0x41) ever passes and
every refusal is an InvalidAddress.

Everything here is pure and fast enough to call per log, but the follower converts watched
addresses to hex once and compares hex, so base58 is only computed for the few logs that
match (and cached there).
"""

from __future__ import annotations

from tronpy import keys
from tronpy.exceptions import BadAddress

PREFIX = 0x41
PREFIX_HEX = "41"
_BASE58_LENGTH = 34
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


class InvalidAddress(ValueError):
    """Not a TRON address."""


def to_hex(address: str) -> str:
    """`T…` -> `41…` (42 lowercase hex digits). Hex input is checked and normalized."""
    if is_hex_form(address):
        return hex_with_prefix(address)
    return _base58_payload(address).hex()


def to_base58(address: str) -> str:
    """`41…` (42 hex) or the 20-byte form (40 hex) -> `T…`. Base58 input is checked."""
    if is_hex_form(address):
        raw = bytes.fromhex(hex_with_prefix(address))
        return str(keys.to_base58check_address(raw))
    _base58_payload(address)
    return address


def hex_with_prefix(address: str) -> str:
    """40 or 42 hex digits (optionally `0x`) -> `41` + 40 lowercase hex digits."""
    h = address.lower().removeprefix("0x")
    if len(h) == 40:
        h = PREFIX_HEX + h
    if len(h) != 42 or not h.startswith(PREFIX_HEX) or not _HEXDIGITS.issuperset(h):
        raise InvalidAddress(f"{address!r} is not a hex TRON address")
    return h


def is_hex_form(address: str) -> bool:
    h = address.removeprefix("0x")
    return len(h) in (40, 42) and _HEXDIGITS.issuperset(h)


def is_valid(address: str) -> bool:
    """A well-formed base58 TRON address (the form users and config use)."""
    try:
        _base58_payload(address)
    except InvalidAddress:
        return False
    return True


def _base58_payload(address: str) -> bytes:
    """The 21 bytes (`0x41` ‖ 20) of a `T…` address; checks shape, checksum and version."""
    if len(address) != _BASE58_LENGTH or not address.startswith("T"):
        raise InvalidAddress(f"{address!r} is not a TRON address (34 characters starting with T)")
    try:
        raw = bytes(keys.to_raw_address(address))
    except (BadAddress, ValueError):
        raise InvalidAddress(
            f"{address!r} is not a TRON address (a character outside base58, or a bad checksum)"
        ) from None
    if len(raw) != 21 or raw[0] != PREFIX:
        raise InvalidAddress(f"{address!r} is not a TRON mainnet address")
    return raw
