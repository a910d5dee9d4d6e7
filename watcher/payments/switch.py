"""The operator switch: `watcher system disable|enable` → 503 SYSTEM_DISABLED on create."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from watcher.db.models import Setting
from watcher.errors import SystemDisabled

KEY = "system_disabled"


async def is_disabled(session: AsyncSession) -> bool:
    row = await session.get(Setting, KEY)
    return row is not None and row.value == "1"


async def set_disabled(session: AsyncSession, disabled: bool, now: int) -> None:
    row = await session.get(Setting, KEY)
    if row is None:
        row = Setting(key=KEY, value="0", updated_ms=now)
    row.value = "1" if disabled else "0"
    row.updated_ms = now
    session.add(row)
    await session.flush()


def refused() -> SystemDisabled:
    """What a create meets while the switch is off (the create reads the switch with its
    other reads: watcher.payments.snapshot)."""
    return SystemDisabled("payments are temporarily disabled by the operator")
