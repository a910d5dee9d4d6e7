"""`watcher payments list|show`."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher import jsonio
from watcher.cli.common import fail, out, print_json, run, state, with_session, yes_no
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.cli.unmatched import assign_transfer, unmatched
from watcher.clock import iso
from watcher.db.models import Callback as CallbackRow
from watcher.db.models import CallbackAttempt, Payment, PaymentEvent, Transfer
from watcher.methods import blocks
from watcher.money import canonical, from_kurus, from_micro
from watcher.payments.states import ALL_STATES, COMPLETED
from watcher.payments.view import payment_json

app = group()
R = TypeVar("R")
app.command("unmatched")(unmatched)
app.command("assign")(assign_transfer)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    ref: Annotated[str | None, typer.Option(help="Only this externalRef.")] = None,
    merchant: Annotated[int | None, typer.Option(help="Only this merchant id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The newest payments first."""
    if status and status not in ALL_STATES:
        fail(f"unknown status {status!r}; one of {', '.join(sorted(ALL_STATES))}")
    settings = state(ctx, config).settings

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
            p.status
            + (" (late)" if p.late else "")
            + (" (overpaid)" if r["overpaid"] else "")
            + (" [test]" if p.sandbox else ""),
            r["createdAt"],
        )
    out.print(table)


def _row(p: Payment) -> dict[str, Any]:
    """One line of the list: a flat summary for operators (the payment's JSON is `show`)."""
    return {
        "id": p.id,
        "merchantId": p.merchant_id,
        "livemode": not p.sandbox,
        "externalRef": p.external_ref,
        "provider": p.provider,
        "amount": from_kurus(p.amount_kurus),
        "amountUsdt": from_micro(p.amount_micro) if p.amount_micro is not None else None,
        "receivedUsdt": from_micro(p.received_micro),
        "address": p.address,
        "addressIndex": p.address_index,  # hd mode: the wallet path m/44'/195'/0'/0/<index>
        "status": p.status,
        "late": p.late,
        "overpaid": _overpaid(p),
        "createdAt": iso(p.created_ms),
        "expiresAt": iso(p.expires_ms),
    }


def _overpaid(p: Payment) -> bool:
    """Completed with more than it asked for (payment.overpaid, or an excess at completion)."""
    return p.status == COMPLETED and p.received_micro > (p.amount_micro or 0)


@app.command("show")
def show(
    ctx: typer.Context, payment_id: str, as_json: JsonOpt = False, config: ConfigOpt = None
) -> None:
    """One payment with its transfers, events and callbacks."""
    settings = state(ctx, config).settings
    detail = run(with_session(settings, lambda session: _detail(session, payment_id)))
    if detail is None:
        fail(f"no payment {payment_id!r}")
    if as_json:
        print_json(detail)
        return
    _print_detail(detail)


async def _detail(session: AsyncSession, payment_id: str) -> dict[str, Any] | None:
    p = await session.get(Payment, payment_id)
    if p is None:
        return None
    detail = payment_json(p, (await blocks(session, [p])).get(p.id))
    detail["merchantId"] = p.merchant_id
    detail["addressIndex"] = p.address_index
    detail["email"] = p.email
    detail["phone"] = p.phone
    detail["callbackUrl"] = p.callback_url
    transfers = select(Transfer).where(col(Transfer.payment_id) == p.id)
    events = select(PaymentEvent).where(col(PaymentEvent.payment_id) == p.id)
    callbacks = select(CallbackRow).where(col(CallbackRow.payment_id) == p.id)
    detail["transfers"] = [
        _transfer(t) for t in await _all(session, transfers.order_by(col(Transfer.block_number)))
    ]
    detail["events"] = [
        {"eventId": e.event_id, "type": e.type, "sequence": e.sequence, "at": iso(e.created_ms)}
        for e in await _all(session, events.order_by(col(PaymentEvent.id)))
    ]
    detail["callbacks"] = [
        {
            "id": c.id,
            "eventId": c.event_id,
            "status": c.status,
            "attempts": await _attempts(session, c.id),
            "lastStatusCode": c.last_status_code,
            "lastError": c.last_error,
        }
        for c in await _all(session, callbacks.order_by(col(CallbackRow.id)))
    ]
    return detail


async def _all(session: AsyncSession, query: Select[R]) -> list[R]:
    return list((await session.execute(query)).scalars())


async def _attempts(session: AsyncSession, callback_id: int | None) -> int:
    query = select(func.count()).where(col(CallbackAttempt.callback_id) == callback_id)
    return int((await session.execute(query)).scalar_one())


def _transfer(t: Transfer) -> dict[str, Any]:
    return {
        "txid": t.txid,
        "logIndex": t.log_index,
        "block": t.block_number,
        "amountUsdt": from_micro(t.amount_micro),
        "from": t.from_address,
        "state": t.state,
        "late": t.late,
        "blockTime": iso(t.block_ms),
    }


def _print_detail(d: dict[str, Any]) -> None:
    """The same facts as --json, laid out for a person: one `key value` line each, then
    tables. Merchant data is printed as text, never as markup."""
    lines: list[tuple[str, Any]] = [
        ("payment", d["transactionId"]),
        ("merchant", d["merchantId"]),
        ("ref", d["externalRef"]),
        ("status", d["status"]),
        ("late", yes_no(d["late"])),
        ("test", yes_no(not d["livemode"])),
        ("amount", f"{canonical(d['amount'])} {d['currency']}"),
        ("method", d["method"]),
    ]
    provider = d["provider"]
    if isinstance(provider, dict):
        paid = provider.get("paidAmount")
        lines += [
            ("provider", provider["name"]),
            ("reference", provider.get("reference") or "-"),
            ("paid", "-" if paid is None else f"{canonical(paid)} TRY"),
        ]
    crypto = d.get("crypto")
    if crypto:
        received = f"{canonical(crypto['receivedUsdt'])} USDT of {canonical(crypto['amountUsdt'])}"
        lines += [
            ("address", _address(crypto["address"], d["addressIndex"])),
            ("rate", f"{canonical(crypto['rate'])} TRY/USDT"),
            ("received", received),
        ]
        if "lateUsdt" in crypto:
            lines.append(("late-funds", f"{canonical(crypto['lateUsdt'])} USDT"))
    lines += [
        ("created", d["createdAt"]),
        ("expires", d["expiresAt"]),
        ("name", d["fullName"]),
        ("email", d["email"] or "-"),
        ("phone", d["phone"] or "-"),
        ("callback", d["callbackUrl"] or "-"),
        ("metadata", jsonio.dumps(d["metadata"]) if d["metadata"] else "-"),
    ]
    for key, value in lines:
        out.print(f"{key:<12} {value}", markup=False, highlight=False)
    _print_table(
        "transfers",
        ("block", "txid", "log", "USDT", "from", "state", "late"),
        [
            (
                t["block"],
                t["txid"],
                t["logIndex"],
                canonical(t["amountUsdt"]),
                t["from"],
                t["state"],
                yes_no(t["late"]),
            )
            for t in d["transfers"]
        ],
    )
    _print_table(
        "events",
        ("#", "event", "at", "eventId"),
        [(e["sequence"], e["type"], e["at"], e["eventId"]) for e in d["events"]],
    )
    _print_table(
        "callbacks",
        ("id", "status", "tries", "last"),
        [
            (c["id"], c["status"], c["attempts"], _last(c["lastStatusCode"], c["lastError"]))
            for c in d["callbacks"]
        ],
    )


def _address(address: str, index: int | None) -> str:
    return address if index is None else f"{address} (m/44'/195'/0'/0/{index})"


def _last(code: int | None, error: str | None) -> str:
    return " ".join(x for x in (str(code or ""), (error or "")[:60]) if x) or "-"


def _print_table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    out.print()
    if not rows:
        out.print(f"{title}: none", highlight=False)
        return
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    out.print(table)
