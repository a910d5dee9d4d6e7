"""`watcher rate show` as an operator runs it: a real process, a local Binance on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from watcher import jsonio
from watcher.clock import now_ms
from watcher.db.engine import transaction
from watcher.db.models import RateQuote
from watcher.devchain.binance import FakeBinance, serve

pytestmark = pytest.mark.parametrize("db_kind", ["sqlite"])


@pytest.fixture
async def binance() -> AsyncIterator[tuple[FakeBinance, str]]:
    fake = FakeBinance(Decimal("35.50"))
    async with serve(fake) as url:
        yield fake, url


async def watcher(db_url: str, binance_url: str, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "WATCHER_DATABASE__URL": db_url,
        "WATCHER_RATES__BINANCE_BASE_URL": binance_url,
        "WATCHER_RATES__SPREAD_PERCENT": "1",
    }
    env.pop("WATCHER_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from watcher.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_rate_show_fetches_stores_and_reports_the_previous_rate(
    db_url: str, binance: tuple[FakeBinance, str]
) -> None:
    fake, url = binance
    code, stdout, _ = await watcher(db_url, url, "rate", "show", "--json")
    assert code == 0
    first = jsonio.loads(stdout)
    assert first["symbol"] == "USDTTRY" and url in first["source"]
    assert first["current"]["rate"] == Decimal("35.5")
    assert first["current"]["effectiveRate"] == Decimal("35.145")  # 1 % spread
    assert first["current"]["fetchedAt"].endswith("Z")
    assert first["lastStored"] is None

    fake.price = Decimal("36.02")
    code, stdout, _ = await watcher(db_url, url, "rate", "show", "--json")
    second = jsonio.loads(stdout)
    assert second["current"]["rate"] == Decimal("36.02")
    assert second["lastStored"]["rate"] == Decimal("35.5")
    assert second["lastStored"]["ageS"] >= 0

    code, stdout, _ = await watcher(db_url, url, "rate", "show")
    assert code == 0 and "USDTTRY" in stdout and "36.02 TRY/USDT" in stdout


async def test_rate_show_with_binance_down_exits_1_and_shows_the_last_stored_rate(
    db_url: str, sessions: async_sessionmaker[AsyncSession], binance: tuple[FakeBinance, str]
) -> None:
    fake, url = binance
    async with transaction(sessions) as s:
        s.add(RateQuote(symbol="USDTTRY", price="35.5", source="binance", fetched_ms=now_ms()))
    fake.mode = "error"
    code, stdout, _ = await watcher(db_url, url, "rate", "show", "--json")
    report = jsonio.loads(stdout)
    assert code == 1
    assert report["current"] is None and "HTTP 500" in report["error"]
    assert report["lastStored"]["rate"] == Decimal("35.5")
    code, stdout, _ = await watcher(db_url, url, "rate", "show", "--offline", "--json")
    assert code == 0 and jsonio.loads(stdout)["lastStored"]["rate"] == Decimal("35.5")
    assert fake.ticker_calls == 1  # --offline did not ask


async def test_a_binance_url_with_credentials_is_shown_and_stored_without_them(
    db_url: str, binance: tuple[FakeBinance, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An operator reaching Binance through a proxy that wants a password puts it in the URL
    (the client sends it); `rate show` and the stored rates name the host only."""
    _, url = binance
    with_auth = url.replace("http://", "http://ops:hunter2@")
    code, stdout, stderr = await watcher(db_url, with_auth, "rate", "show", "--json")
    assert code == 0, stderr
    shown = jsonio.loads(stdout)
    assert shown["current"]["rate"] == Decimal("35.5")
    assert "hunter2" not in stdout + stderr, stdout
    assert shown["source"] == "binance USDTTRY " + url.replace("http://", "http://***@")
    async with sessions() as s:
        stored = [q.source for q in (await s.execute(select(RateQuote))).scalars()]
    assert stored and not any("hunter2" in q for q in stored), stored
