"""Per-customer limits (docs/merchant-api.md#errors): tracked by email, phone and
metadata.userId within one merchant and one mode (live or test); the strictest applies; sums
in TRY over UTC days and months; 0 turns a limit off. A refusal names the period and the
identifier, never an amount: what a customer spent is not the merchant's to learn from a 403.

Counted: payments that are not cancelled, failed or expired unpaid — money the customer has
committed to, not abandoned checkouts. Checked inside the create transaction; on PostgreSQL an
advisory lock per identifier serialises concurrent creates of one customer (SQLite's
BEGIN IMMEDIATE already does).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.config import LimitsSettings
from watcher.db.models import Payment
from watcher.errors import LimitExceeded
from watcher.money import to_kurus
from watcher.payments.request import CreateRequest

_NOT_COUNTED = ("cancelled", "failed")


def day_start_ms(now: int) -> int:
    d = datetime.fromtimestamp(now / 1000, tz=UTC)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def month_start_ms(now: int) -> int:
    d = datetime.fromtimestamp(now / 1000, tz=UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)


def _identifiers(req: CreateRequest) -> list[tuple[str, object, str]]:
    ids: list[tuple[str, object, str]] = []
    if req.email:
        ids.append(("email", col(Payment.email), req.email))
    if req.phone:
        ids.append(("phone", col(Payment.phone), req.phone))
    if req.user_id:
        ids.append(("metadata.userId", col(Payment.customer_user_id), req.user_id))
    return ids


def _active(limits: LimitsSettings) -> bool:
    return bool(
        limits.daily_count or limits.daily_sum or limits.monthly_count or limits.monthly_sum
    )


async def check(
    session: AsyncSession,
    limits: LimitsSettings,
    req: CreateRequest,
    now: int,
    *,
    merchant_id: int,
    sandbox: bool,
) -> None:
    if not _active(limits):
        return
    ids = _identifiers(req)
    scope = f"{merchant_id}:{'test' if sandbox else 'live'}"
    if session.get_bind().dialect.name == "postgresql":
        for name, _, value in sorted(ids, key=lambda t: t[0]):
            digest = hashlib.sha256(f"{scope}:{name}:{value}".encode()).digest()
            lock_key = int.from_bytes(digest[:8], "big", signed=True)
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
    windows = (
        ("daily", day_start_ms(now), limits.daily_count, limits.daily_sum),
        ("monthly", month_start_ms(now), limits.monthly_count, limits.monthly_sum),
    )
    for name, column, value in ids:
        for period, since, max_count, max_sum in windows:
            if not (max_count or max_sum):
                continue
            count, total = (
                await session.execute(
                    select(
                        func.count(), func.coalesce(func.sum(col(Payment.amount_kurus)), 0)
                    ).where(
                        col(Payment.merchant_id) == merchant_id,
                        col(Payment.sandbox) == sandbox,
                        column == value,  # type: ignore[arg-type]
                        col(Payment.created_ms) >= since,
                        col(Payment.status).not_in(_NOT_COUNTED),
                        or_(col(Payment.status) != "expired", col(Payment.received_micro) > 0),
                    )
                )
            ).one()
            if max_count and count + 1 > max_count:
                raise LimitExceeded(f"the {period} number of payments for this {name} is reached")
            if max_sum and int(total) + to_kurus(req.amount) > to_kurus(max_sum):
                raise LimitExceeded(f"the {period} payment total for this {name} would be exceeded")
