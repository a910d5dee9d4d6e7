"""What one API request costs inside the daemon: database round trips and milliseconds.

    .venv/bin/python bench/request_profile.py [--db sqlite|postgres] [--requests 300] \
        [--profile FILE]

The real app (create_app over build_services: HD wallet, rates cached from a fake Binance on
loopback, INFO JSON logs to /dev/null as a daemon writes them) is driven in-process through
httpx's ASGI transport, one request after the other, so the figures are the app's own work
plus its database's answers, without an HTTP parser or a client on the same core. For each
kind of request (create with a new externalRef, create repeating a ref, status, /pay/{id}, and
a path with no route: the client, the middleware and FastAPI's routing and error answer) it
prints, per request: statements sent, transaction begins and ends, connection checkouts and
pool pre-pings, the median wall time and the CPU time of the process (all its threads: on a
loaded machine the steadier figure). Every round trip to the database is
one of those, except asyncpg's prepares (cached per connection after the first request).

`--profile FILE` writes a pyinstrument profile of the create requests (or of those named by
`--profile-what`) into FILE (pip install pyinstrument).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from starlette.applications import Starlette

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import serve_asgi  # noqa: E402
from watcher import eventloop  # noqa: E402
from watcher.api.app import create_app  # noqa: E402
from watcher.clock import now_ms  # noqa: E402
from watcher.config import LogSettings, Settings  # noqa: E402
from watcher.db.engine import create_engine  # noqa: E402
from watcher.db.migrate import upgrade  # noqa: E402
from watcher.db.models import ChainCursor  # noqa: E402
from watcher.devchain.binance import FakeBinance  # noqa: E402
from watcher.logs import configure_logging  # noqa: E402
from watcher.merchants import create_merchant  # noqa: E402
from watcher.metrics import Metrics  # noqa: E402
from watcher.services import Services, build_services  # noqa: E402
from watcher.wallets.hd import DEMO_XPUB  # noqa: E402

KEY = "x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE="
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ADMIN_DB = os.environ.get("WATCHER_TEST_PG_DB", "test")


class RoundTrips:
    """Counts what an engine sends to its database, by kind."""

    def __init__(self, services: Services) -> None:
        self.counts: Counter[str] = Counter()
        sync = services.engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._statement)
        event.listen(sync, "begin", lambda *_: self._hit("begin"))
        event.listen(sync, "commit", lambda *_: self._hit("commit"))
        event.listen(sync, "rollback", lambda *_: self._hit("rollback"))
        event.listen(sync.pool, "checkout", lambda *_: self._hit("checkout"))
        dialect = sync.dialect
        ping = dialect.do_ping

        def counted_ping(conn: Any) -> bool:
            self._hit("pre-ping")
            return bool(ping(conn))

        dialect.do_ping = counted_ping  # type: ignore[method-assign]

    def _statement(self, _conn: Any, _cur: Any, sql: str, *_: Any) -> None:
        word = sql.lstrip().split(None, 1)[0].upper()
        self.counts["statements"] += 1
        if word in ("BEGIN", "COMMIT", "ROLLBACK"):
            self.counts[f"  {word}"] += 1
        else:
            self.counts[f"  {word} …"] += 1

    def _hit(self, kind: str) -> None:
        self.counts[kind] += 1

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


@asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/watcher.db"
        return
    name = f"req_profile_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database=ADMIN_DB, **PG)  # type: ignore[arg-type]
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        conn = await asyncpg.connect(database=ADMIN_DB, **PG)  # type: ignore[arg-type]
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    binance = FakeBinance(price=Decimal("35.50"))
    async with (
        database(args.db) as url,
        serve_asgi(Starlette(routes=binance.routes())) as binance_url,
    ):
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        settings = Settings(
            database={"url": url},  # type: ignore[arg-type]
            rates={"binance_base_url": binance_url, "cache_s": 3600},  # type: ignore[arg-type]
            wallet={"mode": "hd", "xpub": DEMO_XPUB},  # type: ignore[arg-type]
            api={"rate_limit_per_minute": 0, "pay_rate_limit_per_minute": 0},  # type: ignore[arg-type]
        )
        async with build_services(settings) as services:
            async with services.sessions() as s, s.begin():
                s.add(ChainCursor(name="seen", block_number=1_000_000, updated_ms=now_ms()))
                merchant = await create_merchant(s, services.box, "shop")
            app = create_app(services, Metrics(services.clock))
            trips = RoundTrips(services)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                await measure(args, http, merchant.api_key, trips)


async def measure(
    args: argparse.Namespace, http: httpx.AsyncClient, key: str, trips: RoundTrips
) -> None:
    hdr = {"x-api-key": key}
    counter = iter(range(10**9))

    def body(ref: str | None = None) -> dict[str, Any]:
        return {
            "amount": 1500,
            "currency": "TRY",
            "fullName": "Ahmet Yılmaz",
            "email": "ahmet@example.com",
            "externalRef": ref or f"ref-{next(counter)}",
            "callbackUrl": "https://shop.example.com/kasa",
        }

    first = await http.post("/api/payment/create", json=body("fixed"), headers=hdr)
    assert first.status_code == 200, first.text
    txn = first.json()["transactionId"]

    async def create() -> httpx.Response:
        return await http.post("/api/payment/create", json=body(), headers=hdr)

    async def replay() -> httpx.Response:
        return await http.post("/api/payment/create", json=body("fixed"), headers=hdr)

    async def status() -> httpx.Response:
        return await http.get("/api/payment/status", params={"transactionId": txn}, headers=hdr)

    async def page() -> httpx.Response:
        return await http.get(f"/pay/{txn}")

    async def nothing() -> httpx.Response:
        return await http.get("/api/nothing-here")

    kinds = (
        ("create (new ref)", create),
        ("create (same ref)", replay),
        ("status", status),
        ("/pay/{id}", page),
        ("404 (no route)", nothing),
    )
    for label, call in kinds:
        for _ in range(20):  # warm: caches, prepared statements, the pool
            await call()
        trips.take()
        times = []
        profiler = None
        if args.profile and label == args.profile_what:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled", interval=0.0002)
            profiler.start()
        cpu0 = time.process_time()
        for _ in range(args.requests):
            t0 = time.perf_counter()
            r = await call()
            times.append(time.perf_counter() - t0)
            assert r.status_code == (404 if call is nothing else 200), r.text
        cpu_ms = (time.process_time() - cpu0) * 1000 / args.requests
        if profiler is not None:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_text(unicode=True, show_all=False))
        counts = trips.take()
        per = {k: v / args.requests for k, v in sorted(counts.items())}
        print(
            f"{label:<18} {statistics.median(times) * 1000:6.2f} ms median, "
            f"{cpu_ms:5.2f} ms CPU; per request: "
            + ", ".join(f"{k.strip()} {v:g}" for k, v in per.items() if not k.startswith(" "))
        )
        detail = ", ".join(f"{k.strip()} {v:g}" for k, v in per.items() if k.startswith(" "))
        print(f"{'':<18} statements: {detail}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--profile", metavar="FILE", help="a pyinstrument profile into FILE")
    p.add_argument(
        "--profile-what",
        default="create (new ref)",
        help="which requests to profile: 'create (new ref)', 'create (same ref)', 'status', "
        "'/pay/{id}'",
    )
    args = p.parse_args()
    os.environ.setdefault("WATCHER_SECRET_KEY", KEY)
    configure_logging(LogSettings(level="INFO"), open(os.devnull, "w"))
    print(f"{args.db}, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    eventloop.run(run(args))


if __name__ == "__main__":
    main()
