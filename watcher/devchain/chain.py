"""DevChain: an in-memory TRON chain that mines, forks and misbehaves on request.

No I/O; deterministic given a seed and the same sequence of calls. The HTTP server in
`server.py` answers java-tron's API from it, possibly from another thread, so every public
method takes the chain's lock; sealed blocks are immutable and safe to read without it.

Heights: the chain starts with one block at `start_number`. The solidified head trails the
head by `solidify_lag` blocks (never below the first block). `fork(depth)` replaces the last
`depth` blocks by new ones at the same heights, and refuses to touch a solidified block.

Time: `mine()` stamps each block one `block_interval_ms` after its parent, so with
`start_time_ms` given block i is at `start_time_ms + i * block_interval_ms` exactly. Without
it the first block is `solidify_lag` slots before the current time slot (blocks mined up
front to get past the solidified head land near the present instead of running ahead of the
clock, where on-time payments would look late), and `mine_on_clock()`, which the server's
timer calls, stamps a block with the current slot (or the next free one after its parent).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from watcher.clock import now_ms
from watcher.config import MAINNET_USDT
from watcher.devchain import render
from watcher.devchain.blocks import Block, Tx, seal
from watcher.devchain.faults import Fault, FaultQueue
from watcher.devchain.traffic import Traffic
from watcher.tron.address import to_hex

WITNESS_COUNT = 27


class ForkRefused(ValueError):
    """The fork would replace a solidified block."""


@dataclass(frozen=True, slots=True)
class Located:
    """A transaction and the block holding it (None while it waits in the pending pool)."""

    tx: Tx
    block: Block | None


class DevChain:
    def __init__(
        self,
        *,
        usdt_contract: str = MAINNET_USDT,
        solidify_lag: int = 19,
        block_interval_ms: int = 3000,
        start_number: int = 1_000_000,
        start_time_ms: int | None = None,
        seed: int = 0,
    ) -> None:
        if solidify_lag < 0 or block_interval_ms < 1 or start_number < 1:
            raise ValueError("solidify_lag >= 0, block_interval_ms >= 1, start_number >= 1")
        self.usdt_contract = usdt_contract
        self.usdt_hex = to_hex(usdt_contract)
        self.solidify_lag = solidify_lag
        self.block_interval_ms = block_interval_ms
        self.first_number = start_number
        self._wall_clock = start_time_ms is None
        if start_time_ms is None:
            now = now_ms()
            start = now - now % block_interval_ms - solidify_lag * block_interval_ms
        else:
            start = start_time_ms
        self._lock = threading.RLock()
        self._traffic = Traffic(random.Random(seed), self.usdt_hex)
        self.witnesses = tuple(self._traffic.address() for _ in range(WITNESS_COUNT))
        self.default_sender = self._traffic.address()
        self._forks = 0
        self._pending: list[Tx] = []
        self._where: dict[str, Block] = {}
        self._by_id: dict[str, Block] = {}
        self._faults = FaultQueue()
        genesis_parent = f"{start_number - 1:016x}" + self._traffic.txid()[16:]
        self._blocks: list[Block] = []
        self._add(seal(start_number, genesis_parent, start, self.witnesses[0], (), 0))

    # -- reading ------------------------------------------------------------------------

    @property
    def head_number(self) -> int:
        return self._blocks[-1].number

    def heights(self) -> tuple[int, int]:
        """(head, solidified head), read together."""
        with self._lock:
            return self.head_number, self.solid_number

    @property
    def solid_number(self) -> int:
        return max(self.first_number, self.head_number - self.solidify_lag)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def head(self) -> Block:
        with self._lock:
            return self._blocks[-1]

    def solid(self) -> Block:
        with self._lock:
            return self._blocks[self.solid_number - self.first_number]

    def block(self, number: int) -> Block | None:
        """The block at `number` on the current chain, or None when there is none (yet)."""
        with self._lock:
            i = number - self.first_number
            return self._blocks[i] if 0 <= i < len(self._blocks) else None

    def block_by_id(self, block_id: str) -> Block | None:
        with self._lock:
            return self._by_id.get(block_id.lower())

    def find(self, txid: str) -> Located | None:
        """Where a transaction is: in a block, pending, or (None) unknown or forked away."""
        txid = txid.lower()
        with self._lock:
            blk = self._where.get(txid)
            if blk is not None:
                return Located(next(t for t in blk.txs if t.txid == txid), blk)
            for tx in self._pending:
                if tx.txid == txid:
                    return Located(tx, None)
        return None

    # -- making transactions -----------------------------------------------------------

    def transfer(
        self,
        to: str,
        amount_micro: int,
        *,
        sender: str | None = None,
        token: str | None = None,
        result: str = "SUCCESS",
        via_contract: str | None = None,
    ) -> str:
        """A TRC20 transfer queued for the next block; returns its txid.

        `token` defaults to USDT; any other contract is a fake token. A failed `result`
        ("REVERT", "OUT_OF_ENERGY") is on chain with no log. `via_contract`: the transfer is
        made by that contract (the transaction calls it; the log is still the token's).
        """
        with self._lock:
            tx = self._traffic.token_transfer(
                to=to_hex(to),
                amount=amount_micro,
                sender=to_hex(sender) if sender else self.default_sender,
                created_ms=self._now(),
                token=to_hex(token) if token else None,
                result=result,
                via=to_hex(via_contract) if via_contract else None,
            )
            self._pending.append(tx)
            return tx.txid

    def batch_transfer(
        self,
        transfers: list[tuple[str, int]],
        *,
        via_contract: str | None = None,
        sender: str | None = None,
    ) -> str:
        """Several USDT Transfer logs in one transaction of a multisend contract."""
        if not transfers:
            raise ValueError("a batch needs at least one transfer")
        if any(amount < 0 for _, amount in transfers):
            raise ValueError("amount must not be negative")
        with self._lock:
            tx = self._traffic.batch(
                [(to_hex(to), amount) for to, amount in transfers],
                sender=to_hex(sender) if sender else self.default_sender,
                created_ms=self._now(),
                via=to_hex(via_contract) if via_contract else None,
            )
            self._pending.append(tx)
            return tx.txid

    def add_filler(self, n: int) -> None:
        """`n` unrelated transactions for the next block."""
        with self._lock:
            at = self._now()
            self._pending.extend(self._traffic.filler(at) for _ in range(n))

    # -- making blocks -----------------------------------------------------------------

    def mine(self, n: int = 1) -> list[int]:
        """Produce `n` blocks; the pending transactions go into the first."""
        numbers: list[int] = []
        with self._lock:
            for _ in range(n):
                txs, self._pending = tuple(self._pending), []
                numbers.append(self._append(txs).number)
        return numbers

    def mine_on_clock(self) -> int:
        """Produce one block with the pending transactions, stamped with the current time
        slot when the chain follows the wall clock (as `mine(1)` otherwise)."""
        with self._lock:
            txs, self._pending = tuple(self._pending), []
            return self._append(txs, on_clock=self._wall_clock).number

    def make_mainnet_like(
        self,
        blocks: int,
        *,
        txs: int = 300,
        usdt_transfers: int = 100,
        recipients: Sequence[str] | None = None,
    ) -> None:
        """Mine `blocks` blocks of `txs` transactions, `usdt_transfers` of them successful
        USDT transfers (to addresses drawn from `recipients`, random ones by default), the
        rest TRX transfers, other contracts' calls and failed USDT calls. Pending
        transactions go into the first block.

        For replay benchmarks: the bodies a follower reads (header and transaction infos,
        hex form) are rendered here, so serving them costs the server next to nothing."""
        if not 0 <= usdt_transfers <= txs:
            raise ValueError("usdt_transfers must be between 0 and txs")
        pool = [to_hex(r) for r in recipients] if recipients else None
        traffic = self._traffic
        with self._lock:
            for _ in range(blocks):
                at = self._now()
                made = [self._mainnet_transfer(pool, at) for _ in range(usdt_transfers)]
                made.extend(traffic.filler(at, usdt=False) for _ in range(txs - usdt_transfers))
                traffic.rng.shuffle(made)
                pending, self._pending = self._pending, []
                blk = self._append((*pending, *made))
                render.cached(blk, "header", False)
                render.cached(blk, "infos", False)

    def fork(self, depth: int, *, drop: set[str] | None = None, move: bool = True) -> None:
        """Replace the last `depth` blocks with new blocks at the same heights.

        The replaced blocks' transactions, except those in `drop` (which vanish), are kept:
        with `move` they go into the new blocks one height later than before (the last
        block's stay in the last), so each sits in a different block, often at another
        height; without `move` they go back to the pending pool for the next mined block.
        """
        if depth < 1:
            raise ValueError("depth must be at least 1")
        dropped = {t.lower() for t in drop or ()}
        with self._lock:
            first = self.head_number - depth + 1
            if first <= self.solid_number:
                raise ForkRefused(
                    f"a fork of depth {depth} reaches block {first}, "
                    f"solidified up to {self.solid_number}"
                )
            old = self._blocks[-depth:]
            survivors = [[t for t in b.txs if t.txid not in dropped] for b in old]
            placed: list[list[Tx]] = [[] for _ in old]
            if move:
                for i, txs in enumerate(survivors):
                    placed[min(i + 1, depth - 1)].extend(txs)
            else:
                self._pending[:0] = [t for txs in survivors for t in txs]
            self._forks += 1
            parent = self._blocks[-depth - 1].block_id
            new: list[Block] = []
            for blk, txs in zip(old, placed, strict=True):
                witness = self.witnesses[(blk.number + self._forks) % WITNESS_COUNT]
                new.append(
                    seal(blk.number, parent, blk.timestamp, witness, tuple(txs), self._forks)
                )
                parent = new[-1].block_id
            for blk in old:
                self._forget(blk)
            self._blocks[-depth:] = new  # one step: a reader never sees a shorter chain
            for blk in new:
                self._by_id[blk.block_id] = blk
                self._index(blk.txs, blk)

    # -- faults --------------------------------------------------------------------------

    def inject_fault(
        self, kind: str, count: int = 1, *, path: str | None = None, behind: int = 5
    ) -> None:
        """Misbehave on the next `count` requests (to `path` only, when given); see
        `faults.py` for the kinds. `behind`: how stale a `stale_head` answer is."""
        with self._lock:
            self._faults.add(kind, count, path, behind)

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            return self._faults.take(path)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults_queued(self) -> int:
        return len(self._faults)

    # -- internals -----------------------------------------------------------------------

    def _mainnet_transfer(self, pool: list[str] | None, at: int) -> Tx:
        traffic = self._traffic
        to = traffic.rng.choice(pool) if pool else traffic.address()
        return traffic.token_transfer(
            to=to, amount=traffic.amount(), sender=traffic.address(), created_ms=at
        )

    def _now(self) -> int:
        """The time a new transaction is signed: just after the head block."""
        return self._blocks[-1].timestamp + 1_000

    def _append(self, txs: tuple[Tx, ...], *, on_clock: bool = False) -> Block:
        head = self._blocks[-1]
        number = head.number + 1
        timestamp = head.timestamp + self.block_interval_ms
        if on_clock:
            now = now_ms()
            timestamp = max(timestamp, now - now % self.block_interval_ms)
        witness = self.witnesses[number % WITNESS_COUNT]
        blk = seal(number, head.block_id, timestamp, witness, txs, self._forks)
        self._add(blk)
        return blk

    def _add(self, blk: Block) -> None:
        self._blocks.append(blk)
        self._by_id[blk.block_id] = blk
        self._index(blk.txs, blk)

    def _index(self, txs: Iterable[Tx], blk: Block) -> None:
        where = self._where
        for tx in txs:
            where[tx.txid] = blk

    def _forget(self, blk: Block) -> None:
        del self._by_id[blk.block_id]
        for tx in blk.txs:
            self._where.pop(tx.txid, None)
