"""Payments made through the API and paid on the devchain, the way payers pay.

Kinds (what the payer does, and what the payment must end as):
    full      the exact amount at once                          completed
    partial   a third, then (once the API shows it received) the rest   completed
    over      1.25 x the amount in one transfer                 completed, the excess kept
    late      the exact amount after the deadline               expired, late
    fork      the exact amount, then the blocks holding it are forked away: moved to
              another block (or, for a third, dropped from the chain and paid again)
                                                                completed, credited once

An order whose create is answered with less than half its time left (the daemon was killed
after committing it and took that long to come back) is paid after its deadline instead, as
a `late` one, and counted as such.

Creates go to the API ports in turn and are retried on what a restart or an outage answers
(no connection, 502, 503, 429) with the same externalRef and amount, so a create whose
answer a SIGKILL swallowed must come back as the same payment.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from watcher.devchain.chain import DevChain, ForkRefused
from watcher.money import to_micro

KINDS = ("full", "partial", "over", "late", "fork")
MIX = {"full": 40, "partial": 20, "over": 15, "late": 10, "fork": 15}
RETRIED = {429, 502, 503, 504}


def expected_status(kind: str) -> str:
    return "expired" if kind == "late" else "completed"


@dataclass
class Sent:
    txid: str
    amount_micro: int
    at_ms: int


@dataclass
class Order:
    index: int
    kind: str
    ref: str
    amount_try: Decimal
    txn: str = ""
    address: str = ""
    amount_micro: int = 0
    expires_ms: int = 0
    sent: list[Sent] = field(default_factory=list)
    fork: str = ""  # moved | dropped | missed
    turned_late: str = ""  # the kind it had, when its create was answered too late to pay on time
    error: str = ""
    done: bool = False

    @property
    def due_micro(self) -> int:
        """What the payment must show as received (late: as late) at the end."""
        if self.kind == "over":
            return self.amount_micro * 5 // 4
        return self.amount_micro


def plan(
    n: int, rng: random.Random, prefix: str, mix: dict[str, int] | None = None, start: int = 0
) -> list[Order]:
    mix = mix or MIX
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=n)
    return [
        Order(i, kind, f"{prefix}-{i:05d}", Decimal(rng.randrange(10_000, 500_000)) / 100)
        for i, kind in enumerate(kinds, start)
    ]


class Api:
    """Creates and status reads over every API process of the layout."""

    def __init__(self, ports: list[int], api_key: str, callback_url: str) -> None:
        self.bases = [f"http://127.0.0.1:{p}" for p in ports]
        self.callback_url = callback_url
        self.http = httpx.AsyncClient(timeout=15, headers={"x-api-key": api_key})
        self.answers: Counter[str] = Counter()  # create answers by status (or "no connection")
        self._turn = 0

    def _base(self) -> str:
        self._turn += 1
        return self.bases[self._turn % len(self.bases)]

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create(self, order: Order, deadline_s: float) -> httpx.Response | None:
        """The first answer that is not a retryable one, or None at the deadline."""
        body = {
            "fullName": "Ayşe Yılmaz",
            "externalRef": order.ref,
            "provider": "crypto",
            "callbackUrl": self.callback_url,
        }
        raw = json.dumps(body)[:-1] + f', "amount": {order.amount_try}}}'  # exact, as typed
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                resp = await self.http.post(
                    f"{self._base()}/api/payment/create",
                    content=raw,
                    headers={"content-type": "application/json"},
                )
            except httpx.TransportError:
                self.answers["no connection"] += 1
                await asyncio.sleep(0.3)
                continue
            self.answers[str(resp.status_code)] += 1
            if resp.status_code not in RETRIED:
                return resp
            await asyncio.sleep(0.3)
        return None

    async def status(self, txn: str) -> dict[str, Any] | None:
        try:
            resp = await self.http.get(
                f"{self._base()}/api/payment/status", params={"transactionId": txn}
            )
        except httpx.TransportError:
            return None
        if resp.status_code != 200:
            return None
        found: dict[str, Any] = json.loads(resp.content, parse_float=Decimal)["transaction"]
        return found


@dataclass
class ForkRecord:
    at_s: float
    head: int
    depth: int
    moved: int  # our fork-kind transfers that moved to another block
    dropped: int  # … that vanished (paid again by their payer)
    bystanders: int  # other transactions in the replaced blocks (moved with them)


class Forker:
    """Every `every_s`, forks away the blocks holding the fork-kind transfers that are mined
    but not solidified yet (at least one block deep, so the daemon has most likely seen them
    confirming); each transfer is moved to another block, or dropped (`drop_share`)."""

    def __init__(
        self, chain: DevChain, rng: random.Random, t0: float, every_s: float = 1.0
    ) -> None:
        self.chain = chain
        self.rng = rng
        self.t0 = t0
        self.every_s = every_s
        self.drop_share = 1 / 3
        self.records: list[ForkRecord] = []
        self.refused = 0
        self._queue: dict[str, asyncio.Future[str]] = {}

    def submit(self, txid: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue[txid] = future
        return future

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.every_s)
            self.round()
        for future in self._queue.values():
            if not future.done():
                future.set_result("missed")

    def round(self) -> None:
        chain = self.chain
        head, solid = chain.heights()
        where: dict[str, tuple[int, str]] = {}
        for txid in list(self._queue):
            found = chain.find(txid)
            if found is None or found.block is None:
                continue  # still pending
            if found.block.number <= solid + 1:
                self._resolve(txid, "missed")  # too deep to fork by the time we got to it
                continue
            if found.block.number < head:
                where[txid] = (found.block.number, found.block.block_id)
        if not where:
            return
        depth = head - min(n for n, _ in where.values()) + 1
        drop = {t for t in where if self.rng.random() < self.drop_share}
        total = sum(len(b.txs) for n in range(head - depth + 1, head + 1) if (b := chain.block(n)))
        try:
            chain.fork(depth, drop=drop, move=True)
        except ForkRefused:
            self.refused += 1
            return
        moved = dropped = 0
        for txid, (_, block_id) in where.items():
            found = chain.find(txid)
            if found is None or found.block is None:
                if txid in drop:
                    dropped += 1
                    self._resolve(txid, "dropped")
                continue
            if found.block.block_id != block_id:
                moved += 1
                self._resolve(txid, "moved")
        at = time.monotonic() - self.t0
        bystanders = max(0, total - len(where))
        self.records.append(ForkRecord(at, head, depth, moved, dropped, bystanders))

    def _resolve(self, txid: str, outcome: str) -> None:
        future = self._queue.pop(txid)
        if not future.done():
            future.set_result(outcome)


class Payer:
    """Runs each order: create, then pay as its kind says."""

    def __init__(
        self, api: Api, chain: DevChain, forker: Forker, *, ttl_s: float, creates_at_once: int = 16
    ) -> None:
        self.api = api
        self.chain = chain
        self.forker = forker
        self.ttl_s = ttl_s
        self._creating = asyncio.Semaphore(creates_at_once)

    async def run(self, order: Order) -> None:
        try:
            if await self._create(order):
                await self._pay(order)
        except Exception as exc:  # a harness fault: reported with the order, never hidden
            order.error = f"harness: {exc!r}"
        order.done = True

    async def _create(self, order: Order) -> bool:
        async with self._creating:
            resp = await self.api.create(order, deadline_s=240)
        if resp is None:
            order.error = "create: no answer but retryable ones for 240 s"
            return False
        body = json.loads(resp.content, parse_float=Decimal)
        if resp.status_code != 200:
            order.error = f"create: {resp.status_code} {body.get('error', body)}"
            return False
        data = body["data"]
        order.txn = body["transactionId"]
        order.address = data["walletAddress"]
        order.amount_micro = to_micro(Decimal(data["amount"]))
        order.expires_ms = _parse_ms(data["expiresAt"])
        return True

    def _send(self, order: Order, amount_micro: int) -> str:
        txid = self.chain.transfer(order.address, amount_micro)
        order.sent.append(Sent(txid, amount_micro, int(time.time() * 1000)))
        return txid

    async def _pay(self, order: Order) -> None:
        if order.kind != "late" and time.time() * 1000 > order.expires_ms - self.ttl_s * 500:
            # The create's answer came with less than half the payment's time left (the
            # daemon was down or starting, under SIGKILLs, for that long after committing
            # it): the payer pays after the deadline instead, and the payment must end late.
            order.turned_late, order.kind = order.kind, "late"
        kind = order.kind
        if kind in ("full", "over"):
            self._send(order, order.due_micro)
        elif kind == "partial":
            first = order.amount_micro // 3
            self._send(order, first)
            await self._until_received(order, until_ms=order.expires_ms - self.ttl_s * 400)
            self._send(order, order.amount_micro - first)
        elif kind == "late":
            await asyncio.sleep(max(0.0, (order.expires_ms + 1500) / 1000 - time.time()))
            self._send(order, order.amount_micro)
        else:
            txid = self._send(order, order.amount_micro)
            order.fork = await self.forker.submit(txid)
            if order.fork == "dropped":
                self._send(order, order.amount_micro)

    async def _until_received(self, order: Order, until_ms: int) -> None:
        while time.time() * 1000 < until_ms:
            found = await self.api.status(order.txn)
            if found is not None and Decimal(found["crypto"]["receivedUsdt"]) > 0:
                return
            await asyncio.sleep(0.5)


def _parse_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
