"""Which payment a transfer belongs to (docs/architecture.md#deposit-addresses), in O(1) per log.

Per block, the follower collects the recipients of the token's Transfer logs (about a hundred
on mainnet) and asks the database once for the payments on those addresses (an indexed
`address IN (…)` lookup). From the answer an `AddressBook` is built with the rules applied
for that block, so each log is then one or two dict lookups.

Why not a long-lived in-memory set of watched addresses: payments are created by API
processes (several, on PostgreSQL); a cache refreshed between blocks could miss a payment
committed in between, and a missed deposit is the one failure this product may not have.
The database is the one place that is always current; one indexed query per block is cheap
(see bench/follower_replay.py).

Rules, for a transfer of `amount` to `address` in block `number` at `block_ms`:
- candidates: payments on the address created before the block (created_block < number)
  that are open, or whose deadline plus the late window has not passed at block time;
- a pool address (`wallet.mode = "pool"`): addresses are shared over time, so only the
  amount tells whose a transfer is. The payment asking for exactly that amount, if exactly
  one does; else the one within `tron.tolerance_micro` of it, if exactly one is. Anything
  else (a partial payment, a stray or very late transfer) is kept as unmatched, whatever
  the number of payments on the address: crediting it to the one payment that happens to
  hold the address now could pay an unrelated order. `watcher payments assign` credits it
  by hand;
- any other address (hd mode: a fresh address per payment): one candidate gets it, whatever
  the amount (partial / over / late rules apply later, in tron.settle); several, the one
  whose amount matches exactly, if exactly one does;
- otherwise, if the address is known (a pool address, or one any payment ever had), the
  transfer is kept as unmatched for `watcher payments unmatched`; never dropped;
- an address nobody here ever used is not ours: ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from watcher.db.lists import one_of
from watcher.db.models import Payment
from watcher.payments.states import CLOSED_WITHOUT_FUNDS, OPEN_STATES
from watcher.tron.address import to_base58


@lru_cache(maxsize=1 << 16)
def base58_of(hex41: str) -> str:
    """Recipients repeat a lot on mainnet (exchanges), so conversions are cached."""
    return to_base58(hex41)


@dataclass(frozen=True, slots=True)
class Candidate:
    payment_id: str
    address: str
    status: str
    amount_micro: int
    expires_ms: int
    created_block: int


@dataclass(frozen=True, slots=True)
class Match:
    """A transfer to a known address: its payment, or None (kept as unmatched) and why."""

    payment_id: str | None
    reason: str
    payment: Candidate | None = None

    def late(self, block_ms: int) -> bool:
        """Funds after the payment's deadline, or for a payment closed without them."""
        p = self.payment
        return p is not None and (p.status in CLOSED_WITHOUT_FUNDS or block_ms > p.expires_ms)


SOLE = "sole payment on the address"
EXACT = "exact amount among several payments on the address"
AMBIGUOUS = "several payments on the address and no single exact amount"
NO_PAYMENT = "no payment open or in its late window on the address"
POOL_EXACT = "exact amount on a pool address"
POOL_NEAR = "amount within tron.tolerance_micro on a pool address"
POOL_NONE = "no single payment of this amount on a pool address"


def candidate_of(p: Payment) -> Candidate:
    return Candidate(
        p.id,
        p.address or "",
        p.status,
        p.amount_micro or 0,
        p.expires_ms,
        -1 if p.created_block is None else p.created_block,
    )


def pool_keep(pool: Collection[str], block_ms: int, late_window_ms: int) -> ColumnElement[bool]:
    """Which payments on the looked-up addresses a block at `block_ms` or later could pay.

    An address outside the pool has had at most one payment (hd mode: a fresh address
    each), so every row on it is read: it tells that the address is ours even when its
    payment is long closed. A pool address is ours by configuration and has had many
    payments: only those open or within their late window are read.
    """
    return or_(
        col(Payment.status).in_(OPEN_STATES),
        col(Payment.expires_ms) >= block_ms - late_window_ms,
        col(Payment.address).not_in(pool),
    )


def eligible(c: Candidate, number: int, block_ms: int, late_window_ms: int) -> bool:
    if c.created_block >= number:
        return False
    return c.status in OPEN_STATES or block_ms <= c.expires_ms + late_window_ms


class AddressBook:
    """The rules of one block applied in advance: `match` is O(1)."""

    def __init__(
        self,
        candidates: Iterable[Candidate],
        known: Collection[str],
        *,
        number: int,
        block_ms: int,
        late_window_ms: int,
        pool: Collection[str] = (),
        tolerance_micro: int = 0,
    ):
        self._pool = frozenset(pool)
        self._tolerance = tolerance_micro
        self._by_address: dict[str, list[Candidate]] = defaultdict(list)
        self._by_amount: dict[tuple[str, int], list[Candidate]] = defaultdict(list)
        for c in candidates:
            if eligible(c, number, block_ms, late_window_ms):
                self._by_address[c.address].append(c)
                self._by_amount[(c.address, c.amount_micro)].append(c)
        self._known = frozenset(known)

    def match(self, address: str, amount: int) -> Match | None:
        """None: the address is not ours."""
        held = self._by_address.get(address)
        if not held:
            return Match(None, NO_PAYMENT) if address in self._known else None
        if address in self._pool:
            return self._by_amount_only(address, amount, held)
        if len(held) == 1:
            return Match(held[0].payment_id, SOLE, held[0])
        exact = self._by_amount.get((address, amount), ())
        if len(exact) == 1:
            return Match(exact[0].payment_id, EXACT, exact[0])
        return Match(None, AMBIGUOUS)

    def _by_amount_only(self, address: str, amount: int, held: list[Candidate]) -> Match:
        exact = self._by_amount.get((address, amount), ())
        if len(exact) == 1:
            return Match(exact[0].payment_id, POOL_EXACT, exact[0])
        if not exact and self._tolerance:
            near = [c for c in held if abs(c.amount_micro - amount) <= self._tolerance]
            if len(near) == 1:
                return Match(near[0].payment_id, POOL_NEAR, near[0])
        return Match(None, POOL_NONE)


async def load_book(
    session: AsyncSession,
    addresses: Collection[str],
    *,
    number: int,
    block_ms: int,
    late_window_ms: int,
    pool: Collection[str] = (),
    tolerance_micro: int = 0,
) -> AddressBook:
    """The payments on `addresses` (base58) that block `number` could pay, in one query
    (`pool_keep` says which rows are read)."""
    if not addresses:
        return AddressBook((), pool, number=number, block_ms=block_ms, late_window_ms=0)
    keep = pool_keep(pool, block_ms, late_window_ms) if pool else None
    candidates = await load_candidates(session, addresses, keep)
    known = {*pool, *(c.address for c in candidates)}
    return AddressBook(
        candidates,
        known,
        number=number,
        block_ms=block_ms,
        late_window_ms=late_window_ms,
        pool=pool,
        tolerance_micro=tolerance_micro,
    )


async def load_candidates(
    session: AsyncSession, addresses: Collection[str], keep: ColumnElement[bool] | None = None
) -> list[Candidate]:
    """The payments that ever had one of `addresses` (base58), `keep` ones only: one indexed
    query, not locked."""
    query = select(
        col(Payment.id),
        col(Payment.address),
        col(Payment.status),
        col(Payment.amount_micro),
        col(Payment.expires_ms),
        col(Payment.created_block),
    ).where(one_of(session, col(Payment.address), sorted(addresses)))
    if keep is not None:
        query = query.where(keep)
    return [
        Candidate(r[0], r[1] or "", r[2], r[3] or 0, r[4], -1 if r[5] is None else r[5])
        for r in await session.execute(query)
    ]
