"""Makes the devchain's transactions: token transfers of every shape, and background traffic.

All randomness comes from one seeded `random.Random`, so a chain built with the same seed and
the same calls is the same chain. Addresses are `41…` hex throughout.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from watcher.devchain.blocks import Log, Tx, TxKind
from watcher.devchain.trc20 import TRANSFER_TOPIC, transfer_call, transfer_topics, word_uint

RESULTS = ("SUCCESS", "REVERT", "OUT_OF_ENERGY")
_SUN_PER_ENERGY = 100
_NET_FEE = 345_000
_APPROVAL_TOPIC = "8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
_BATCH_SELECTOR = "c6427474"  # what a multisend contract is called with; opaque to followers


class Traffic:
    """A factory of transactions; `created_ms` is the time each one was signed."""

    def __init__(self, rng: random.Random, usdt_hex: str) -> None:
        self.rng = rng
        self.usdt_hex = usdt_hex
        self.other_contracts = tuple(self.address() for _ in range(8))
        self.batch_contract = self.address()

    def txid(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def address(self) -> str:
        return f"41{self.rng.getrandbits(160):040x}"

    def token_transfer(
        self,
        *,
        to: str,
        amount: int,
        sender: str,
        created_ms: int,
        token: str | None = None,
        result: str = "SUCCESS",
        via: str | None = None,
    ) -> Tx:
        """`transfer(to, amount)` on `token`, called directly or made by contract `via`."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {', '.join(RESULTS)}")
        if amount < 0:
            raise ValueError("amount must not be negative")
        token = token or self.usdt_hex
        logs: tuple[Log, ...] = ()
        if result == "SUCCESS":
            logs = (Log(token, transfer_topics(sender, to), word_uint(amount)),)
        data = transfer_call(to, amount)
        if via is not None:
            data = _BATCH_SELECTOR + data[8:]
        return self._trigger(sender, via or token, data, logs, result, created_ms)

    def batch(
        self,
        transfers: Sequence[tuple[str, int]],
        *,
        sender: str,
        created_ms: int,
        via: str | None = None,
        token: str | None = None,
    ) -> Tx:
        """One call of a multisend contract emitting one Transfer log per recipient."""
        token = token or self.usdt_hex
        logs = tuple(
            Log(token, transfer_topics(sender, to), word_uint(amount)) for to, amount in transfers
        )
        data = _BATCH_SELECTOR + "".join(transfer_call(to, a)[8:] for to, a in transfers)
        return self._trigger(sender, via or self.batch_contract, data, logs, "SUCCESS", created_ms)

    def trx_transfer(self, created_ms: int) -> Tx:
        return Tx(
            txid=self.txid(),
            kind=TxKind.TRX,
            owner=self.address(),
            target=self.address(),
            amount=1 + self.rng.getrandbits(34) % 10_000_000_000,
            created_ms=created_ms,
        )

    def filler(self, created_ms: int, *, usdt: bool = True) -> Tx:
        """Background traffic: TRX transfers, other contracts' calls and logs, failed USDT
        transfers and (if `usdt`) USDT transfers between strangers."""
        roll = self.rng.random()
        if roll < 0.5:
            return self.trx_transfer(created_ms)
        if roll < 0.8 or (roll < 0.95 and not usdt):
            return self._other_contract(created_ms)
        result = "SUCCESS" if roll < 0.95 else "OUT_OF_ENERGY"
        return self.token_transfer(
            to=self.address(),
            amount=self.amount(),
            sender=self.address(),
            created_ms=created_ms,
            result=result,
        )

    def amount(self) -> int:
        """A plausible USDT amount in micro-USDT (1 to 10 000 USDT)."""
        return 1_000_000 + self.rng.getrandbits(34) % 9_999_000_000

    def _other_contract(self, created_ms: int) -> Tx:
        """A call of some other token: a Transfer or Approval log not emitted by USDT."""
        contract = self.rng.choice(self.other_contracts)
        owner, to = self.address(), self.address()
        topic = TRANSFER_TOPIC if self.rng.random() < 0.7 else _APPROVAL_TOPIC
        log = Log(contract, (topic, *transfer_topics(owner, to)[1:]), word_uint(self.amount()))
        return self._trigger(
            owner, contract, transfer_call(to, self.amount()), (log,), "SUCCESS", created_ms
        )

    def _trigger(
        self, owner: str, contract: str, data: str, logs: tuple[Log, ...], result: str, at: int
    ) -> Tx:
        energy = 14_650 if self.rng.random() < 0.7 else 29_650
        return Tx(
            txid=self.txid(),
            kind=TxKind.TRIGGER,
            owner=owner,
            target=contract,
            data=data,
            result=result,
            logs=logs,
            fee=energy * _SUN_PER_ENERGY + _NET_FEE,
            energy=energy,
            net=345,
            created_ms=at,
        )
