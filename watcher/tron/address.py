"""TRON addresses: Base58Check (`T…`, 34 chars) and hex (`41` + 20 bytes, 42 hex digits).

java-tron answers with hex unless asked for `visible=true`; logs carry the 20-byte form
without the `41` prefix. Everything here is pure and fast enough to call per log, but the
follower converts watched addresses to hex once and compares hex, so base58 is only computed
for the few logs that match.
"""

from __future__ import annotations

import hashlib

PREFIX = 0x41
PREFIX_HEX = "41"
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


class InvalidAddress(ValueError):
    """Not a TRON address."""


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    chars = []
    while n:
        n, r = divmod(n, 58)
        chars.append(_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(chars))


def b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        i = _INDEX.get(c)
        if i is None:
            raise InvalidAddress(f"{text!r} has a character outside base58")
        n = n * 58 + i
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


def from_bytes(raw: bytes) -> str:
    """Base58Check of 21 bytes (`0x41` ‖ 20) or of the 20-byte body alone."""
    if len(raw) == 20:
        raw = bytes([PREFIX]) + raw
    if len(raw) != 21 or raw[0] != PREFIX:
        raise InvalidAddress("a TRON address is 0x41 followed by 20 bytes")
    return b58encode(raw + _checksum(raw))


def to_bytes(address: str) -> bytes:
    """The 21 bytes (`0x41` ‖ 20) of a base58 address; checks length, prefix and checksum."""
    raw = b58decode(address)
    if len(raw) != 25:
        raise InvalidAddress(f"{address!r} does not decode to 25 bytes")
    body, check = raw[:21], raw[21:]
    if body[0] != PREFIX:
        raise InvalidAddress(f"{address!r} is not a TRON mainnet address")
    if _checksum(body) != check:
        raise InvalidAddress(f"{address!r} has a bad checksum")
    return body


def to_hex(address: str) -> str:
    """`T…` -> `41…` (42 lowercase hex digits). Hex input is checked and normalized."""
    if is_hex_form(address):
        return hex_with_prefix(address)
    return to_bytes(address).hex()


def to_base58(address: str) -> str:
    """`41…` (42 hex) or the 20-byte form (40 hex) -> `T…`. Base58 input is checked."""
    if is_hex_form(address):
        return from_bytes(bytes.fromhex(hex_with_prefix(address)))
    to_bytes(address)
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
        to_bytes(address)
    except InvalidAddress:
        return False
    return len(address) == 34 and address.startswith("T")
