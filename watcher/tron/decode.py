"""TRC20 Transfer logs out of java-tron transaction infos.

A transfer counts only if it is a log (not call data: wallets sometimes encode 21-byte
addresses in call data, and a failed call has the right recipient in its data but no log)
emitted by the configured token contract, with topic0 = Transfer, in a transaction whose
receipt says SUCCESS, moving a positive amount. Everything else (fake tokens with the same
symbol, REVERT / OUT_OF_ENERGY, zero-value "address poisoning") is not a transfer here.

Both address forms java-tron prints are understood: hex (log address as the bare 20 bytes,
sometimes with `41`) and base58 (`visible=true`). Topics and data are hex in both.
Recipient and sender come back as `41…` hex; the follower compares hex and only turns the
few matches into base58. Txids are lowercased: (txid, log index) is the key that makes each
transfer count once, so two printings of one id must not make two keys.

An amount above INT64_MAX is not a transfer here: the amount columns are BIGINT, so it could
not be stored (the block's transaction would fail on every retry and the follower would stop
there), and no real token moves that much (USDT's whole supply is ~1e17 micro-USDT).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from watcher.tron.address import PREFIX_HEX, to_base58, to_hex

log = structlog.get_logger("watcher.tron.decode")

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SUCCESS = "SUCCESS"
MAX_AMOUNT = 2**63 - 1  # BIGINT
_WORD = 64
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class TokenTransfer:
    """One Transfer log: `amount` base units of `token` from `sender` to `recipient` (`41…`)."""

    txid: str
    log_index: int
    token: str
    sender: str
    recipient: str
    amount: int


class Token:
    """Every printed form of one contract address, for a set lookup per log."""

    def __init__(self, address: str):
        self.hex = to_hex(address)  # validates; `41…`
        body = self.hex[2:]
        self.base58 = to_base58(self.hex)
        self._forms = frozenset({self.hex, body, "0x" + body, self.base58})

    def is_this(self, printed: object) -> bool:
        if not isinstance(printed, str):
            return False
        return printed in self._forms or printed.lower() in self._forms


def receipt_succeeded(info: Mapping[str, Any]) -> bool:
    """SUCCESS in the receipt, and no top-level FAILED (java-tron sets both on failure)."""
    if info.get("result") == "FAILED":
        return False
    receipt = info.get("receipt")
    return isinstance(receipt, Mapping) and receipt.get("result") == SUCCESS


def word_address(topic: object) -> str | None:
    """The `41…` address in a 32-byte topic word, or None if it is not one."""
    if not isinstance(topic, str):
        return None
    word = topic.removeprefix("0x").lower()
    if len(word) != _WORD or not _HEX.issuperset(word):
        return None
    return PREFIX_HEX + word[-40:]


def word_uint(data: object) -> int | None:
    """The uint256 in the first 32 bytes of `data`, or None if there is none."""
    if not isinstance(data, str):
        return None
    word = data.removeprefix("0x")[:_WORD].lower()
    if len(word) != _WORD or not _HEX.issuperset(word):
        return None  # int(…, 16) would also take "-…", "+…", "_" and spaces
    return int(word, 16)


def transfer_of(
    txid: str, index: int, log: Mapping[str, Any], token: Token
) -> TokenTransfer | None:
    """The Transfer in one log entry of `token`, or None (other contract, event or shape)."""
    if not token.is_this(log.get("address")):
        return None
    topics = log.get("topics")
    if not isinstance(topics, list) or len(topics) != 3:
        return None
    if str(topics[0]).removeprefix("0x").lower() != TRANSFER_TOPIC:
        return None
    sender, recipient = word_address(topics[1]), word_address(topics[2])
    amount = word_uint(log.get("data"))
    if sender is None or recipient is None or amount is None:
        return None
    return TokenTransfer(txid, index, token.hex, sender, recipient, amount)


def transfers_in(info: Mapping[str, Any], token: Token) -> Iterator[TokenTransfer]:
    """The positive Transfers of `token` in one successful transaction info.

    `log_index` is the log's position in the info's `log` list, counting every log, so
    it is stable whatever else the transaction emitted.
    """
    logs = info.get("log")
    if not logs or not receipt_succeeded(info):
        return
    txid = str(info.get("id", "")).lower()
    for index, entry in enumerate(logs):
        if not isinstance(entry, Mapping):
            continue
        found = transfer_of(txid, index, entry, token)
        if found is None or found.amount <= 0:
            continue
        if found.amount > MAX_AMOUNT:
            log.error(
                "decode.amount_out_of_range",
                txid=txid,
                log_index=index,
                to=found.recipient,
                amount=str(found.amount),
            )
            continue
        yield found


def transfers_in_block(infos: list[Any], token: Token) -> list[TokenTransfer]:
    out: list[TokenTransfer] = []
    for info in infos:
        if isinstance(info, Mapping):
            out.extend(transfers_in(info, token))
    return out
