"""The rate-source port: where TRY per USDT comes from."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol


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

    def health(self, now_ms: int) -> dict[str, Any]:
        """For /healthz: `ok` is whether creates can be priced, as the last fetch left it
        (`{"ok": True}` while the source answers), with `reason` and `failingSeconds`
        while it fails."""
        ...
