"""`pool` mode: a fixed list of addresses shared by payments, told apart by amount.

Open payments on one address ask for distinct USDT amounts: the requested amount plus the
smallest free tag of 0, 1, 2, … micro-USDT (the 6th decimal and up, below one cent, so the
2-decimal price the payer sees is unchanged). A transfer pays the payment within
`tron.tolerance_micro` of its amount (tron.matching), so tags are spaced twice that plus one
apart and kept that far from any held amount: two payments' windows never overlap, and no
amount could be read as either. The `address_tag` table's unique
(address, amount_micro) keeps them distinct even across processes; a concurrent create that
took the same tag first makes the insert fail inside a savepoint, and the next tag is tried.

A tag is held until its `release_ms` (the payment's deadline plus the late window): a late
transfer of that exact amount must still find its own payment, never a newer one. New payments
go to the address holding the fewest tags, spreading the load.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.clock import Clock
from watcher.config import ConfigError
from watcher.db.models import AddressTag
from watcher.errors import ProviderError
from watcher.tron.address import is_valid
from watcher.wallets.base import Allocation

MAX_TAG: Final = 9_999  # micro-USDT; below one cent


class PoolAllocator:
    """AddressAllocator for `pool` mode; see the module docstring."""

    row_first = True  # its address_tag row refers to the payment's

    def __init__(
        self,
        addresses: Sequence[str],
        clock: Clock,
        *,
        max_tag: int = MAX_TAG,
        tolerance_micro: int = 0,
    ):
        self.addresses = _checked(addresses)
        self._clock = clock
        self._gap = 2 * tolerance_micro  # the least distance between two held amounts, minus 1
        # Tags stay `gap` below the next cent, where another price's tags start.
        self._max_tag = max_tag - self._gap
        if self._max_tag < 0:
            raise ConfigError(
                f"tron.tolerance_micro = {tolerance_micro} leaves no room for pool tags below "
                f"one cent; at most {max_tag // 2}"
            )

    async def reserve(self) -> None:
        return None  # the tags are claimed inside the create transaction

    async def allocate(
        self,
        session: AsyncSession,
        payment_id: str,
        amount_micro: int,
        release_ms: int,
        reserved: int | None = None,
    ) -> Allocation:
        now = self._clock()
        for address in await self._by_load(session, now):
            amount = await self._claim(session, address, payment_id, amount_micro, release_ms, now)
            if amount is not None:
                return Allocation(address, None, amount)
        raise ProviderError(
            "every pool address already has an open payment for each tag of this amount; "
            "add addresses to wallet.addresses"
        )

    async def _by_load(self, session: AsyncSession, now: int) -> list[str]:
        """Pool addresses, fewest held tags first (ties in random order)."""
        rows = await session.execute(
            select(col(AddressTag.address), func.count())
            .where(col(AddressTag.release_ms) > now)
            .group_by(col(AddressTag.address))
        )
        held: dict[str, int] = {address: count for address, count in rows.all()}
        order = list(self.addresses)
        random.shuffle(order)
        return sorted(order, key=lambda a: held.get(a, 0))

    async def _claim(
        self,
        session: AsyncSession,
        address: str,
        payment_id: str,
        amount_micro: int,
        release_ms: int,
        now: int,
    ) -> int | None:
        """Hold the smallest free amount_micro + tag on `address`; None when all are held."""
        top = amount_micro + self._max_tag
        gap = self._gap
        in_window = (
            col(AddressTag.address) == address,
            col(AddressTag.amount_micro).between(amount_micro - gap, top + gap),
        )
        await session.execute(
            delete(AddressTag).where(*in_window, col(AddressTag.release_ms) <= now)
        )
        held = await session.execute(select(col(AddressTag.amount_micro)).where(*in_window))
        taken = sorted(held.scalars().all())
        for amount in range(amount_micro, top + 1, gap + 1):
            if any(abs(h - amount) <= gap for h in taken):
                continue
            if await _insert(session, address, amount, payment_id, release_ms):
                return amount
        return None


async def _insert(
    session: AsyncSession, address: str, amount: int, payment_id: str, release_ms: int
) -> bool:
    try:
        async with session.begin_nested():
            session.add(
                AddressTag(
                    address=address,
                    amount_micro=amount,
                    payment_id=payment_id,
                    release_ms=release_ms,
                )
            )
    except IntegrityError:
        return False  # taken by a concurrent create since we looked
    return True


def _checked(addresses: Sequence[str]) -> tuple[str, ...]:
    if not addresses:
        raise ConfigError("wallet.addresses is empty: pool mode needs at least one address")
    bad = [a for a in addresses if not is_valid(a)]
    if bad:
        raise ConfigError(f"wallet.addresses: not TRON addresses: {', '.join(map(repr, bad))}")
    if len(set(addresses)) != len(addresses):
        raise ConfigError("wallet.addresses lists an address twice")
    return tuple(addresses)
