"""`watcher sandbox pay TXN_ID`: pay a test-mode crypto payment without a chain."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from watcher.cli.common import fail, out, print_json, run, state, with_session
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.clock import now_ms
from watcher.money import AmountError, canonical, from_micro, to_micro
from watcher.tron.sandbox import SandboxRefused, SandboxTransfer, pay

app = group()


@app.command("pay")
def pay_command(
    ctx: typer.Context,
    payment_id: Annotated[str, typer.Argument(help="A test payment's transactionId.")],
    amount: Annotated[
        str | None, typer.Option(help="USDT to send (default: what is still due).")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Record a simulated USDT transfer to a test payment (sk_test_ key) and settle it."""
    settings = state(ctx, config).settings
    micro = _micro(amount) if amount is not None else None

    async def go(session: AsyncSession) -> SandboxTransfer:
        return await pay(
            session,
            payment_id,
            amount_micro=micro,
            now=now_ms(),
            tolerance_micro=settings.tron.tolerance_micro,
        )

    try:
        done = run(with_session(settings, go))
    except SandboxRefused as exc:
        fail(str(exc))
    usdt = from_micro(done.amount_micro)
    if as_json:
        print_json(
            {
                "transactionId": payment_id,
                "txid": done.txid,
                "amountUsdt": usdt,
                "status": done.status,
            }
        )
        return
    out.print(
        f"sent {canonical(usdt)} USDT to {payment_id} (txid {done.txid}); status {done.status}",
        markup=False,
        highlight=False,
    )


def _micro(text: str) -> int:
    try:
        value = Decimal(text)
        if not value.is_finite() or value <= 0:
            raise ValueError
        return to_micro(value)
    except (InvalidOperation, ValueError, AmountError):
        fail(f"--amount {text!r} is not a positive USDT amount with at most 6 decimals")
