"""The payment methods this daemon knows, wired in one place.

How each kind is created (needs the daemon's collaborators: a rate source, an address
allocator) and how each is shown (needs only the database: the CLI shows payments without
building the rest).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from watcher.config import Settings
from watcher.db.models import Payment
from watcher.payments.methods import Block, Describe, PaymentMethod
from watcher.rates.base import RateSource
from watcher.tron.method import CryptoMethod
from watcher.tron.view import crypto_blocks
from watcher.wallets.base import AddressAllocator

_DESCRIBE: dict[str, Describe] = {"crypto": crypto_blocks}


async def blocks(session: AsyncSession, payments: Sequence[Payment]) -> dict[str, Block]:
    """The method block of each payment, by payment id (one query per kind at most)."""
    by_kind: dict[str, list[Payment]] = defaultdict(list)
    for p in payments:
        by_kind[p.provider].append(p)
    found: dict[str, Block] = {}
    for kind, group in by_kind.items():
        describe = _DESCRIBE.get(kind)
        if describe is not None:
            found.update(await describe(session, group))
    return found


def build_methods(
    settings: Settings, rates: RateSource, addresses: AddressAllocator
) -> dict[str, PaymentMethod]:
    """The kinds a create request may ask for; the others answer "not enabled"."""
    return {"crypto": CryptoMethod(settings, rates, addresses)}
