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

import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import structlog

from watcher.tron.address import PREFIX_HEX, to_base58, to_hex

log = structlog.get_logger("watcher.tron.decode")

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SUCCESS = "SUCCESS"
MAX_AMOUNT = 2**63 - 1  # BIGINT


class TokenTransfer(msgspec.Struct, frozen=True, gc=False):
    """One Transfer log: `amount` base units of `token` from `sender` to `recipient` (`41…`).

    A frozen msgspec Struct rather than a frozen dataclass: made ~100 times per block and held
    while the block waits to be stored, it costs a tenth to build and is not tracked by the
    garbage collector (its fields are strings and ints: it can be in no reference cycle)."""

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
        if type(printed) is not str:
            return isinstance(printed, str) and self.is_this(str(printed))
        return printed in self._forms or printed.lower() in self._forms


# A 32-byte word in hex, optionally 0x-prefixed (what `removeprefix("0x")` then 64 hex digits
# accepts). A regular expression checks and slices it in one C call: this runs for every
# Transfer log of the token, about a hundred per mainnet block.
_ADDRESS_WORD = re.compile(r"(?:0x)?[0-9a-fA-F]{24}([0-9a-fA-F]{40})")
_UINT_WORD = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")


def word_address(topic: object) -> str | None:
    """The `41…` address in a 32-byte topic word, or None if it is not one."""
    if not isinstance(topic, str):
        return None
    found = _ADDRESS_WORD.fullmatch(topic)
    return None if found is None else PREFIX_HEX + found[1].lower()


def word_uint(data: object) -> int | None:
    """The uint256 in the first 32 bytes of `data`, or None if there is none."""
    if not isinstance(data, str):
        return None
    found = _UINT_WORD.match(data)  # int(…, 16) alone would also take "-…", "+…", "_", spaces
    return None if found is None else int(found[1], 16)


# -- transaction infos as the follower reads them ----------------------------------------------
#
# A block's infos are 150-400 KB of JSON on mainnet; the follower needs a few fields of each.
# They are decoded straight into these views (msgspec skips every other field unparsed), about
# twice as fast as building dicts and reading them. Fields whose type a node could get wrong
# are `Any`, checked where they are read, as with dicts; an answer of another shape (a receipt
# or log entry that is not an object) does not fit the views and is decoded as plain JSON,
# then viewed by `view_of` with the same rules: the two ways always find the same transfers.
# The views are not tracked by the garbage collector (gc=False: decoded JSON holds no cycle):
# ~800 fewer tracked objects per block, so fewer and cheaper collections while catching up.


class LogView(msgspec.Struct, gc=False):
    address: Any = None
    topics: Any = None
    data: Any = None


class ReceiptView(msgspec.Struct, gc=False):
    result: Any = None


class InfoView(msgspec.Struct, gc=False):
    id: Any = None
    blockNumber: Any = None
    blockTimeStamp: Any = None
    result: Any = None
    receipt: ReceiptView | None = None
    log: list[LogView] | None = None


_INFOS = msgspec.json.Decoder(list[InfoView | None] | dict[str, Any], float_hook=Decimal)
_PLAIN = msgspec.json.Decoder(float_hook=Decimal)
_NOT_A_LOG = LogView()


def decode_infos(content: bytes) -> Any:
    """A gettransactioninfobyblocknum answer: a list of InfoView (None for an entry that is not
    an object), or whatever else the node sent (an `{"Error": …}` object, say), as plain JSON.
    msgspec.DecodeError when it is not JSON."""
    try:
        return _INFOS.decode(content)
    except msgspec.ValidationError:
        data = _PLAIN.decode(content)
        return [view_of(i) for i in data] if isinstance(data, list) else data


def view_of(info: object) -> InfoView | None:
    """A transaction info given as plain JSON (a dict), viewed as the fast path sees it; None
    when it is not an object. A log entry that is not an object keeps its place (the log
    index counts every log) and never matches."""
    if isinstance(info, InfoView) or info is None:
        return info
    if not isinstance(info, Mapping):
        return None
    receipt, logs = info.get("receipt"), info.get("log")
    return InfoView(
        id=info.get("id"),
        blockNumber=info.get("blockNumber"),
        blockTimeStamp=info.get("blockTimeStamp"),
        result=info.get("result"),
        receipt=ReceiptView(receipt.get("result")) if isinstance(receipt, Mapping) else None,
        log=[_log_view(e) for e in logs] if isinstance(logs, list | tuple) else None,
    )


def _log_view(entry: object) -> LogView:
    if not isinstance(entry, Mapping):
        return _NOT_A_LOG
    return LogView(entry.get("address"), entry.get("topics"), entry.get("data"))


def views_of(infos: Sequence[object]) -> list[InfoView | None]:
    return [i if type(i) is InfoView else view_of(i) for i in infos]


def receipt_succeeded(info: Mapping[str, Any] | InfoView) -> bool:
    """SUCCESS in the receipt, and no top-level FAILED (java-tron sets both on failure)."""
    if isinstance(info, InfoView):
        receipt = info.receipt
        return info.result != "FAILED" and receipt is not None and receipt.result == SUCCESS
    if info.get("result") == "FAILED":
        return False
    receipt = info.get("receipt")
    return isinstance(receipt, Mapping) and receipt.get("result") == SUCCESS


def _is_transfer_topic(topic: object) -> bool:
    return topic == TRANSFER_TOPIC or str(topic).removeprefix("0x").lower() == TRANSFER_TOPIC


def transfers_in(info: Mapping[str, Any] | InfoView, token: Token) -> Iterator[TokenTransfer]:
    """The positive Transfers of `token` in one successful transaction info.

    `log_index` is the log's position in the info's `log` list, counting every log, so
    it is stable whatever else the transaction emitted.
    """
    view = view_of(info)
    if view is not None and view.log:
        yield from _transfers(view, token)


def transfers_in_block(infos: Sequence[object], token: Token) -> list[TokenTransfer]:
    """Every counting Transfer in a block's infos (views, or plain JSON dicts)."""
    out: list[TokenTransfer] = []
    for info in views_of(infos):
        if info is not None and info.log:  # most transactions emit no log: skip them at once
            out.extend(_transfers(info, token))
    return out


def _transfers(info: InfoView, token: Token) -> list[TokenTransfer]:
    """This runs for every log of a block (a few hundred): the checks are written out."""
    if not receipt_succeeded(info) or not info.log:
        return []
    txid = info.id.lower() if isinstance(info.id, str) else str(info.id or "").lower()
    out = []
    for index, entry in enumerate(info.log):
        if not token.is_this(entry.address):
            continue
        topics = entry.topics
        if not isinstance(topics, list) or len(topics) != 3 or not _is_transfer_topic(topics[0]):
            continue
        sender, recipient = word_address(topics[1]), word_address(topics[2])
        amount = word_uint(entry.data)
        if sender is None or recipient is None or amount is None or amount <= 0:
            continue
        if amount > MAX_AMOUNT:
            log.error(
                "decode.amount_out_of_range",
                txid=txid,
                log_index=index,
                to=recipient,
                amount=str(amount),
            )
            continue
        out.append(TokenTransfer(txid, index, token.hex, sender, recipient, amount))
    return out
