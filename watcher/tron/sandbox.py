"""`watcher sandbox pay`: a simulated USDT transfer for a test-mode crypto payment.

The transfer is recorded as the follower would record a final one (a random txid, log index
0, in a block after the payment's creation block, timestamped now) and the payment is
settled from its transfers as usual: partial, full, over and late payments behave as on the
chain, with the same events and test-mode callbacks. A live payment is refused: no command
can mark real money as arrived.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from watcher.db.models import ChainCursor, Payment, Transfer
from watcher.tron import cursors
from watcher.tron.reconcile import resettle
from watcher.tron.transfers import FINAL

SANDBOX_SENDER = "sandbox"


class SandboxRefused(Exception):
    """The payment cannot be paid in the sandbox; the message says why."""


@dataclass(frozen=True, slots=True)
class SandboxTransfer:
    txid: str
    amount_micro: int
    status: str  # the payment's status afterwards


async def pay(
    session: AsyncSession,
    payment_id: str,
    *,
    amount_micro: int | None,
    now: int,
    tolerance_micro: int,
) -> SandboxTransfer:
    """Record a transfer of `amount_micro` (default: what is still due) to a test payment."""
    payment = await session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise SandboxRefused(f"no payment {payment_id!r}")
    if not payment.sandbox:
        raise SandboxRefused(f"{payment_id} is a live payment: only test payments can be paid")
    if payment.address is None or payment.amount_micro is None:
        raise SandboxRefused(f"{payment_id} is not paid to a deposit address (crypto)")
    seen = await session.get(ChainCursor, cursors.SEEN)
    if seen is None:
        raise SandboxRefused("the chain follower has not started yet")
    due = payment.amount_micro - payment.received_micro - payment.confirming_micro
    amount = amount_micro if amount_micro is not None else max(due, 0)
    if amount <= 0:
        raise SandboxRefused(f"nothing is due on {payment_id}; give --amount to pay more")
    block = max(seen.block_number, (payment.created_block or 0) + 1)
    txid = secrets.token_hex(32)
    session.add(
        Transfer(
            txid=txid,
            log_index=0,
            block_number=block,
            block_id=SANDBOX_SENDER,
            block_ms=now,
            from_address=SANDBOX_SENDER,
            to_address=payment.address,
            amount_micro=amount,
            payment_id=payment.id,
            state=FINAL,
            late=now > payment.expires_ms,
            seen_ms=now,
        )
    )
    await session.flush()
    chain_ms = max(seen.block_ms, now)
    await resettle(
        session, [payment.id], now_ms=now, chain_ms=chain_ms, tolerance_micro=tolerance_micro
    )
    return SandboxTransfer(txid, amount, payment.status)
