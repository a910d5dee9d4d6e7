"""`watcher payments list|show`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher import jsonio
from watcher.cli.common import fail, out, print_json, run, state, with_session
from watcher.cli.unmatched import unmatched
from watcher.clock import iso
from watcher.db.models import Callback as CallbackRow
from watcher.db.models import CallbackAttempt, Payment, PaymentEvent, Transfer
from watcher.money import canonical, from_kurus, from_micro
from watcher.payments.events import payment_txids, snapshot
from watcher.payments.states import ALL_STATES

app = typer.Typer(no_args_is_help=True)
app.command("unmatched")(unmatched)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    ref: Annotated[str | None, typer.Option(help="Only this externalRef.")] = None,
    merchant: Annotated[int | None, typer.Option(help="Only this merchant id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The newest payments first."""
    if status and status not in ALL_STATES:
        fail(f"unknown status {status!r}; one of {', '.join(sorted(ALL_STATES))}")
    settings = state(ctx).settings

    async def go(session: AsyncSession) -> list[Payment]:
        q = select(Payment).order_by(col(Payment.created_ms).desc()).limit(limit)
        if status:
            q = q.where(col(Payment.status) == status)
        if ref:
            q = q.where(col(Payment.external_ref) == ref)
        if merchant is not None:
            q = q.where(col(Payment.merchant_id) == merchant)
        return list((await session.execute(q)).scalars())

    rows = run(with_session(settings, go))
    if as_json:
        print_json([_row(p) for p in rows])
        return
    table = Table("id", "merchant", "ref", "TRY", "USDT", "received", "status", "created")
    for p in rows:
        r = _row(p)
        table.add_row(
            p.id,
            str(p.merchant_id),
            p.external_ref,
            canonical(r["amount"]),
            canonical(r["amountUsdt"]) if r["amountUsdt"] is not None else "-",
            canonical(r["receivedUsdt"]),
            p.status + (" (late)" if p.late else "") + (" [test]" if p.sandbox else ""),
            r["createdAt"],
        )
    out.print(table)


def _row(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "merchantId": p.merchant_id,
        "sandbox": p.sandbox,
        "externalRef": p.external_ref,
        "provider": p.provider,
        "amount": from_kurus(p.amount_kurus),
        "amountUsdt": from_micro(p.amount_micro) if p.amount_micro is not None else None,
        "receivedUsdt": from_micro(p.received_micro),
        "address": p.address,
        "status": p.status,
        "late": p.late,
        "createdAt": iso(p.created_ms),
        "expiresAt": iso(p.expires_ms),
    }


@app.command("show")
def show(ctx: typer.Context, payment_id: str, as_json: JsonOpt = False) -> None:
    """One payment with its transfers, events and callbacks."""
    settings = state(ctx).settings

    async def go(session: AsyncSession) -> dict[str, Any] | None:
        p = await session.get(Payment, payment_id)
        if p is None:
            return None
        transfers = (
            await session.execute(
                select(Transfer)
                .where(col(Transfer.payment_id) == p.id)
                .order_by(col(Transfer.block_number))
            )
        ).scalars()
        events = (
            await session.execute(
                select(PaymentEvent)
                .where(col(PaymentEvent.payment_id) == p.id)
                .order_by(col(PaymentEvent.id))
            )
        ).scalars()
        callbacks = list(
            (
                await session.execute(
                    select(CallbackRow).where(col(CallbackRow.payment_id) == p.id)
                )
            ).scalars()
        )
        attempts = {
            c.id: len(
                (
                    await session.execute(
                        select(col(CallbackAttempt.id)).where(
                            col(CallbackAttempt.callback_id) == c.id
                        )
                    )
                ).all()
            )
            for c in callbacks
        }
        detail = snapshot(p, await payment_txids(session, p.id))
        detail["merchantId"] = p.merchant_id
        detail["sandbox"] = p.sandbox
        detail["email"] = p.email
        detail["phone"] = p.phone
        detail["callbackUrl"] = p.callback_url
        detail["transfers"] = [
            {
                "txid": t.txid,
                "logIndex": t.log_index,
                "block": t.block_number,
                "amountUsdt": from_micro(t.amount_micro),
                "from": t.from_address,
                "state": t.state,
                "late": t.late,
                "blockTime": iso(t.block_ms),
            }
            for t in transfers
        ]
        detail["events"] = [
            {"eventId": e.event_id, "type": e.type, "sequence": e.sequence, "at": iso(e.created_ms)}
            for e in events
        ]
        detail["callbacks"] = [
            {
                "id": c.id,
                "eventId": c.event_id,
                "status": c.status,
                "attempts": attempts[c.id],
                "lastStatusCode": c.last_status_code,
                "lastError": c.last_error,
            }
            for c in callbacks
        ]
        return detail

    detail = run(with_session(settings, go))
    if detail is None:
        fail(f"no payment {payment_id!r}")
    if as_json:
        print_json(detail)
        return
    out.print_json(jsonio.dumps(detail))
