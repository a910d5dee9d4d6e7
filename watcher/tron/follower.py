"""The chain follower: walks TRON blocks in order and records USDT transfers to watched addresses.

One loop (procrastinate's worker shape): wait for "the next block is due, the poll interval,
or stop"; each step is one unit of work committed in one transaction with the cursor move it
causes, so a restart resumes exactly where the last commit left off and no block is skipped
or read twice. Blocks are fetched ahead of the walk, `tron.fetch_ahead` at once
(tron.ahead): the walk still takes them by number, in order.

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
   payments they touch are re-settled (tron.settle) in the same transaction. While the walk
   is behind the final height, the final blocks already fetched after it (each extending the
   one before) are stored in the same transaction, up to BATCH_BLOCKS: settled block by block
   in memory (tron.reconcile.Ledger), with the results one transaction per block would give.
   A block fetched before it was final is not trusted as final: it is read again.

On node errors the step raises, the loop backs off with full jitter and retries the same
block; the client fails over between endpoints. Heads are polled with headers only
(`/wallet/getblock`, `/walletsolidity/getblock`, no transactions), when the walk has caught
up (see idle_wait_s) or every poll interval.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
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
from watcher.db.lists import one_of
from watcher.db.models import Transfer
from watcher.metrics import Metrics
from watcher.systemd import Watchdog
from watcher.tron import cursors
from watcher.tron.ahead import FetchAhead
from watcher.tron.client import BlockShape, Header, Heads, NodeError, TronClient
from watcher.tron.cursors import Cursors, Position
from watcher.tron.decode import Token, TokenTransfer, transfers_in_block, views_of
from watcher.tron.matching import (
    AddressBook,
    Candidate,
    Match,
    base58_of,
    candidate_of,
    load_candidates,
    pool_keep,
)
from watcher.tron.reconcile import Held, Ledger, resettle
from watcher.tron.settle import Credit
from watcher.tron.transfers import DROPPED, FINAL, SEEN

log = structlog.get_logger("watcher.tron.follower")

START_ATTEMPTS = 8
NODE_BEHIND_LOG_EVERY_S = 60.0  # while the node's head is below `seen`, say so this often
# ... once it has been below for this long: behind a load balancer a poll often reaches a node
# a block or two behind the one that served the last block, which is no news.
NODE_BEHIND_GRACE_S = 15.0
BLOCK_MS = 3_000  # TRON makes a block every 3 s
FAST_POLL_S = 0.1  # how often the head is asked for once the next block is due
# While the walk is behind the final height, the blocks already fetched are stored together,
# this many at most in one transaction: few commits, and a write lock held briefly (SQLite
# has one writer, the API waits for it).
BATCH_BLOCKS = 50


def idle_wait_s(head_ms: int, now_ms: int, poll_s: float) -> float:
    """How long to wait, caught up, before asking for the head again: until the next block is
    due (a block every 3 s after the head's timestamp), then every FAST_POLL_S until it
    comes; never longer than the poll interval, and the poll interval again once the block is
    that late (a stalled node is not hammered). A block that becomes final on the node is so
    seen within about FAST_POLL_S, where a plain poll interval would take up to all of it."""
    due_in_ms = head_ms + BLOCK_MS - now_ms
    if due_in_ms > 0:
        return min(poll_s, due_in_ms / 1000)
    if -due_in_ms < poll_s * 1000:
        return min(poll_s, FAST_POLL_S)
    return poll_s


def late_window_ms(settings: Settings) -> int:
    return int(Decimal(str(settings.tron.late_window_h)) * 3_600_000)


def pool_addresses(settings: Settings) -> frozenset[str]:
    return frozenset(settings.wallet.addresses) if settings.wallet.mode == "pool" else frozenset()


class InconsistentBlock(NodeError):
    """The node's answers about one block do not fit together (lagging node, fork in flight)."""


def check_infos(shape: BlockShape, infos: Sequence[object]) -> None:
    """Raise unless `infos` (views, or plain JSON dicts) are the transaction infos of exactly
    this block."""
    header = shape.header
    if len(infos) != shape.tx_count:
        raise InconsistentBlock(
            f"block {header.number}: {len(infos)} transaction infos for "
            f"{shape.tx_count} transactions"
        )
    ids = []
    for info in views_of(infos):
        if info is None:
            raise InconsistentBlock(f"block {header.number}: a transaction info is not an object")
        number, stamp = info.blockNumber, info.blockTimeStamp
        if number is not None and number != header.number:
            raise InconsistentBlock(f"block {header.number}: an info is of block {number}")
        if stamp is not None and stamp != header.timestamp_ms:
            raise InconsistentBlock(f"block {header.number}: infos are of another block")
        txid = info.id
        if not isinstance(txid, str) or not txid:
            raise InconsistentBlock(f"block {header.number}: a transaction info has no id")
        ids.append(txid.lower())
    if len(set(ids)) != len(ids):
        # Transfers count once per (txid, log index): a repeated id would hide one of them.
        raise InconsistentBlock(f"block {header.number}: a txid appears twice in its infos")
    if header.txids is not None and sorted(ids) != sorted(t.lower() for t in header.txids):
        raise InconsistentBlock(f"block {header.number}: infos are not this block's transactions")


@dataclass(frozen=True, slots=True)
class Fetched:
    """A block as the walk needs it: checked against its transaction infos, its token
    transfers decoded (the infos themselves are not kept)."""

    header: Header
    tx_count: int
    transfers: list[TokenTransfer]
    # Fetched when the block was already final: a block fetched before (ahead of the walk,
    # above the solidified head) may have been replaced by a fork since, whatever its parent
    # says, so it is never stored as final; its id is checked again when it becomes final.
    final: bool


@dataclass(frozen=True, slots=True)
class _Run:
    """Consecutive blocks being stored together and what was read for them: each block with
    its transfers to known addresses (a tenth of them or fewer: the rest are nobody's here)."""

    ours: list[tuple[Fetched, list[TokenTransfer]]]
    addresses: dict[str, str]  # recipient hex -> base58
    on_address: dict[str, list[Candidate]]


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
        batch_blocks: int = BATCH_BLOCKS,
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
        in_flight = settings.tron.fetch_ahead
        self._ahead = FetchAhead(self._fetch, batch_blocks + in_flight, in_flight)
        self._batch_blocks = batch_blocks
        self.walk_commits = 0  # transactions that stored walked blocks, and how many blocks
        self.walked_blocks = 0

    @property
    def ahead_in_flight(self) -> int:
        """Blocks being fetched ahead of the walk right now."""
        return self._ahead.in_flight

    # -- the loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        if self._watchdog is not None:
            self._watchdog.register(self.name)
        log.info("follower.started", endpoints=len(self._client.endpoints))
        try:
            await self._loop(stop)
        finally:
            await self._ahead.close()
        log.info("follower.stopped")

    async def _loop(self, stop: asyncio.Event) -> None:
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
                wait_s = self.idle_wait_s()
            if self._watchdog is not None:
                self._watchdog.progress(self.name)
            if not moved:
                await _wait(stop, wait_s)

    def idle_wait_s(self) -> float:
        if self._heads is None:
            return self._poll_s
        return idle_wait_s(self._heads.head.timestamp_ms, self._clock(), self._poll_s)

    async def step(self) -> bool:
        """One unit of work; False when there is nothing to do until the chain moves."""
        try:
            return await self._step()
        except BaseException as exc:
            self._cur = None  # whatever happened, read the cursors again next time
            if not isinstance(exc, NodeError):
                self._ahead.forget_from(0)  # blocks fetched ahead stay good after node errors
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
            await self._walk(cur, heads)
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
        self._ahead.forget_from(to.number + 1)
        await cursors.move(s, cursors.SEEN, cur.seen.number, to, now)
        await self._resettle(s, ids, now, to.block_ms)
        self._cur = Cursors(to, cur.final)
        self._position(seen=to.number, seen_block_ms=to.block_ms)

    # -- walking -------------------------------------------------------------------------

    async def _fetch(self, n: int) -> Fetched:
        """Block `n` as the walk needs it (run ahead of the walk, several at once)."""
        final = self._heads is not None and n <= self._heads.solid
        shape, infos = await self._client.block(n)
        check_infos(shape, infos)
        found = transfers_in_block(infos, self._token)
        return Fetched(shape.header, shape.tx_count, found, final)

    async def _walk(self, cur: Cursors, heads: Heads) -> None:
        n = cur.seen.number + 1
        first = await self._ahead.take(n, heads.head.number)
        if n <= heads.solid and not first.final:
            # Fetched ahead while above the final height, final now: a fork may have replaced
            # it meanwhile, so it is read again rather than walked and dropped later.
            self._ahead.forget_from(n)
            first = await self._ahead.take(n, heads.head.number)
        if cur.seen.block_id and first.header.parent_hash != cur.seen.block_id:
            self._ahead.forget_from(n)
            await self._step_back(cur, first.header)
            return
        final = n <= heads.solid
        blocks = [first, *self._ready_run(first.header, heads.solid)] if final else [first]
        await self._store_walk(cur, blocks, final=final)

    def _ready_run(self, after: Header, last: int) -> list[Fetched]:
        """The final blocks after `after` that are fetched already, each extending the one
        before it: stored with it in one transaction while the walk is far behind."""
        run: list[Fetched] = []
        while len(run) + 1 < self._batch_blocks:
            n = after.number + 1
            if n > last or not self._ahead.ready(n):
                break
            block = self._ahead.take_ready(n)
            if block.header.parent_hash != after.block_id or not block.final:
                self._ahead.forget_from(n)  # fetched again and walked on its own
                break
            run.append(block)
            after = block.header
        return run

    async def _store_walk(self, cur: Cursors, blocks: list[Fetched], *, final: bool) -> None:
        """Record consecutive blocks and move the cursors past them in one transaction.
        Final blocks move both cursors (the walk is behind the final height, so `final` is
        `seen`); a block above the final height is stored alone and remembered by id."""
        assert not final or cur.final == cur.seen, "final blocks are walked from the final cursor"
        assert final or len(blocks) == 1, "blocks that may still fork are stored one by one"
        last = blocks[-1].header
        pos = Position(last.number, last.block_id, last.timestamp_ms)
        now = self._clock()
        async with transaction(self._sessions) as s:
            await self._record(s, blocks, final=final, now=now)
            await cursors.move(s, cursors.SEEN, cur.seen.number, pos, now)
            if final:
                await cursors.move(s, cursors.FINAL, cur.final.number, pos, now)
            else:
                await cursors.remember(s, pos, last.parent_hash)
        self._cur = Cursors(pos, pos if final else cur.final)
        self.walk_commits += 1
        self.walked_blocks += len(blocks)
        self._position(
            seen=pos.number, seen_block_ms=pos.block_ms, final=pos.number if final else None
        )
        log.debug(
            "follower.blocks",
            first=blocks[0].header.number,
            last=pos.number,
            transfers=sum(len(b.transfers) for b in blocks),
            final=final,
        )

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
        self, s: AsyncSession, blocks: list[Fetched], *, final: bool, now: int
    ) -> None:
        """Store the blocks' transfers to known addresses, each (txid, log index) once, and
        settle the payments they touch block by block, as one transaction per block would."""
        found = [t for b in blocks for t in b.transfers]
        if not found:
            return
        addresses = {t.recipient: base58_of(t.recipient) for t in found}
        keep = pool_keep(self._pool, blocks[0].header.timestamp_ms, self._late_window_ms)
        on_address: dict[str, list[Candidate]] = defaultdict(list)
        for c in await load_candidates(s, set(addresses.values()), keep if self._pool else None):
            on_address[c.address].append(c)
        known = self._pool | on_address.keys()
        known_hex = {h for h, a in addresses.items() if a in known}
        run = _Run(
            [(b, [t for t in b.transfers if t.recipient in known_hex]) for b in blocks],
            addresses,
            on_address,
        )
        ours = [t for _, mine in run.ours for t in mine]
        if not ours:
            return
        ledger = Ledger()
        # A first look with the statuses as read names the payments these blocks pay: they
        # are locked and read at once. (Should a status that an earlier block of the run
        # changed make another payment match, that one is taken in when it does.)
        await ledger.hold(s, self._paid(run, ledger))
        stored = await _stored_keys(s, ours)
        state = FINAL if final else SEEN
        rows: list[dict[str, Any]] = []
        for block, mine in run.ours:
            header, touched = block.header, set()
            book = self._book(run, block, mine, ledger)
            for t in mine:
                address = addresses[t.recipient]
                m = book.match(address, t.amount)
                if m is None or (t.txid, t.log_index) in stored:
                    continue  # not ours, or stored already (it counts once)
                stored.add((t.txid, t.log_index))
                rows.append(_row(header, Recorded(t, address, m), state, now))
                _log_transfer(header, t, address, m, state)
                if m.payment_id is not None:
                    credit = Credit(header.number, header.timestamp_ms, t.amount, state)
                    touched.add(m.payment_id)
                    if m.payment_id not in ledger.payments:
                        await ledger.hold(s, (m.payment_id,))
                    ledger.add(m.payment_id, Held(credit, t.txid, t.log_index))
            await ledger.settle(
                s,
                touched,
                now_ms=now,
                chain_ms=header.timestamp_ms,
                tolerance_micro=self._tolerance,
            )
        if rows:
            await s.execute(_upsert_dropped(s), rows)

    def _paid(self, run: _Run, ledger: Ledger) -> set[str]:
        """The payments the run's transfers go to, matched with the statuses as read."""
        paid = set()
        for block, mine in run.ours:
            book = self._book(run, block, mine, ledger)
            for t in mine:
                m = book.match(run.addresses[t.recipient], t.amount)
                if m is not None and m.payment_id is not None:
                    paid.add(m.payment_id)
        return paid

    def _book(
        self, run: _Run, block: Fetched, mine: list[TokenTransfer], ledger: Ledger
    ) -> AddressBook:
        """One block's matching rules over the payments on its known addresses (`mine`: its
        transfers to them), as they stand now (a payment the run has settled already shows
        its new status)."""
        here = {run.addresses[t.recipient] for t in mine}
        held = ledger.payments
        return AddressBook(
            (
                candidate_of(held[c.payment_id]) if c.payment_id in held else c
                for a in here
                for c in run.on_address.get(a, ())
            ),
            here,
            number=block.header.number,
            block_ms=block.header.timestamp_ms,
            late_window_ms=self._late_window_ms,
            pool=self._pool,
            tolerance_micro=self._tolerance,
        )

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


def _log_transfer(header: Header, t: TokenTransfer, address: str, m: Match, state: str) -> None:
    log.info(
        "follower.transfer",
        txid=t.txid,
        log_index=t.log_index,
        block=header.number,
        to=address,
        amount_micro=t.amount,
        payment_id=m.payment_id,
        reason=m.reason,
        state=state,
    )


async def _stored_keys(s: AsyncSession, found: list[TokenTransfer]) -> set[tuple[str, int]]:
    """Which of these transfers are stored already and not dropped: an upsert would leave
    them alone, so they are credited no second time."""
    keys = {(t.txid, t.log_index) for t in found}
    rows = await s.execute(
        select(col(Transfer.txid), col(Transfer.log_index)).where(
            one_of(s, col(Transfer.txid), sorted({txid for txid, _ in keys})),
            col(Transfer.state) != DROPPED,
        )
    )
    return {(txid, index) for txid, index in rows if (txid, index) in keys}


def _upsert_dropped(s: AsyncSession) -> Any:
    """INSERT … ON CONFLICT (txid, log_index) DO UPDATE … WHERE the stored row was dropped.

    PostgreSQL and SQLite both have it. Run with a list of rows (executemany: one cached
    statement whatever the number of rows).
    """
    return _upsert_for(s.get_bind().dialect.name)


@functools.cache
def _upsert_for(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
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
