"""What a USDT-TRC20 payment adds to the payment's JSON: its `crypto` block."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from watcher.db.models import Payment
from watcher.money import from_micro, json_number
from watcher.payments.methods import Block
from watcher.tron.transfers import txids_of

NETWORK = "TRC20"


def crypto_block(payment: Payment, txids: list[str]) -> Block:
    fields = {
        "txids": txids,
        "amountUsdt": json_number(from_micro(payment.amount_micro or 0)),
        "receivedUsdt": json_number(from_micro(payment.received_micro)),
        "rate": json_number(Decimal(payment.rate or "0")),
        "network": NETWORK,
        "address": payment.address,
    }
    if payment.late_micro:
        fields["lateUsdt"] = json_number(from_micro(payment.late_micro))
    return Block("crypto", fields)


async def crypto_blocks(session: AsyncSession, payments: Sequence[Payment]) -> dict[str, Block]:
    txids = await txids_of(session, [p.id for p in payments])
    return {p.id: crypto_block(p, txids[p.id]) for p in payments}
