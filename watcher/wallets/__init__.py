"""Deposit addresses: `hd` (a fresh address per payment from an xpub) or `pool` (a fixed
list, payments told apart by amount)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.clock import Clock, now_ms
from watcher.config import Settings
from watcher.wallets.base import AddressAllocator
from watcher.wallets.hd import HdAllocator
from watcher.wallets.pool import PoolAllocator


def build_allocator(
    settings: Settings, clock: Clock = now_ms, engine: AsyncEngine | None = None
) -> AddressAllocator:
    """The allocator for `wallet.mode`; raises ConfigError naming the bad wallet.* key.
    `engine`: the daemon's, on which an HD allocator reserves indexes (PostgreSQL)."""
    if settings.wallet.mode == "hd":
        return HdAllocator(settings.wallet.xpub, engine)
    return PoolAllocator(
        settings.wallet.addresses, clock, tolerance_micro=settings.tron.tolerance_micro
    )
