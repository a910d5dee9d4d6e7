"""`watcher payments unmatched|assign`: funds that reached a known address but no payment.

Registered under `payments` by watcher/cli/payments.py. These transfers are recorded with no
payment: on a pool address, any amount that is not one payment's (partial, split, stray or
very late funds); an address whose payments are past their late window; a transfer older
than the payment on its address. Nothing that reaches a watched address is dropped; ops
decide what to do with these, and `assign` credits one to the payment it belongs to.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.cli.common import database, fail, out, print_json, run, state, with_session
from watcher.cli.shape import ConfigOpt, JsonOpt
from watcher.clock import iso, now_ms
from watcher.config import Settings
from watcher.db.models import Payment, Transfer
from watcher.money import canonical, from_micro
from watcher.tron.assign import Assigned, AssignError, assign


def unmatched(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    address: Annotated[str | None, typer.Option(help="Only transfers to this address.")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Transfers to our addresses that belong to no payment, newest first."""
    settings = state(ctx, config).settings

    async def go(session: AsyncSession) -> list[Transfer]:
        q = (
            select(Transfer)
            .where(col(Transfer.payment_id).is_(None), col(Transfer.state) != "dropped")
            .order_by(col(Transfer.block_number).desc(), col(Transfer.log_index))
            .limit(limit)
        )
        if address:
            q = q.where(col(Transfer.to_address) == address)
        return list((await session.execute(q)).scalars())

    rows = [_row(t) for t in run(with_session(settings, go))]
    if as_json:
        print_json(rows)
        return
    table = Table("txid", "log", "block", "time", "to", "from", "USDT", "state")
    for r in rows:
        table.add_row(
            r["txid"],
            str(r["logIndex"]),
            str(r["block"]),
            r["blockAt"],
            r["to"],
            r["from"],
            canonical(r["amountUsdt"]),
            r["state"],
        )
    out.print(table)


def _row(t: Transfer) -> dict[str, Any]:
    return {
        "txid": t.txid,
        "logIndex": t.log_index,
        "block": t.block_number,
        "blockAt": iso(t.block_ms),
        "to": t.to_address,
        "from": t.from_address,
        "amountUsdt": from_micro(t.amount_micro),
        "state": t.state,
    }


def assign_transfer(
    ctx: typer.Context,
    transfer: Annotated[str, typer.Argument(help="TXID or TXID:LOG_INDEX, as listed.")],
    payment: Annotated[str, typer.Argument(help="The payment id (txn_…) it belongs to.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Credit an unmatched transfer to a payment: once, logged, with the usual events."""
    settings = state(ctx, config).settings
    try:
        done = run(_assign(settings, transfer, payment))
    except AssignError as exc:
        fail(str(exc))
    report: dict[str, Any] = {
        "transfer": _row(done.transfer),
        "payment": _payment(done.payment),
        "events": done.events,
    }
    if as_json:
        print_json(report)
        return
    p = report["payment"]
    out.print(
        f"credited {canonical(report['transfer']['amountUsdt'])} USDT to {p['id']}: "
        f"{p['status']}, {canonical(p['receivedUsdt'])} of {canonical(p['amountUsdt'])} USDT "
        f"received; events: {', '.join(done.events) or 'none'}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


async def _assign(settings: Settings, ref: str, payment_id: str) -> Assigned:
    async with database(settings) as (_, sessions):
        return await assign(
            sessions,
            ref,
            payment_id,
            now_ms=now_ms(),
            tolerance_micro=settings.tron.tolerance_micro,
        )


def _payment(p: Payment) -> dict[str, Any]:
    return {
        "id": p.id,
        "status": p.status,
        "amountUsdt": from_micro(p.amount_micro or 0),
        "receivedUsdt": from_micro(p.received_micro),
        "lateUsdt": from_micro(p.late_micro),
        "late": p.late,
    }
