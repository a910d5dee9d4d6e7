"""The deposit-address port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Allocation:
    """The address a payment is paid to, and the exact micro-USDT amount it asks for.

    In pool mode `amount_micro` may differ from the requested amount by a small tag so that
    (address, amount) is unique among open payments.
    """

    address: str
    index: int | None
    amount_micro: int


class AddressAllocator(Protocol):
    # Whether allocate() refers to the payment's row (which is then flushed before it);
    # otherwise the row is inserted once, address included.
    row_first: bool

    async def reserve(self) -> int | None:
        """Called before the create transaction opens: what allocate() takes as `reserved`
        (None when the allocator does all its work inside the transaction)."""
        ...

    async def allocate(
        self,
        session: AsyncSession,
        payment_id: str,
        amount_micro: int,
        release_ms: int,
        reserved: int | None = None,
    ) -> Allocation:
        """Called inside the create transaction (after the payment row is flushed, if
        `row_first`).

        `release_ms`: when the address/amount may be reused (deadline + late window).
        """
        ...
