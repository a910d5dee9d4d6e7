"""The chain follower: walks TRON blocks in order and records USDT transfers to watched addresses.

One loop, one block at a time (procrastinate's worker shape): wait for "a new block, the
poll interval, or stop"; each step is one unit of work committed in one transaction with
the cursor move it causes, so a restart resumes exactly where the last commit left off and
no block is skipped or read twice.

A step does the first of:
1. finalize: the node's final height (solidified head, or head - N) is above our `final`
   cursor, so block final+1 is compared with the id it had when walked. Same id: its
   transfers become final (only final transfers complete a payment). Another id (a fork
   replaced it): every transfer seen from that height on is dropped, `seen` steps back and
   the blocks are walked again, now final; a transfer that moved to another block is
   credited there.
2. walk: block seen+1 below the head. Its header must extend our `seen` block (else a fork at
   the head side: step back one block and drop what was seen in it). Its transaction infos
   must match the block (count, block number and timestamp, txids when known): a lagging
   node answering a partial or empty list is retried, never read as "no transfers".
   Transfers are matched (tron.matching), recorded once per (txid, log index), and the
   payments they touch are re-settled (tron.settle) in the same transaction.

On node errors the step raises, the loop backs off with full jitter and retries the same
block; the client fails over between endpoints. Heads are polled with headers only
(`/wallet/getblock`, `/walletsolidity/getblock`, no transactions), when the walk has caught
up or every poll interval.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from watcher.clock import Clock, now_ms
from watcher.config import Settings
from watcher.db.engine import transaction
from watcher.db.errors import transient_db_error
from watcher.db.models import Transfer
from watcher.metrics import Metrics
from watcher.systemd import Watchdog
from watcher.tron import cursors
from watcher.tron.client import BlockShape, Header, Heads, NodeError, TronClient
from watcher.tron.cursors import Cursors, Position
from watcher.tron.decode import Token, TokenTransfer, transfers_in_block
from watcher.tron.matching import Match, base58_of, load_book
from watcher.tron.reconcile import resettle
from watcher.tron.transfers import DROPPED, FINAL, SEEN

log = structlog.get_logger("watcher.tron.follower")

START_ATTEMPTS = 8
NODE_BEHIND_LOG_EVERY_S = 60.0  # while the node's head is below `seen`, say so this often
# ... once it has been below for this long: behind a load balancer a poll often reaches a node
# a block or two behind the one that served the last block, which is no news.
NODE_BEHIND_GRACE_S = 15.0


def late_window_ms(settings: Settings) -> int:
    return int(Decimal(str(settings.tron.late_window_h)) * 3_600_000)


def pool_addresses(settings: Settings) -> frozenset[str]:
    return frozenset(settings.wallet.addresses) if settings.wallet.mode == "pool" else frozenset()


class InconsistentBlock(NodeError):
    """The node's answers about one block do not fit together (lagging node, fork in flight)."""


def check_infos(shape: BlockShape, infos: list[Any]) -> None:
    """Raise unless `infos` are the transaction infos of exactly this block."""
    header = shape.header
    if len(infos) != shape.tx_count:
        raise InconsistentBlock(
            f"block {header.number}: {len(infos)} transaction infos for "
            f"{shape.tx_count} transactions"
        )
    ids = []
    for info in infos:
        if not isinstance(info, dict):
            raise InconsistentBlock(f"block {header.number}: a transaction info is not an object")
        number, stamp = info.get("blockNumber"), info.get("blockTimeStamp")
        if number is not None and number != header.number:
            raise InconsistentBlock(f"block {header.number}: an info is of block {number}")
        if stamp is not None and stamp != header.timestamp_ms:
            raise InconsistentBlock(f"block {header.number}: infos are of another block")
        txid = info.get("id")
        if not isinstance(txid, str) or not txid:
            raise InconsistentBlock(f"block {header.number}: a transaction info has no id")
        ids.append(txid.lower())
    if len(set(ids)) != len(ids):
        # Transfers count once per (txid, log index): a repeated id would hide one of them.
        raise InconsistentBlock(f"block {header.number}: a txid appears twice in its infos")
    if header.txids is not None and sorted(ids) != sorted(t.lower() for t in header.txids):
        raise InconsistentBlock(f"block {header.number}: infos are not this block's transactions")


@dataclass(frozen=True, slots=True)
class Recorded:
    """A transfer to a known address as stored for one block."""

    transfer: TokenTransfer
    address: str
    match: Match


class Follower:
    name = "follower"

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        client: TronClient,
        clock: Clock,
        *,
        metrics: Metrics | None = None,
        watchdog: Watchdog | None = None,
    ):
        self._settings = settings
        self._sessions = sessions
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._watchdog = watchdog
        self._token = Token(settings.tron.usdt_contract)
        self._pool = pool_addresses(settings)
        self._late_window_ms = late_window_ms(settings)
        self._tolerance = settings.tron.tolerance_micro
        self._poll_s = settings.tron.poll_interval_s
        self._heads: Heads | None = None
        self._cur: Cursors | None = None
        self._heads_at = -math.inf
        self._noted_head: int | None = None  # the node head last written for /healthz
        self._behind_since: float | None = None  # clock seconds; set while the node is behind
        self._behind_logged_at: float | None = None  # when that was last said
        self.failures = 0  # consecutive failed steps

    # -- the loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if self._watchdog is not None:
            self._watchdog.register(self.name)
        log.info("follower.started", endpoints=len(self._client.endpoints))
        while not stop.is_set():
            try:
                moved = await self.step()
            except (NodeError, DBAPIError) as exc:  # retried, same block
                if isinstance(exc, DBAPIError) and not transient_db_error(exc):
                    raise
                delay = self._client.backoff(self.failures)
                self.failures += 1
                log.warning(
                    "follower.retry", error=str(exc), attempt=self.failures, retry_in_s=delay
                )
                moved, wait_s = False, delay
            else:
                self.failures = 0
                wait_s = self._poll_s
            if self._watchdog is not None:
                self._watchdog.progress(self.name)
            if not moved:
                await _wait(stop, wait_s)
        log.info("follower.stopped")

    async def step(self) -> bool:
        """One unit of work; False when there is nothing to do until the chain moves."""
        try:
            return await self._step()
        except BaseException:
            self._cur = None  # whatever happened, read the cursors again next time
            raise

    async def _step(self) -> bool:
        cur = await self._cursors()
        if cur is None:
            await ensure_start_cursor(self._settings, self._sessions, self._client)
            return True
        heads = await self._heads_for(cur)
        self._say_if_waiting(heads.head.number, cur.seen.number)
        final_target = min(heads.solid, cur.seen.number)
        if final_target > cur.final.number:
            await self._finalize(cur, final_target)
            return True
        if cur.seen.number < heads.head.number:
            n = cur.seen.number + 1
            await self._walk(cur, n, final=n <= heads.solid)
            return True
        return False

    async def _cursors(self) -> Cursors | None:
        """Kept in memory between steps; each move checks the stored value is what we had."""
        if self._cur is None:
            async with self._sessions() as session:
                self._cur = await cursors.read(session)
        return self._cur

    async def _heads_for(self, cur: Cursors) -> Heads:
        stale = time.monotonic() - self._heads_at >= self._poll_s
        if self._heads is None or stale or cur.seen.number >= self._heads.head.number:
            self._heads = await self._client.heads(self._heads)
            self._heads_at = time.monotonic()
            if self._metrics is not None:
                self._metrics.follower_position(head=self._heads.head.number)
            await self._note_head(self._heads.head)
        return self._heads

    async def _note_head(self, head: Header) -> None:
        """Store the node's head when it changes (one small write per new block)."""
        if head.number == self._noted_head:
            return
        async with transaction(self._sessions) as s:
            pos = Position(head.number, head.block_id, head.timestamp_ms)
            await cursors.write(s, cursors.NODE, pos, self._clock())
        self._noted_head = head.number

    def _say_if_waiting(self, head: int, seen: int) -> None:
        """A node whose head is below `seen` (restarted from an older state, a lagging one
        behind a load balancer) leaves nothing to do: once that lasts, say why now and then,
        not silently."""
        if head >= seen:
            if self._behind_logged_at is not None:
                log.info("follower.node_caught_up", node_head=head, seen=seen)
            self._behind_since = self._behind_logged_at = None
            return
        now_s = self._clock() / 1000
        if self._behind_since is None:
            self._behind_since = now_s
        if now_s - self._behind_since < NODE_BEHIND_GRACE_S:
            return
        if (
            self._behind_logged_at is None
            or now_s - self._behind_logged_at >= NODE_BEHIND_LOG_EVERY_S
        ):
            log.warning(
                "follower.node_behind",
                node_head=head,
                seen=seen,
                behind_s=round(now_s - self._behind_since),
                reason=cursors.waiting_reason(head, seen),
            )
            self._behind_logged_at = now_s

    # -- finalizing ----------------------------------------------------------------------

    async def _finalize(self, cur: Cursors, n: int) -> None:
        """Blocks final+1..n are final now. The walked blocks form a hash chain (each walk
        checked its parent), so if the node's final block n is the one we walked, all of them
        are; if not, a fork replaced some: everything seen above `final` is dropped and the
        blocks are walked again, final this time."""
        header = await self._client.header(n)
        now = self._clock()
        async with transaction(self._sessions) as s:
            walked = await cursors.walked(s, n)
            if walked is not None and walked.block_id == header.block_id:
                span = (col(Transfer.block_number) > cur.final.number) & (
                    col(Transfer.block_number) <= n
                )
                ids = await _payments_in(s, span)
                await s.execute(
                    update(Transfer).where(span, col(Transfer.state) == SEEN).values(state=FINAL)
                )
                await cursors.forget_upto(s, n)
                await cursors.move(s, cursors.FINAL, cur.final.number, walked, now)
                await self._resettle(s, ids, now, cur.seen.block_ms)
                final, self._cur = walked, Cursors(cur.seen, walked)
            else:
                log.warning(
                    "follower.fork",
                    block=n,
                    walked_id=walked.block_id if walked else None,
                    final_id=header.block_id,
                )
                await self._rollback(s, cur, cur.final, now)
                final = cur.final
        self._position(final=final.number)
        log.debug("follower.final", block=final.number)

    async def _rollback(self, s: AsyncSession, cur: Cursors, to: Position, now: int) -> None:
        """Forget everything walked above `to`: seen transfers there are dropped."""
        ids = await _payments_in(s, col(Transfer.block_number) > to.number)
        dropped = (
            await s.execute(
                select(col(Transfer.txid), col(Transfer.log_index)).where(
                    col(Transfer.block_number) > to.number, col(Transfer.state) == SEEN
                )
            )
        ).all()
        await s.execute(
            update(Transfer)
            .where(col(Transfer.block_number) > to.number, col(Transfer.state) == SEEN)
            .values(state=DROPPED)
        )
        for txid, index in dropped:
            log.warning("follower.transfer_dropped", txid=txid, log_index=index)
        await cursors.forget_from(s, to.number + 1)
        await cursors.move(s, cursors.SEEN, cur.seen.number, to, now)
        await self._resettle(s, ids, now, to.block_ms)
        self._cur = Cursors(to, cur.final)
        self._position(seen=to.number, seen_block_ms=to.block_ms)

    # -- walking -------------------------------------------------------------------------

    async def _walk(self, cur: Cursors, n: int, *, final: bool) -> None:
        shape, infos = await self._client.block(n)
        header = shape.header
        if cur.seen.block_id and header.parent_hash != cur.seen.block_id:
            await self._step_back(cur, header)
            return
        check_infos(shape, infos)
        found = transfers_in_block(infos, self._token)
        now = self._clock()
        pos = Position(n, header.block_id, header.timestamp_ms)
        async with transaction(self._sessions) as s:
            ids = await self._record(s, header, found, final=final, now=now)
            await cursors.move(s, cursors.SEEN, cur.seen.number, pos, now)
            if final:
                await cursors.move(s, cursors.FINAL, cur.final.number, pos, now)
            else:
                await cursors.remember(s, pos, header.parent_hash)
            await self._resettle(s, ids, now, header.timestamp_ms)
        self._cur = Cursors(pos, pos if final else cur.final)
        self._position(seen=n, seen_block_ms=header.timestamp_ms, final=n if final else None)
        log.debug("follower.block", block=n, txs=shape.tx_count, transfers=len(found), final=final)

    async def _step_back(self, cur: Cursors, header: Header) -> None:
        if cur.seen.number <= cur.final.number:
            log.error(
                "follower.final_fork",
                block=header.number,
                parent=header.parent_hash,
                final_id=cur.seen.block_id,
            )
            raise InconsistentBlock(
                f"block {header.number} does not extend final block {cur.seen.number}"
            )
        log.warning("follower.fork", block=cur.seen.number, at="head")
        now = self._clock()
        async with transaction(self._sessions) as s:
            back = cur.seen.number - 1
            prev = cur.final if back == cur.final.number else await cursors.walked(s, back)
            await self._rollback(s, cur, prev or cur.final, now)

    async def _record(
        self,
        s: AsyncSession,
        header: Header,
        found: list[TokenTransfer],
        *,
        final: bool,
        now: int,
    ) -> set[str]:
        """Store this block's transfers to known addresses; the payments they touch."""
        if not found:
            return set()
        addresses = {t.recipient: base58_of(t.recipient) for t in found}
        book = await load_book(
            s,
            set(addresses.values()),
            number=header.number,
            block_ms=header.timestamp_ms,
            late_window_ms=self._late_window_ms,
            pool=self._pool,
            tolerance_micro=self._tolerance,
        )
        ours = []
        for t in found:
            m = book.match(addresses[t.recipient], t.amount)
            if m is not None:
                ours.append(Recorded(t, addresses[t.recipient], m))
        if not ours:
            return set()
        return await self._store(s, header, ours, final=final, now=now)

    async def _store(
        self, s: AsyncSession, header: Header, ours: list[Recorded], *, final: bool, now: int
    ) -> set[str]:
        """Insert each transfer, or revive it if a fork had dropped it; one that is already
        credited (seen, final) is left alone: each (txid, log index) counts once."""
        state = FINAL if final else SEEN
        rows = [_row(header, r, state, now) for r in ours]
        await s.execute(_upsert_dropped(s), rows)
        for r in ours:
            t, m = r.transfer, r.match
            log.info(
                "follower.transfer",
                txid=t.txid,
                log_index=t.log_index,
                block=header.number,
                to=r.address,
                amount_micro=t.amount,
                payment_id=m.payment_id,
                reason=m.reason,
                state=state,
            )
        return {r.match.payment_id for r in ours if r.match.payment_id}

    async def _resettle(self, s: AsyncSession, ids: Collection[str], now: int, chain: int) -> None:
        await resettle(s, ids, now_ms=now, chain_ms=chain, tolerance_micro=self._tolerance)

    def _position(
        self, *, seen: int | None = None, final: int | None = None, seen_block_ms: int | None = None
    ) -> None:
        if self._metrics is not None:
            self._metrics.follower_position(seen=seen, final=final, seen_block_ms=seen_block_ms)


def _row(header: Header, r: Recorded, state: str, now: int) -> dict[str, Any]:
    t, m = r.transfer, r.match
    return {
        "txid": t.txid,
        "log_index": t.log_index,
        "block_number": header.number,
        "block_id": header.block_id,
        "block_ms": header.timestamp_ms,
        "from_address": base58_of(t.sender),
        "to_address": r.address,
        "amount_micro": t.amount,
        "payment_id": m.payment_id,
        "state": state,
        "late": m.late(header.timestamp_ms),
        "seen_ms": now,
    }


def _upsert_dropped(s: AsyncSession) -> Any:
    """INSERT … ON CONFLICT (txid, log_index) DO UPDATE … WHERE the stored row was dropped.

    PostgreSQL and SQLite both have it. Run with a list of rows (executemany: one cached
    statement whatever the number of rows).
    """
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = Transfer.metadata.tables["transfer"]
    stmt = insert(table)
    revived = (
        "block_number",
        "block_id",
        "block_ms",
        "from_address",
        "to_address",
        "amount_micro",
        "payment_id",
        "state",
        "late",
        "seen_ms",
    )
    return stmt.on_conflict_do_update(
        index_elements=["txid", "log_index"],
        set_={k: stmt.excluded[k] for k in revived},
        where=table.c.state == DROPPED,
    )


async def _payments_in(s: AsyncSession, blocks: ColumnElement[bool]) -> set[str]:
    """The payments with a transfer awaiting finality in these blocks."""
    rows = await s.execute(
        select(col(Transfer.payment_id))
        .distinct()
        .where(blocks, col(Transfer.state) == SEEN, col(Transfer.payment_id).is_not(None))
    )
    return {p for (p,) in rows if p}


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def ensure_start_cursor(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    client: TronClient,
    *,
    attempts: int | None = START_ATTEMPTS,
) -> int:
    """Resolve `tron.start_block` once, at the very first start, and persist it as both cursors.

    Returns the `seen` block number. Until it exists the API answers creates with 502:
    payments record the `seen` cursor as their creation block. Node errors are retried with
    backoff, `attempts` times in all (None: until it works; the caller cancels it to stop).
    """
    async with sessions() as s:
        found = await cursors.read(s)
    if found is not None:
        return found.seen.number
    pos = await _start_position(settings, client, attempts)
    try:
        async with transaction(sessions) as s:
            if (found := await cursors.read(s)) is not None:
                return found.seen.number
            now = now_ms()
            await cursors.write(s, cursors.SEEN, pos, now)
            await cursors.write(s, cursors.FINAL, pos, now)
    except IntegrityError:  # another process wrote them first
        async with sessions() as s:
            found = await cursors.read(s)
        assert found is not None
        return found.seen.number
    log.info("follower.start_cursor", block=pos.number, start_block=str(settings.tron.start_block))
    return pos.number


async def _start_position(settings: Settings, client: TronClient, attempts: int | None) -> Position:
    start = settings.tron.start_block
    if start != "latest" and start <= 0:
        return Position(start - 1, "", 0)
    attempt = 0
    while True:
        try:
            return await _resolve_start(start, client)
        except NodeError as exc:
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            delay = client.backoff(attempt - 1)
            log.warning("follower.start_retry", error=str(exc), attempt=attempt, retry_in_s=delay)
            await asyncio.sleep(delay)


async def _resolve_start(start: int | str, client: TronClient) -> Position:
    """Both cursors start on a final block: the solidified head for "latest", never the
    head itself. A block above the solidified head can still be replaced by a fork, and
    the cursors' block is the one every later block must extend."""
    heads = await client.heads()
    if start == "latest":
        number = heads.solid
    else:
        assert isinstance(start, int)
        number = start - 1
        if number > heads.solid:
            # Not final yet: no id is kept, so block `start` is taken whatever its parent,
            # and walked again if a fork replaces it before it becomes final.
            return Position(number, "", 0)
    block = heads.head if number == heads.head.number else await client.header(number)
    return Position(block.number, block.block_id, block.timestamp_ms)
