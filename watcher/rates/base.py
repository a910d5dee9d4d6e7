"""The rate-source port: where TRY per USDT comes from."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Quote:
    """`price` TRY per USDT, fetched at `fetched_ms` from `source`."""

    price: Decimal
    fetched_ms: int
    source: str


class RateSource(Protocol):
    async def quote(self) -> Quote:
        """The current rate; raises watcher.errors.ProviderError when none can be had."""
        ...
