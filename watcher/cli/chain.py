"""`watcher chain status|verify`: where the follower is, and what became of one transaction."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.cli.common import database, fail, out, print_json, run, state, styled, yes_no
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.clock import iso, now_ms
from watcher.config import Settings
from watcher.db.models import Payment, Transfer
from watcher.metrics import lag_seconds
from watcher.money import canonical, from_micro
from watcher.payments.states import OPEN_STATES
from watcher.tron import cursors
from watcher.tron.client import Heads, NodeError, TronClient, node_session
from watcher.tron.follower import late_window_ms
from watcher.tron.verify import Verification, Verifier

app = group()


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Node head, the seen and final cursors, lag, watched addresses, endpoint health.

    Exits 1 when no endpoint answers.
    """
    settings = state(ctx, config).settings
    report = run(_status(settings))
    if as_json:
        print_json(report)
    else:
        _print_status(report)
    if report["head"] is None:
        raise typer.Exit(1)


@app.command("verify")
def verify(
    ctx: typer.Context,
    txid: Annotated[str, typer.Argument(help="The transaction id (64 hex digits).")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Fetch one transaction from the node: does it count, and for which payment?

    A transfer the follower missed (its block already walked) is credited now.
    """
    clean = txid.strip().lower().removeprefix("0x")
    if len(clean) != 64 or any(c not in "0123456789abcdef" for c in clean):
        fail("a TRON transaction id is 64 hex digits")
    settings = state(ctx, config).settings
    try:
        result = run(_verify(settings, clean))
    except NodeError as exc:
        fail(f"no TRON node answered: {exc}")
    if as_json:
        print_json(result.as_dict())
    else:
        _print_verification(result)


async def _verify(settings: Settings, txid: str) -> Verification:
    async with (
        database(settings) as (_, sessions),
        node_session() as http,
    ):
        client = TronClient(settings.tron, http)
        return await Verifier(settings, sessions, client, now_ms).verify(txid)


async def _status(settings: Settings) -> dict[str, Any]:
    async with (
        database(settings) as (_, sessions),
        node_session() as http,
    ):
        client = TronClient(settings.tron, http, rounds=1)
        heads: Heads | None = None
        error = None
        try:
            heads = await client.heads()
        except NodeError as exc:
            error = str(exc)
        endpoints = await client.probe()
        stored = await _stored(sessions, settings)
    now = now_ms()
    seen, final = stored["seen"], stored["final"]
    head = heads.head if heads else None
    lag_blocks = head.number - seen["block"] if head and seen else None
    return {
        "head": head.number if head else None,
        "headAt": iso(head.timestamp_ms) if head else None,
        "solid": heads.solid if heads else None,
        "finality": settings.tron.finality,
        "seen": seen,
        "final": final,
        "lagBlocks": lag_blocks,
        "lagSeconds": lag_seconds(seen["blockMs"], now) if seen else None,
        "watchedAddresses": stored["watched"],
        "unmatchedTransfers": stored["unmatched"],
        "endpoints": endpoints,
        "error": error,
    }


async def _stored(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> dict[str, Any]:
    async with sessions() as s:
        cur = await cursors.read(s)
        watched = await _watched(s, now_ms() - late_window_ms(settings))
        unmatched = (
            await s.execute(
                select(func.count())
                .select_from(Transfer)
                .where(col(Transfer.payment_id).is_(None), col(Transfer.state) != "dropped")
            )
        ).scalar_one()

    def position(p: cursors.Position | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {
            "block": p.number,
            "id": p.block_id,
            "blockMs": p.block_ms,
            "blockAt": iso(p.block_ms) if p.block_ms else None,
        }

    return {
        "seen": position(cur.seen if cur else None),
        "final": position(cur.final if cur else None),
        "watched": watched,
        "unmatched": unmatched,
    }


async def _watched(s: AsyncSession, late_cutoff_ms: int) -> int:
    """Addresses with a payment that is open or still within its late window."""
    q = select(func.count(func.distinct(col(Payment.address)))).where(
        col(Payment.address).is_not(None),
        or_(col(Payment.status).in_(OPEN_STATES), col(Payment.expires_ms) >= late_cutoff_ms),
    )
    return int((await s.execute(q)).scalar_one())


def _print_status(r: dict[str, Any]) -> None:
    seen, final = r["seen"] or {}, r["final"] or {}
    out.print(f"head        {r['head'] if r['head'] is not None else '-'}  {r['headAt'] or ''}")
    out.print(
        f"solidified  {r['solid'] if r['solid'] is not None else '-'}  (finality: {r['finality']})"
    )
    out.print(f"seen        {seen.get('block', '-')}  {seen.get('blockAt') or ''}")
    out.print(f"final       {final.get('block', '-')}  {final.get('blockAt') or ''}")
    out.print(
        f"lag         {r['lagBlocks'] if r['lagBlocks'] is not None else '-'} blocks, "
        f"{r['lagSeconds'] if r['lagSeconds'] is not None else '-'} s"
    )
    out.print(
        f"watched     {r['watchedAddresses']} addresses; "
        f"{r['unmatchedTransfers']} unmatched transfers"
    )
    table = Table("endpoint", "ok", "head", "latency ms", "error")
    for e in r["endpoints"]:
        table.add_row(
            e["url"],
            yes_no(e["ok"]),
            str(e["head"] or "-"),
            str(e["latencyMs"]),
            e["error"] or "",
        )
    out.print(table)
    if r["error"]:
        out.print(styled(("no endpoint answered:", "red"), f" {r['error']}"))


def _print_verification(v: Verification) -> None:
    where = f" in block {v.block}" if v.block is not None else ""
    out.print(styled(f"{v.txid}{where}: ", (v.outcome, "bold"), f" — {v.message}"))
    if v.logs:
        table = Table("log", "outcome", "to", "USDT", "payment", "state", "why")
        for lv in v.logs:
            table.add_row(
                str(lv.log_index),
                lv.outcome,
                lv.to or "",
                canonical(from_micro(lv.amount_micro or 0)),
                lv.payment_id or "",
                lv.state or "",
                lv.message,
            )
        out.print(table)
