"""Reports from outside (provider webhooks and statuses, the sandbox page), stored and applied.

Two steps, each its own transaction:
- `store_reports`: each report is stored (unique per source and key, so a repeat is
  recognised and changes nothing) with result `received`. The caller commits this before it
  acknowledges anything: a provider that sends once (Kazawallet) never loses a webhook.
- `apply_stored`: one stored report's payment is found and locked, and the change that
  watcher.payments.outcomes decides is made with its event and outbox row. If that fails,
  the report stays `received` and is applied later (`pending_reports`, by the reconciler).

A source only reaches its own payments (a Stripe webhook cannot touch a sandbox payment); a
report for a payment nobody here knows is kept (`unknown_reference`) for ops. A payment-link
provider's report that names a link (Kazawallet's order_id) counts for the payment that link
was made for; when it names another payment besides, by an echo the provider does not sign,
that payment is not touched (`unknown_reference` too) unless it has no link of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.models import Payment, PaymentReport
from watcher.money import (
    MICRO,
    from_kurus,
    json_number,
    round_try,
    to_kurus,
    try_for_converted,
)
from watcher.payments.events import record_event
from watcher.payments.methods import Describe
from watcher.payments.outcomes import (
    CURRENCY_MISMATCH,
    FIXED_PRICE_METHODS,
    PAID,
    PAYMENT_LINK_PROVIDERS,
    Change,
    Report,
    decide,
    shortfall,
    waits,
)
from watcher.payments.states import COMPLETED, FAILED, FINAL_STATES

log = structlog.get_logger("watcher.payments.reports")

RECEIVED = "received"  # stored, not applied yet
APPLIED = "applied"
NO_CHANGE = "no_change"
WAITING = "waiting"  # news for a later state (a refund before its payment), applied then
UNKNOWN = "unknown_reference"
IGNORED = "ignored"
REPEAT = "repeat"  # not stored again

NUL_SHOWN = "\ufffd"
# Amounts a provider may report, in millionths: anything outside is not believed.
_MAX_PAID_MICRO = 10**18


@dataclass(frozen=True, slots=True)
class Applied:
    report: Report
    result: str
    payment_id: str | None = None
    status: str | None = None  # the payment's status afterwards


@dataclass(frozen=True, slots=True)
class Stored:
    report: Report
    row_id: int | None  # None: a repeat, not stored again


async def store_reports(
    session: AsyncSession,
    source: str,
    reports: Sequence[Report],
    *,
    now: int,
    body: bytes | None = None,
) -> list[Stored]:
    """Store `reports` from `source` (an adapter's name), in the caller's transaction."""
    text = body.decode("utf-8", "replace") if body is not None else None
    stored = []
    for report in reports:
        row = _row(source, report, now, text)
        stored.append(Stored(report, row.id if await _store(session, row) else None))
    return stored


async def pending_reports(session: AsyncSession, limit: int) -> list[int]:
    """Ids of stored reports not applied yet, oldest first."""
    query = (
        select(col(PaymentReport.id))
        .where(col(PaymentReport.result) == RECEIVED)
        .order_by(col(PaymentReport.id))
        .limit(limit)
    )
    return [i for i in (await session.execute(query)).scalars() if i is not None]


async def apply_stored(
    session: AsyncSession, row_id: int, *, now: int, describe: Describe
) -> Applied | None:
    """Apply the stored report `row_id`, in the caller's transaction; None if it is gone."""
    query = select(PaymentReport).where(col(PaymentReport.id) == row_id).with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        return None
    report = _report(row)
    if row.result != RECEIVED:  # applied meanwhile (a retry raced the webhook's request)
        return Applied(report, row.result, row.payment_id)
    source = row.source
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
    paid = _paid_try(payment, report) if report.outcome == PAID else None
    fixed_price = payment.provider in FIXED_PRICE_METHODS or source in PAYMENT_LINK_PROVIDERS
    short = shortfall(report, paid, from_kurus(payment.amount_kurus), fixed_price=fixed_price)
    if short is not None:
        row.reason = short
        log.warning(
            "provider.paid_short",
            source=source,
            payment_id=payment.id,
            reason=short,
            paid_amount=str(report.paid_amount),
            paid_currency=report.paid_currency,
        )
    change = decide(payment.status, report.outcome, short=short is not None)
    if change is None:
        row.result = WAITING if waits(payment.status, report.outcome) else NO_CHANGE
        _remember_refs(payment, report)
        return Applied(report, row.result, payment.id, payment.status)
    await _change(session, payment, report, change, now, describe, paid, short)
    row.result = APPLIED
    await _apply_waiting(session, payment, now, describe)
    return Applied(report, APPLIED, payment.id, payment.status)


async def _apply_waiting(
    session: AsyncSession, payment: Payment, now: int, describe: Describe
) -> None:
    """The reports that waited for the state `payment` is in now, applied after it."""
    query = (
        select(PaymentReport)
        .where(col(PaymentReport.payment_id) == payment.id, col(PaymentReport.result) == WAITING)
        .order_by(col(PaymentReport.id))
    )
    for row in (await session.execute(query)).scalars():
        report = _report(row)
        change = decide(payment.status, report.outcome)
        if change is None:
            continue
        await _change(session, payment, report, change, now, describe, None, None)
        row.result = APPLIED
        log.info("provider.report_waited", payment_id=payment.id, report_type=report.type)


def _row(source: str, report: Report, now: int, body: str | None) -> PaymentReport:
    return PaymentReport(
        source=source,
        key=_text(report.key, 200) or "",
        type=_text(report.type, 64) or "",
        outcome=report.outcome,
        transaction_id=_text(report.transaction_id, 64),
        reference=_text(report.reference, 200),
        payment_ref=_text(report.payment_ref, 200),
        reason=_text(report.reason, 200),
        paid_micro=_micro(report.paid_amount),
        paid_currency=_text(report.paid_currency, 8),
        result=RECEIVED if report.outcome is not None else IGNORED,
        received_ms=now,
        body=None if body is None else body.replace("\x00", NUL_SHOWN),
    )


def _text(value: str | None, max_len: int) -> str | None:
    """Text as a column holds it: cut to its length, and NUL (JSON's \\u0000, which
    PostgreSQL text cannot hold) shown as U+FFFD, on every database alike."""
    return (value or "").replace("\x00", NUL_SHOWN)[:max_len] or None


def _micro(amount: Decimal | None) -> int | None:
    if amount is None or not amount.is_finite() or amount < 0:
        return None
    micro = int((amount * MICRO).to_integral_value(rounding=ROUND_HALF_UP))
    return micro if micro < _MAX_PAID_MICRO else None


def _report(row: PaymentReport) -> Report:
    """The report as it was stored."""
    return Report(
        key=row.key,
        type=row.type,
        outcome=row.outcome,
        transaction_id=row.transaction_id,
        reference=row.reference,
        payment_ref=row.payment_ref,
        paid_amount=None if row.paid_micro is None else Decimal(row.paid_micro) / MICRO,
        paid_currency=row.paid_currency,
        reason=row.reason,
    )


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
    if source in PAYMENT_LINK_PROVIDERS and report.reference:
        return await _find_by_link(session, source, report)
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
    return await _locked(session, *where)


async def _find_by_link(session: AsyncSession, source: str, report: Report) -> Payment | None:
    """The payment whose payment link `report.reference` is: the provider signs that, and
    only echoes our transactionId. By the echo only a payment with no link of its own (the
    start answer named none, so its reference is its own id): said in the log either way."""
    mine = col(Payment.provider_name) == source
    payment = await _locked(session, mine, col(Payment.provider_ref) == report.reference)
    if payment is not None:
        if report.transaction_id not in (None, payment.id):
            log.warning(
                "provider.report_ref_not_its_payment",
                source=source,
                payment_id=payment.id,
                transaction_id=report.transaction_id,
                reference=report.reference,
            )
        return payment
    if not report.transaction_id:
        return None
    payment = await _locked(session, mine, col(Payment.id) == report.transaction_id)
    if payment is None:
        return None
    if payment.provider_ref not in (None, payment.id):
        log.warning(
            "provider.report_not_its_link",
            source=source,
            report_type=report.type,
            payment_id=payment.id,
            reference=report.reference,
            link=payment.provider_ref,
        )
        return None
    log.warning(
        "provider.report_matched_by_ref",
        source=source,
        report_type=report.type,
        payment_id=payment.id,
        reference=report.reference,
    )
    return payment


async def _locked(session: AsyncSession, *where: Any) -> Payment | None:
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
    paid: Decimal | None,
    short: str | None,
) -> None:
    previous = payment.status
    _remember_refs(payment, report)
    if paid is not None:
        payment.paid_kurus = to_kurus(paid)
    if change.status == FAILED and previous == COMPLETED:
        payment.paid_kurus = None  # reversed: nothing is held as paid any more
    if change.late:
        payment.late = True
    else:
        payment.status = change.status
    if payment.status in FINAL_STATES and payment.final_ms is None:
        payment.final_ms = now
    block = (await describe(session, [payment])).get(payment.id)
    details = _details(report, previous, change, paid, short)
    await record_event(session, payment, change.event, now, details, block=block)
    log.info(
        "payment." + change.event.removeprefix("payment."),
        payment_id=payment.id,
        status=payment.status,
        provider=payment.provider_name,
        report_type=report.type,
    )


def _paid_try(payment: Payment, report: Report) -> Decimal | None:
    """What the report says was paid, in TRY; None when it does not say (or cannot be
    converted: another currency, and no rate was locked for the payment)."""
    amount = report.paid_amount
    if amount is None:
        return None
    currency = report.paid_currency or payment.currency
    if currency == payment.currency:
        return round_try(amount)
    if payment.rate is None:
        log.warning(
            "provider.paid_amount_unconverted",
            payment_id=payment.id,
            currency=currency,
            amount=str(amount),
        )
        return None
    return try_for_converted(amount, Decimal(payment.rate), from_kurus(payment.amount_kurus))


def _details(
    report: Report, previous: str, change: Change, paid: Decimal | None, short: str | None
) -> dict[str, Any] | None:
    details: dict[str, Any] = {}
    if change.status == FAILED and previous == COMPLETED:
        details["previousStatus"] = previous
    if short or report.reason:
        details["reason"] = short or report.reason
    if (change.late or short) and paid is not None:
        details["paidAmount"] = json_number(paid)
    if short == CURRENCY_MISMATCH and report.paid_amount is not None:
        details["paidAmount"] = json_number(report.paid_amount)
        details["paidCurrency"] = (report.paid_currency or "").upper()
    return details or None
