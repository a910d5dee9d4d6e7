"""`watcher chain verify TXID`: the support desk's "I paid, where is it?".

Fetches one transaction from the node and says, log by log, whether and how it counts and
for which payment, with the same rules as the follower (tron.decode, tron.matching). A
transfer the follower should have recorded but did not (its block is already walked) is
credited now, in one transaction with the payment's re-settlement, exactly as the follower
would have: it is never counted twice (unique (txid, log index)), and a transfer in a block
the follower has not reached yet is left to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.clock import Clock, iso
from watcher.config import Settings
from watcher.db.engine import transaction
from watcher.db.models import Transfer
from watcher.money import from_micro
from watcher.tron import cursors
from watcher.tron.client import Header, TronClient
from watcher.tron.cursors import Cursors
from watcher.tron.decode import (
    MAX_AMOUNT,
    TRANSFER_TOPIC,
    Token,
    receipt_succeeded,
    word_address,
    word_uint,
)
from watcher.tron.follower import late_window_ms, pool_addresses
from watcher.tron.matching import Match, base58_of, load_book
from watcher.tron.reconcile import resettle
from watcher.tron.transfers import FINAL, SEEN

log = structlog.get_logger("watcher.tron.verify")

# Outcomes, per transaction and per log.
NOT_FOUND = "not_found"
FAILED = "failed"
NO_TRANSFER = "no_usdt_transfer"
COUNTED = "counted"
CREDITED_NOW = "credited_now"
NOT_YET = "not_walked_yet"
UNMATCHED = "unmatched"
NOT_WATCHED = "not_watched"
FAKE_TOKEN = "fake_token"
ZERO_AMOUNT = "zero_amount"
OUT_OF_RANGE = "amount_out_of_range"
FORK_PENDING = "fork_pending"


@dataclass
class LogVerdict:
    log_index: int
    outcome: str
    message: str
    token: str | None = None
    to: str | None = None
    amount_micro: int | None = None
    payment_id: str | None = None
    state: str | None = None


@dataclass
class Verification:
    txid: str
    outcome: str
    message: str
    block: int | None = None
    block_ms: int | None = None
    result: str | None = None
    logs: list[LogVerdict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The `--json` view, in the CLI's conventions: camelCase keys, amounts in USDT."""
        return {
            "txid": self.txid,
            "outcome": self.outcome,
            "message": self.message,
            "block": self.block,
            "blockTime": iso(self.block_ms) if self.block_ms is not None else None,
            "result": self.result,
            "logs": [
                {
                    "logIndex": v.log_index,
                    "outcome": v.outcome,
                    "message": v.message,
                    "token": v.token,
                    "to": v.to,
                    "amountUsdt": from_micro(v.amount_micro)
                    if v.amount_micro is not None
                    else None,
                    "paymentId": v.payment_id,
                    "state": v.state,
                }
                for v in self.logs
            ],
        }


@dataclass(frozen=True, slots=True)
class _Candidate:
    index: int
    token: str
    sender: str
    recipient: str
    amount: int


def _transfer_logs(info: dict[str, Any]) -> list[_Candidate]:
    """Every Transfer-shaped log, whatever the token (to explain fakes, not to count them)."""
    found = []
    for index, entry in enumerate(info.get("log") or []):
        if not isinstance(entry, dict):
            continue
        topics = entry.get("topics")
        if not isinstance(topics, list) or len(topics) != 3:
            continue
        if str(topics[0]).removeprefix("0x").lower() != TRANSFER_TOPIC:
            continue
        sender, recipient = word_address(topics[1]), word_address(topics[2])
        amount = word_uint(entry.get("data"))
        if sender and recipient and amount is not None:
            found.append(
                _Candidate(index, str(entry.get("address", "")), sender, recipient, amount)
            )
    return found


class Verifier:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        client: TronClient,
        clock: Clock,
    ):
        self._settings = settings
        self._sessions = sessions
        self._client = client
        self._clock = clock
        self._token = Token(settings.tron.usdt_contract)

    async def verify(self, txid: str) -> Verification:
        txid = txid.strip().lower().removeprefix("0x")
        info = await self._client.transaction_info(txid)
        if info is None or "blockNumber" not in info:
            return Verification(
                txid,
                NOT_FOUND,
                "the node does not know this transaction "
                "(not broadcast, still pending, or on another network)",
            )
        block, block_ms = int(info["blockNumber"]), int(info.get("blockTimeStamp", 0))
        result = str((info.get("receipt") or {}).get("result", "")) or None
        v = Verification(txid, NO_TRANSFER, "", block, block_ms, result)
        if not receipt_succeeded(info):
            v.outcome = FAILED
            v.message = (
                f"the transaction failed on chain ({result or 'FAILED'}): "
                "no tokens moved, it never counts"
            )
            return v
        logs = _transfer_logs(info)
        usdt = [c for c in logs if self._token.is_this(c.token) and 0 < c.amount <= MAX_AMOUNT]
        v.logs = [self._explain_other(c) for c in logs if c not in usdt]
        if usdt:
            v.logs += await self._judge(txid, block, block_ms, usdt)
        v.logs.sort(key=lambda lv: lv.log_index)
        v.outcome, v.message = _summary(v.logs)
        return v

    def _explain_other(self, c: _Candidate) -> LogVerdict:
        to = base58_of(c.recipient)
        if not self._token.is_this(c.token):
            return LogVerdict(
                c.index,
                FAKE_TOKEN,
                f"a token other than USDT ({c.token}): never counts",
                c.token,
                to,
                c.amount,
            )
        if c.amount > MAX_AMOUNT:
            return LogVerdict(
                c.index,
                OUT_OF_RANGE,
                "an amount larger than any token supply: never counts",
                self._token.base58,
                to,
                c.amount,
            )
        return LogVerdict(
            c.index,
            ZERO_AMOUNT,
            "a zero-amount transfer (address poisoning): never counts",
            self._token.base58,
            to,
            0,
        )

    async def _judge(
        self, txid: str, block: int, block_ms: int, usdt: list[_Candidate]
    ) -> list[LogVerdict]:
        header = await self._client.header(block)
        async with transaction(self._sessions) as s:
            cur = await cursors.read(s)
            existing = {
                t.log_index: t
                for t in (
                    await s.execute(select(Transfer).where(col(Transfer.txid) == txid))
                ).scalars()
            }
            book = await load_book(
                s,
                {base58_of(c.recipient) for c in usdt},
                number=block,
                block_ms=block_ms,
                late_window_ms=late_window_ms(self._settings),
                pool=pool_addresses(self._settings),
                tolerance_micro=self._settings.tron.tolerance_micro,
            )
            out, touched = [], set()
            for c in usdt:
                match = book.match(base58_of(c.recipient), c.amount)
                verdict, row = await self._one(
                    s, txid, c, header, cur, match, existing.get(c.index)
                )
                out.append(verdict)
                if row is not None:
                    s.add(row)
                    if row.payment_id:
                        touched.add(row.payment_id)
            if touched and cur is not None:
                await s.flush()
                await resettle(
                    s,
                    touched,
                    now_ms=self._clock(),
                    chain_ms=cur.seen.block_ms,
                    tolerance_micro=self._settings.tron.tolerance_micro,
                )
        return out

    async def _one(
        self,
        s: AsyncSession,
        txid: str,
        c: _Candidate,
        header: Header,
        cur: Cursors | None,
        match: Match | None,
        stored: Transfer | None,
    ) -> tuple[LogVerdict, Transfer | None]:
        to = base58_of(c.recipient)
        lv = LogVerdict(c.index, COUNTED, "", self._token.base58, to, c.amount)
        if stored is not None and stored.state != "dropped":
            lv.payment_id, lv.state = stored.payment_id, stored.state
            if stored.payment_id is None:
                lv.outcome = UNMATCHED
                lv.message = "recorded as unmatched: see `watcher payments unmatched`"
            else:
                lv.message = f"counted for payment {stored.payment_id} ({stored.state})"
            return lv, None
        if match is None:
            lv.outcome, lv.message = NOT_WATCHED, "the recipient is not an address of this server"
            return lv, None
        if cur is None or header.number > cur.seen.number:
            lv.outcome = NOT_YET
            lv.payment_id = match.payment_id
            lv.message = (
                f"block {header.number} is not walked yet (seen "
                f"{cur.seen.number if cur else '-'}): the follower will count it"
            )
            return lv, None
        final = header.number <= cur.final.number
        if not final:
            walked = await cursors.walked(s, header.number)
            if walked is None or walked.block_id != header.block_id:
                lv.outcome = FORK_PENDING
                lv.message = "its block differs from the one walked: wait for the follower"
                return lv, None
        row = Transfer(
            txid=txid,
            log_index=c.index,
            block_number=header.number,
            block_id=header.block_id,
            block_ms=header.timestamp_ms,
            from_address=base58_of(c.sender),
            to_address=to,
            amount_micro=c.amount,
            payment_id=match.payment_id,
            state=FINAL if final else SEEN,
            late=match.late(header.timestamp_ms),
            seen_ms=self._clock(),
        )
        if stored is not None:
            for key in ("block_number", "block_id", "block_ms", "payment_id", "state", "late"):
                setattr(stored, key, getattr(row, key))
            row = stored
        lv.outcome, lv.payment_id, lv.state = CREDITED_NOW, match.payment_id, row.state
        lv.message = "the follower had missed it: credited now to " + (
            f"payment {match.payment_id}" if match.payment_id else "unmatched"
        )
        log.warning(
            "verify.credited",
            txid=row.txid,
            log_index=c.index,
            payment_id=match.payment_id,
            block=header.number,
        )
        return lv, row


def _summary(logs: list[LogVerdict]) -> tuple[str, str]:
    if not logs:
        return NO_TRANSFER, "no TRC20 Transfer in this transaction"
    order = [
        CREDITED_NOW,
        COUNTED,
        NOT_YET,
        FORK_PENDING,
        UNMATCHED,
        NOT_WATCHED,
        ZERO_AMOUNT,
        OUT_OF_RANGE,
        FAKE_TOKEN,
    ]
    best = min(logs, key=lambda lv: order.index(lv.outcome))
    return best.outcome, best.message
