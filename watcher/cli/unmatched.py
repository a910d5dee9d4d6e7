"""`watcher payments unmatched`: funds that reached a known address but no single payment.

Registered under `payments` by watcher/cli/__init__.py. These transfers are recorded with no
payment: a pool address shared by several open payments and no exact amount, an address whose
payments are past their late window, or a transfer older than the payment on its address.
Nothing that reaches a watched address is dropped; ops decide what to do with these.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.cli.common import out, print_json, run, state, with_session
from watcher.cli.shape import ConfigOpt, JsonOpt
from watcher.clock import iso
from watcher.db.models import Transfer
from watcher.money import canonical, from_micro


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
