"""Reports from outside (provider webhooks and statuses, the sandbox page), stored and applied.

In the caller's transaction: each report is stored (unique per source and key, so a repeat is
recognised and changes nothing), its payment found and locked, and the change that
watcher.payments.outcomes decides is made with its event and outbox row. The caller commits
before it acknowledges anything, so a report is never acknowledged and lost.

A source only reaches its own payments (a Stripe webhook cannot touch a sandbox payment); a
report for a payment nobody here knows is kept (`unknown_reference`) for ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.models import Payment, PaymentReport
from watcher.money import json_number, to_kurus
from watcher.payments.events import record_event
from watcher.payments.methods import Describe
from watcher.payments.outcomes import PAID, Change, Report, decide
from watcher.payments.states import COMPLETED, FAILED, FINAL_STATES

log = structlog.get_logger("watcher.payments.reports")

APPLIED = "applied"
NO_CHANGE = "no_change"
UNKNOWN = "unknown_reference"
IGNORED = "ignored"
REPEAT = "repeat"  # not stored again


@dataclass(frozen=True, slots=True)
class Applied:
    report: Report
    result: str
    payment_id: str | None = None
    status: str | None = None  # the payment's status afterwards


async def apply_reports(
    session: AsyncSession,
    source: str,
    reports: Sequence[Report],
    *,
    now: int,
    describe: Describe,
    body: bytes | None = None,
) -> list[Applied]:
    """Store and apply `reports` from `source` (an adapter's name); what became of each."""
    text = body.decode("utf-8", "replace") if body is not None else None
    return [await _apply(session, source, r, now, describe, text) for r in reports]


async def _apply(
    session: AsyncSession,
    source: str,
    report: Report,
    now: int,
    describe: Describe,
    body: str | None,
) -> Applied:
    row = PaymentReport(
        source=source,
        key=report.key[:200],
        type=report.type[:64],
        outcome=report.outcome,
        transaction_id=(report.transaction_id or "")[:64] or None,
        reference=(report.reference or "")[:200] or None,
        reason=(report.reason or "")[:200] or None,
        result=IGNORED,
        received_ms=now,
        body=body,
    )
    if not await _store(session, row):
        return Applied(report, REPEAT)
    if report.outcome is None:
        return Applied(report, IGNORED)
    payment = await _find(session, source, report)
    if payment is None:
        row.result = UNKNOWN
        log.warning(
            "provider.report_unknown_payment",
            source=source,
            report_type=report.type,
            transaction_id=report.transaction_id,
            reference=report.reference,
        )
        return Applied(report, UNKNOWN)
    row.payment_id = payment.id
    change = decide(payment.status, report.outcome)
    if change is None:
        row.result = NO_CHANGE
        _remember_refs(payment, report)
        return Applied(report, NO_CHANGE, payment.id, payment.status)
    await _change(session, payment, report, change, now, describe)
    row.result = APPLIED
    return Applied(report, APPLIED, payment.id, payment.status)


async def _store(session: AsyncSession, row: PaymentReport) -> bool:
    """False when this source already sent this key (a repeat)."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def _find(session: AsyncSession, source: str, report: Report) -> Payment | None:
    mine = col(Payment.provider_name) == source
    if report.transaction_id:
        where = [col(Payment.id) == report.transaction_id, mine]
    elif report.reference:
        where = [
            mine,
            or_(
                col(Payment.provider_ref) == report.reference,
                col(Payment.provider_payment_ref) == report.reference,
            ),
        ]
    else:
        return None
    query = select(Payment).where(*where).limit(1).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def _remember_refs(payment: Payment, report: Report) -> None:
    if report.payment_ref and not payment.provider_payment_ref:
        payment.provider_payment_ref = report.payment_ref[:200]


async def _change(
    session: AsyncSession,
    payment: Payment,
    report: Report,
    change: Change,
    now: int,
    describe: Describe,
) -> None:
    previous = payment.status
    _remember_refs(payment, report)
    if report.outcome == PAID and report.paid_amount is not None:
        payment.paid_kurus = to_kurus(report.paid_amount)
    if change.late:
        payment.late = True
    else:
        payment.status = change.status
    if payment.status in FINAL_STATES and payment.final_ms is None:
        payment.final_ms = now
    block = (await describe(session, [payment])).get(payment.id)
    details = _details(report, previous, change)
    await record_event(session, payment, change.event, now, details, block=block)
    log.info(
        "payment." + change.event.removeprefix("payment."),
        payment_id=payment.id,
        status=payment.status,
        provider=payment.provider_name,
        report_type=report.type,
    )


def _details(report: Report, previous: str, change: Change) -> dict[str, Any] | None:
    details: dict[str, Any] = {}
    if change.status == FAILED and previous == COMPLETED:
        details["previousStatus"] = previous
    if report.reason:
        details["reason"] = report.reason
    if change.late and report.paid_amount is not None:
        details["paidAmount"] = json_number(report.paid_amount)
    return details or None
