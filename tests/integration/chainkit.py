"""A follower wired to a devchain over real HTTP on loopback, and a database of either kind.

Payments are inserted directly (status pending, address, amount, created_block, expires), as
the API would leave them; the follower and expirer are driven step by step, no timers.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from typer.testing import CliRunner

from watcher.cli import app as watcher_cli
from watcher.config import Settings
from watcher.db.models import ChainCursor, Payment, PaymentEvent, Transfer
from watcher.devchain.chain import DevChain
from watcher.devchain.server import DevChainServer
from watcher.logs import configure_logging
from watcher.merchants import create_merchant
from watcher.secrets import load_box, new_id
from watcher.tron.address import to_base58
from watcher.tron.client import NodeError, TronClient, node_session
from watcher.tron.expiry import Expirer
from watcher.tron.follower import Follower, ensure_start_cursor

T0 = 1_800_000_000_000  # the devchain's first block timestamp
LAG = 4  # blocks between head and solidified head
DAY_MS = 86_400_000
USDT_10 = 10_000_000


class FakeClock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def address(rng: random.Random) -> str:
    return to_base58("41" + rng.randbytes(20).hex())


@dataclass
class Rig:
    chain: DevChain
    server: DevChainServer
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    http: aiohttp.ClientSession
    clock: FakeClock
    merchant_id: int
    visible: bool = False
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    follower: Follower = field(init=False)
    client: TronClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.new_client()
        self.follower = self.new_follower()

    def new_client(self, **kw: Any) -> TronClient:
        kw.setdefault("visible", self.visible)
        kw.setdefault("backoff_base_s", 0.001)
        kw.setdefault("backoff_cap_s", 0.005)
        return TronClient(self.settings.tron, self.http, **kw)

    def new_follower(self, client: TronClient | None = None, **kw: Any) -> Follower:
        return Follower(self.settings, self.sessions, client or self.client, self.clock, **kw)

    def expirer(self) -> Expirer:
        return Expirer(self.settings, self.sessions, self.clock)

    def address(self) -> str:
        return address(self.rng)

    async def start(self) -> int:
        return await ensure_start_cursor(self.settings, self.sessions, self.client)

    async def pay(
        self,
        amount_micro: int = USDT_10,
        *,
        to: str | None = None,
        expires_ms: int | None = None,
        created_block: int | None = None,
        status: str = "pending",
        callback_url: str | None = None,
    ) -> Payment:
        async with self.sessions() as s, s.begin():
            if created_block is None:
                cursor = await s.get(ChainCursor, "seen")
                assert cursor is not None, "start the follower first"
                created_block = cursor.block_number
            now = self.clock()
            p = Payment(
                id=new_id("txn_"),
                merchant_id=self.merchant_id,
                external_ref=uuid.uuid4().hex[:20],
                provider="crypto",
                amount_kurus=35_500,
                full_name="Ayşe Yılmaz",
                status=status,
                created_ms=now,
                updated_ms=now,
                expires_ms=expires_ms if expires_ms is not None else T0 + DAY_MS,
                address=to or self.address(),
                amount_micro=amount_micro,
                rate="35.5",
                created_block=created_block,
                callback_url=callback_url,
            )
            s.add(p)
        return p

    def block_ms(self, number: int) -> int:
        """The timestamp the devchain gives block `number` (fixed interval from T0)."""
        return T0 + (number - self.chain.first_number) * self.chain.block_interval_ms

    async def catch_up(self, follower: Follower | None = None, limit: int = 5000) -> int:
        """Step until there is nothing to do; the number of node errors met on the way."""
        f = follower or self.follower
        errors = 0
        last: Exception | None = None
        for _ in range(limit):
            try:
                if not await f.step():
                    return errors
            except NodeError as exc:
                errors += 1
                last = exc
        raise AssertionError(f"the follower did not catch up: {errors} errors, last {last!r}")

    async def payment(self, payment_id: str) -> Payment:
        async with self.sessions() as s:
            p = await s.get(Payment, payment_id)
            assert p is not None
            return p

    async def events(self, payment_id: str) -> list[str]:
        async with self.sessions() as s:
            rows = await s.execute(
                select(col(PaymentEvent.type))
                .where(col(PaymentEvent.payment_id) == payment_id)
                .order_by(col(PaymentEvent.id))
            )
            return [r for (r,) in rows]

    async def transfers(self) -> list[Transfer]:
        async with self.sessions() as s:
            rows = await s.execute(
                select(Transfer).order_by(col(Transfer.block_number), col(Transfer.log_index))
            )
            return list(rows.scalars())

    async def cursor(self, name: str) -> int:
        async with self.sessions() as s:
            c = await s.get(ChainCursor, name)
            assert c is not None
            return c.block_number


# A follower in its own process (argv[1]: {"settings": …, "now": ms}), for tests that kill it.
FOLLOWER_PROCESS = """
import asyncio, json, sys
from watcher.config import Settings
from watcher.db.engine import create_engine, session_factory
from watcher.tron.client import TronClient, node_session
from watcher.tron.follower import Follower

async def main() -> None:
    args = json.loads(sys.argv[1])
    settings = Settings(**args["settings"])
    engine = create_engine(settings.database.url)
    async with node_session() as http:
        client = TronClient(settings.tron, http, backoff_base_s=0.001, backoff_cap_s=0.005)
        follower = Follower(settings, session_factory(engine), client, lambda: args["now"])
        await follower.run(asyncio.Event())

asyncio.run(main())
"""


def settings_for(db_url: str, endpoints: list[str], **tron: Any) -> Settings:
    tron_settings: dict[str, Any] = {
        "endpoints": endpoints,
        "start_block": "latest",
        "finality": "solidified",
        "poll_interval_s": 0.01,
        "request_timeout_s": 2.0,
        "late_window_h": 24,
    }
    tron_settings.update(tron)
    wallet = tron_settings.pop("wallet", {"mode": "hd"})
    return Settings(database={"url": db_url}, tron=tron_settings, wallet=wallet)


def new_chain() -> DevChain:
    chain = DevChain(solidify_lag=LAG, start_time_ms=T0, seed=11)
    chain.mine(LAG + 2)
    return chain


@contextmanager
def shared_devchain() -> Iterator[DevChainServer]:
    """One devchain on its own thread for a whole test module: tests start at its head
    (start_block = "latest"), so they do not see each other's blocks."""
    with DevChainServer(new_chain()) as server:
        yield server


@asynccontextmanager
async def rig(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    *,
    server: DevChainServer | None = None,
    visible: bool = False,
    extra_endpoints: tuple[str, ...] = (),
    api_key: str | None = None,
    **tron: Any,
) -> AsyncIterator[Rig]:
    own = server is None
    if server is None:
        server = DevChainServer(new_chain(), api_key=api_key)
        await server.start()
    else:
        # A follower starts at the solidified head: bury the blocks of earlier tests first
        # (their addresses repeat, from the same seed), so this one sees none of them.
        server.chain.mine(LAG)
    if api_key:
        tron["api_key"] = api_key
    settings = settings_for(db_url, [*extra_endpoints, server.url], **tron)
    async with sessions() as s, s.begin():
        creds = await create_merchant(s, load_box(db_url), "shop-" + uuid.uuid4().hex[:6])
    http = node_session()
    hang_s, slow_s = server.hang_s, server.slow_s
    try:
        yield Rig(server.chain, server, settings, sessions, http, FakeClock(), creds.id, visible)
    finally:
        await http.close()
        server.chain.clear_faults()
        server.hang_s, server.slow_s = hang_s, slow_s
        if own:
            await server.stop()


async def cli(r: Rig, *args: str) -> Result:
    """The real `watcher` command line on the rig's database, in a thread (it runs its own
    event loop); stdout and stderr apart."""
    env = {
        "WATCHER_DATABASE__URL": r.settings.database.url,
        "WATCHER_TRON__ENDPOINTS": json.dumps(r.settings.tron.endpoints),
        "WATCHER_CONFIG": None,
    }
    try:
        return await asyncio.to_thread(CliRunner().invoke, watcher_cli, list(args), env=env)
    finally:
        configure_logging(r.settings.log)  # the command pointed logs at the runner's stderr
