"""`watcher rate show`: the rate payments would be locked at now, its age and its source."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer

from watcher.cli.common import database, fail, out, print_json, run, state, styled
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.clock import iso, now_ms
from watcher.config import Settings
from watcher.money import canonical, json_number
from watcher.rates.base import Quote
from watcher.rates.binance import BinanceRateSource, UpstreamError

app = group()


@app.command("show")
def show(
    ctx: typer.Context,
    offline: Annotated[
        bool, typer.Option("--offline", help="Only show the last stored rate; do not ask Binance.")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Ask the configured source for the current rate (and store it); show the last stored one.

    Exits 1 when no current rate can be had (the API would answer PROVIDER_ERROR).
    """
    settings = state(ctx, config).settings
    report = run(_report(settings, fetch=not offline))
    if as_json:
        print_json(report)
    else:
        _print(report)
    if not offline and report["current"] is None:
        raise typer.Exit(1)


async def _report(settings: Settings, *, fetch: bool) -> dict[str, Any]:
    async with database(settings) as (_, sessions):
        source = BinanceRateSource(settings.rates, sessions, now_ms)
        last = await source.last_stored()
        current: Quote | None = None
        error: str | None = None
        if fetch:
            try:
                current = await source.fetch()
            except UpstreamError as exc:
                error = str(exc)
    now = now_ms()
    spread = settings.rates.spread_percent
    report: dict[str, Any] = {
        "symbol": settings.rates.symbol.upper(),
        "source": source.source,
        "spreadPercent": json_number(spread),
        "current": _quote(current, now, spread),
        "lastStored": _quote(last, now, spread),
        "maxAgeS": json_number(Decimal(str(settings.rates.max_age_s))),
    }
    if error:
        report["error"] = error
    return report


def _quote(quote: Quote | None, now: int, spread: Decimal) -> dict[str, Any] | None:
    if quote is None:
        return None
    return {
        "rate": json_number(quote.price),
        "effectiveRate": json_number(quote.price * (1 - spread / 100)),
        "fetchedAt": iso(quote.fetched_ms),
        "ageS": json_number(Decimal(max(0, now - quote.fetched_ms)) / 1000),
        "source": quote.source,
    }


def _print(report: dict[str, Any]) -> None:
    spread = report["spreadPercent"]
    out.print(styled((report["symbol"], "bold"), f"  {report['source']}"))
    out.print(f"  spread       {canonical(spread)} %", highlight=False)
    for title, key in (("current", "current"), ("last stored", "lastStored")):
        q = report[key]
        if q is None:
            continue
        age = Decimal(q["ageS"]).quantize(Decimal("0.1"))
        line = f"  {title:<12} {canonical(q['rate'])} TRY/USDT  {q['fetchedAt']}  {age} s ago"
        if spread:
            line += f"  (charged at {canonical(q['effectiveRate'])})"
        out.print(line, highlight=False, soft_wrap=True)
    if "error" in report:
        if report["lastStored"] is None:
            fail(f"{report['error']}; no rate has been stored yet")
        out.print(styled("  ", ("current rate unavailable:", "red"), f" {report['error']}"))
    elif report["current"] is None and report["lastStored"] is None:
        out.print("  no rate has been stored yet", highlight=False)
