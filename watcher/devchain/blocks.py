"""The devchain's records: transactions with their logs, and sealed blocks.

Addresses are kept in hex with the `41` prefix; the renderer turns them into whatever form a
request asks for. A transaction carries no block number: the block it sits in gives it one,
so a fork can move it to another block without copying it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

EMPTY_ROOT = "0" * 64


class TxKind(StrEnum):
    TRIGGER = "TriggerSmartContract"
    TRX = "TransferContract"


@dataclass(frozen=True, slots=True)
class Log:
    address: str  # the emitting contract, `41…`
    topics: tuple[str, ...]
    data: str


@dataclass(frozen=True, slots=True)
class Tx:
    txid: str
    kind: TxKind
    owner: str  # `41…`
    target: str  # the called contract (trigger) or the TRX recipient (transfer), `41…`
    data: str = ""  # call data (trigger)
    amount: int = 0  # sun (TRX transfer)
    result: str = "SUCCESS"  # contractRet / receipt.result
    logs: tuple[Log, ...] = ()
    fee: int = 0
    energy: int = 0
    net: int = 268
    created_ms: int = 0

    @property
    def failed(self) -> bool:
        return self.result != "SUCCESS"


@dataclass(slots=True, eq=False)
class Block:
    number: int
    block_id: str
    parent: str
    timestamp: int
    witness: str  # `41…`
    txs: tuple[Tx, ...]
    tx_root: str
    # Rendered JSON bodies, filled on first request: a block never changes once sealed.
    cache: dict[str, bytes] = field(default_factory=dict)


def tx_root(txs: tuple[Tx, ...]) -> str:
    """A stand-in for the transaction trie root: a hash over the txids, zeros when empty."""
    if not txs:
        return EMPTY_ROOT
    h = hashlib.sha256()
    for tx in txs:
        h.update(bytes.fromhex(tx.txid))
    return h.hexdigest()


def block_id(number: int, parent: str, root: str, salt: int) -> str:
    """64 hex: the block number in the first 8 bytes, a hash of the contents after it."""
    digest = hashlib.sha256(f"{number}:{parent}:{root}:{salt}".encode()).hexdigest()
    return f"{number:016x}" + digest[16:]


def seal(
    number: int, parent: str, timestamp: int, witness: str, txs: tuple[Tx, ...], salt: int
) -> Block:
    root = tx_root(txs)
    return Block(
        number=number,
        block_id=block_id(number, parent, root, salt),
        parent=parent,
        timestamp=timestamp,
        witness=witness,
        txs=txs,
        tx_root=root,
    )
