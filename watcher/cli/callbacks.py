"""`watcher callbacks list|show|retry`: the outbox as operators see it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.callbacks import retry as policy
from watcher.cli.common import fail, out, print_json, run, state, styled, with_session
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.clock import iso, now_ms
from watcher.db.models import Callback, CallbackAttempt, PaymentEvent

app = group()
STATUSES = (policy.PENDING, policy.DELIVERED, policy.DEAD)


def _row(c: Callback, event_type: str | None = None) -> dict[str, Any]:
    return {
        "id": c.id,
        "eventId": c.event_id,
        "event": event_type,
        "paymentId": c.payment_id,
        "merchantId": c.merchant_id,
        "url": c.url,
        "status": c.status,
        "attempts": c.attempts,
        "nextAttemptAt": iso(c.next_attempt_ms) if c.status == policy.PENDING else None,
        "lastStatusCode": c.last_status_code,
        "lastError": c.last_error,
        "createdAt": iso(c.created_ms),
        "deliveredAt": iso(c.delivered_ms) if c.delivered_ms else None,
    }


def _attempt(a: CallbackAttempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "startedAt": iso(a.started_ms),
        "durationMs": a.duration_ms,
        "statusCode": a.status_code,
        "error": a.error,
        "worker": a.worker,
    }


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead.")] = None,
    merchant: Annotated[int | None, typer.Option(help="Only this merchant id.")] = None,
    payment: Annotated[str | None, typer.Option(help="Only this payment (txn_…).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The newest callbacks first."""
    if status is not None and status not in STATUSES:
        fail(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    settings = state(ctx, config).settings

    async def go(session: AsyncSession) -> list[tuple[Callback, str]]:
        q = (
            select(Callback, col(PaymentEvent.type))
            .join(PaymentEvent, col(PaymentEvent.event_id) == col(Callback.event_id))
            .order_by(col(Callback.id).desc())
            .limit(limit)
        )
        if status is not None:
            q = q.where(col(Callback.status) == status)
        if merchant is not None:
            q = q.where(col(Callback.merchant_id) == merchant)
        if payment is not None:
            q = q.where(col(Callback.payment_id) == payment)
        return [(c, t) for c, t in (await session.execute(q)).all()]

    rows = run(with_session(settings, go))
    if as_json:
        print_json([_row(c, t) for c, t in rows])
        return
    table = Table("id", "event", "payment", "host", "status", "tries", "next / delivered", "last")
    for c, event_type in rows:
        r = _row(c, event_type)
        when = r["deliveredAt"] or r["nextAttemptAt"] or "-"
        last = str(c.last_status_code or "") + (f" {c.last_error[:60]}" if c.last_error else "")
        table.add_row(
            str(c.id), event_type, c.payment_id, c.host or "", c.status, str(c.attempts), when, last
        )
    out.print(table)


@app.command("show")
def show(
    ctx: typer.Context, callback_id: int, as_json: JsonOpt = False, config: ConfigOpt = None
) -> None:
    """One callback with every attempt: when, how long, the HTTP code, the error."""
    settings = state(ctx, config).settings

    async def go(session: AsyncSession) -> dict[str, Any] | None:
        found = (
            await session.execute(
                select(Callback, col(PaymentEvent.type))
                .join(PaymentEvent, col(PaymentEvent.event_id) == col(Callback.event_id))
                .where(col(Callback.id) == callback_id)
            )
        ).first()
        if found is None:
            return None
        attempts = (
            await session.execute(
                select(CallbackAttempt)
                .where(col(CallbackAttempt.callback_id) == callback_id)
                .order_by(col(CallbackAttempt.id))
            )
        ).scalars()
        return _row(found[0], found[1]) | {"attemptLog": [_attempt(a) for a in attempts]}

    data = run(with_session(settings, go))
    if data is None:
        fail(f"no callback {callback_id}")
    if as_json:
        print_json(data)
        return
    for key in ("id", "event", "eventId", "paymentId", "merchantId", "url", "status"):
        out.print(styled((key, "bold"), f": {data[key]}"))
    for key in ("attempts", "nextAttemptAt", "deliveredAt", "lastStatusCode", "lastError"):
        if data[key] is not None:
            out.print(styled((key, "bold"), f": {data[key]}"))
    table = Table("#", "started", "ms", "code", "error", "worker")
    for a in data["attemptLog"]:
        code = str(a["statusCode"] or "-")
        table.add_row(
            str(a["attempt"]),
            a["startedAt"],
            str(a["durationMs"]),
            code,
            a["error"] or "",
            a["worker"],
        )
    out.print(table)


@app.command("retry")
def retry(
    ctx: typer.Context,
    callback_id: Annotated[int | None, typer.Argument(help="The callback to send again.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead callback.")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Send a callback again now.

    A dead or delivered one gets a fresh set of attempts; a pending one is only made due now.
    """
    if (callback_id is None) == (not all_dead):
        fail("give a callback id or --all-dead (not both)")
    settings = state(ctx, config).settings

    async def go(session: AsyncSession) -> list[int]:
        now = now_ms()
        fresh = {"attempts": 0, "status": policy.PENDING, "delivered_ms": None}
        due = {"next_attempt_ms": now, "locked_until_ms": 0, "locked_by": None}
        if all_dead:
            where = col(Callback.status) == policy.DEAD
        else:
            current = await session.get(Callback, callback_id)
            if current is None:
                fail(f"no callback {callback_id}")
            if current.status == policy.PENDING:
                fresh = {}  # already queued: only make it due now
            where = col(Callback.id) == callback_id
        stmt = update(Callback).where(where).values(**fresh, **due).returning(col(Callback.id))
        return sorted(r[0] for r in (await session.execute(stmt)).all() if r[0] is not None)

    ids = run(with_session(settings, go))
    if as_json:
        print_json({"retried": ids})
        return
    if not ids:
        out.print("no dead callbacks to retry")
        return
    out.print(f"{len(ids)} callback(s) queued to be sent now: {', '.join(map(str, ids))}")
