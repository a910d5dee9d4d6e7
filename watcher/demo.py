"""`watcher demo`: the whole flow on loopback, no network.

Starts the devchain (TRON + Binance), the daemon (API, follower, expiry, delivery) and a demo
merchant that verifies every callback with the SDK. Then three payments:
  A — paid in full: pending → confirming → completed, verified callback;
  B — paid in two parts: partial (still pending, the rest due) → completed;
  C — never paid: expires.
Fast blocks (0.4 s) and a short deadline keep it well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import segno
from kasa_watcher_client import WatcherClient
from rich.console import Console

from watcher.api.serving import serve_asgi
from watcher.callbacks.receiver import CallbackReceiver
from watcher.config import LogSettings, Settings
from watcher.daemon import Daemon
from watcher.devchain.binance import FakeBinance
from watcher.devchain.chain import DevChain
from watcher.devchain.server import DevChainServer
from watcher.logs import configure_logging
from watcher.merchants import Credentials, create_merchant
from watcher.money import canonical, from_micro, to_micro
from watcher.services import Services
from watcher.wallets.hd import DEMO_XPUB

BLOCK_MS = 400
SOLIDIFY_LAG = 5
DEADLINE_MIN = Decimal("0.3")  # 18 s
RATE = Decimal("35.50")
WAIT_S = 40  # generous: a loaded 2-core machine is slow, not broken


class DemoStuck(Exception):
    """An expected step did not happen in time."""


async def wait_event(
    receiver: CallbackReceiver, txn: str, events: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """The first verified callback for `txn` with one of `events`."""

    def find() -> dict[str, Any] | None:
        for payload in receiver.verified():
            if payload["transactionId"] == txn and payload["event"] in events:
                return payload
        return None

    async with receiver.arrived:
        try:
            await asyncio.wait_for(receiver.arrived.wait_for(lambda: find() is not None), timeout)
        except TimeoutError:
            raise DemoStuck(f"no {' or '.join(events)} callback for {txn} in {timeout} s") from None
    found = find()
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings(workdir: Path, node_url: str) -> Settings:
    # Nothing from the environment: WATCHER_* variables meant for a real daemon (a
    # PostgreSQL-only setting, a log level) must not change or break the demo.
    return Settings(
        _env_prefix="WATCHER_DEMO_READS_NO_ENVIRONMENT_",
        database={"url": f"sqlite+aiosqlite:///{workdir / 'demo.db'}"},
        api={"host": "127.0.0.1", "port": _free_port()},
        tron={"endpoints": [node_url], "poll_interval_s": 0.1, "late_window_h": 1},
        wallet={"mode": "hd", "xpub": DEMO_XPUB},
        rates={"binance_base_url": node_url, "quote_ttl_min": DEADLINE_MIN},
        callbacks={"allow_private_urls": True, "backoff_s": [0.5], "poll_interval_s": 0.1},
        log={"level": "WARNING"},
    )


class Demo:
    def __init__(self, console: Console):
        self.console = console
        self.t0 = time.monotonic()

    def step(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.t0:5.1f}s[/dim]  {text}", soft_wrap=True)

    async def run(self) -> int:
        chain = DevChain(solidify_lag=SOLIDIFY_LAG, block_interval_ms=BLOCK_MS)
        chain.mine(SOLIDIFY_LAG + 2)
        node = DevChainServer(chain, block_time_ms=BLOCK_MS, binance=FakeBinance(price=RATE))
        await node.start()
        try:
            with tempfile.TemporaryDirectory(prefix="watcher-demo-") as tmp:
                self.step(f"devchain (TRON + Binance USDTTRY {RATE}) at {node.url}")
                return await self._with_daemon(demo_settings(Path(tmp), node.url), chain)
        finally:
            await node.stop()

    async def _with_daemon(self, settings: Settings, chain: DevChain) -> int:
        stop = asyncio.Event()
        ready: asyncio.Future[Services] = asyncio.get_running_loop().create_future()

        async def on_ready(services: Services) -> None:
            ready.set_result(services)

        daemon = asyncio.create_task(
            Daemon(settings, frozenset({"api", "scan", "deliver"}), on_ready=on_ready).run(stop)
        )
        try:
            starting: set[asyncio.Future[Any]] = {daemon, ready}
            await asyncio.wait(starting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                self.step("[red]the daemon did not start[/red]")
                return 1
            services = ready.result()
            # The API opens before the scanner has resolved its start block (creates get 502
            # meanwhile): the demo merchant waits, as a client honouring /healthz would.
            if not await _chain_ready(settings.public_url(), timeout_s=30):
                self.step("[red]the scanner did not resolve its start block[/red]")
                return 1
            self.step(f"daemon up: API {settings.public_url()}, follower, expiry, delivery")
            async with services.sessions() as s, s.begin():
                creds = await create_merchant(s, services.box, "demo-shop")
            receiver = CallbackReceiver(creds.webhook_secret)  # verifies with the SDK
            async with serve_asgi(receiver) as hook_url:
                self.step(
                    f"merchant 'demo-shop' created (API key {creds.api_key[:14]}…); "
                    f"its webhook at {hook_url}/hook verifies every callback"
                )
                ok = await self._scenario(settings, chain, receiver, creds, f"{hook_url}/hook")
            return 0 if ok else 1
        finally:
            stop.set()
            await daemon

    async def _scenario(
        self,
        settings: Settings,
        chain: DevChain,
        receiver: CallbackReceiver,
        creds: Credentials,
        hook: str,
    ) -> bool:
        client = WatcherClient(settings.public_url(), creds.api_key)
        try:
            a, b, c = await asyncio.gather(
                client.create_payment(
                    amount=Decimal("10000.00"),
                    full_name="Ahmet Yılmaz",
                    external_ref="DEMO-A",
                    callback_url=hook,
                ),
                client.create_payment(
                    amount=Decimal("3550.00"),
                    full_name="Ayşe Kaya",
                    external_ref="DEMO-B",
                    callback_url=hook,
                ),
                client.create_payment(
                    amount=Decimal("500.00"),
                    full_name="Mehmet Öz",
                    external_ref="DEMO-C",
                    callback_url=hook,
                ),
            )
            self._show_checkout(a)
            results = await asyncio.gather(
                self._pay_in_full(chain, client, receiver, a),
                self._pay_in_parts(chain, client, receiver, b),
                self._let_expire(receiver, c),
            )
        except DemoStuck as exc:
            self.step(f"[red]demo failed: {exc}[/red]")
            return False
        finally:
            await client.aclose()
        rejected = sum(1 for r in receiver.received if r.error is not None)
        ok = all(results) and rejected == 0
        verdict = (
            "[green]demo finished: all three outcomes as expected[/green]"
            if ok
            else ("[red]demo failed[/red]")
        )
        self.step(f"{verdict}; {len(receiver.verified())} callbacks verified, {rejected} rejected")
        return ok

    def _show_checkout(self, created: dict[str, Any]) -> None:
        data = created["data"]
        self.step(
            f"payment A {created['transactionId']}: pay {data['amount']} USDT (TRC20) to "
            f"{data['walletAddress']} at {data['rate']} TRY/USDT"
        )
        self.step(f"checkout page: {created['paymentUrl']}")
        buf = io.StringIO()
        segno.make(data["walletAddress"], error="m").terminal(out=buf, compact=True, border=2)
        self.console.print(buf.getvalue(), highlight=False)

    async def _pay_in_full(
        self,
        chain: DevChain,
        client: WatcherClient,
        receiver: CallbackReceiver,
        created: dict[str, Any],
    ) -> bool:
        txn, data = created["transactionId"], created["data"]
        txid = chain.transfer(data["walletAddress"], to_micro(Decimal(str(data["amount"]))))
        self.step(f"A: payer sends {data['amount']} USDT, tx {txid[:16]}…")
        first = await wait_event(receiver, txn, ("payment.confirming", "payment.completed"), WAIT_S)
        if first["event"] == "payment.confirming":  # a busy follower may see it final at once
            self.step(
                f"A: [yellow]confirming[/yellow] (seen in a block, not final yet; "
                f"callback seq {first['sequence']} verified)"
            )
        done = await wait_event(receiver, txn, ("payment.completed",), WAIT_S)
        self.step(
            f"A: [green]completed[/green]: verified payment.completed callback, "
            f"received {done['crypto']['receivedUsdt']} USDT, txids {len(done['crypto']['txids'])}"
        )
        status = await client.get_status(transaction_id=txn)
        return bool(status["status"] == "completed")

    async def _pay_in_parts(
        self,
        chain: DevChain,
        client: WatcherClient,
        receiver: CallbackReceiver,
        created: dict[str, Any],
    ) -> bool:
        txn, data = created["transactionId"], created["data"]
        due = to_micro(Decimal(str(data["amount"])))
        first = due // 2
        chain.transfer(data["walletAddress"], first)
        self.step(f"B: payer sends only {canonical(from_micro(first))} of {data['amount']} USDT")
        for _ in range(150):
            tx = await client.get_status(transaction_id=txn)
            if tx["status"] == "pending" and Decimal(str(tx["crypto"]["receivedUsdt"])) > 0:
                break
            await asyncio.sleep(0.2)
        self.step(
            f"B: partial: status {tx['status']}, received {tx['crypto']['receivedUsdt']}"
            f" USDT, {canonical(from_micro(due - first))} USDT still due"
        )
        chain.transfer(data["walletAddress"], due - first)
        self.step("B: payer sends the rest")
        await wait_event(receiver, txn, ("payment.completed",), WAIT_S)
        self.step("B: [green]completed[/green] after two transfers")
        return True

    async def _let_expire(self, receiver: CallbackReceiver, created: dict[str, Any]) -> bool:
        txn = created["transactionId"]
        self.step(
            f"C: nobody pays {created['data']['amount']} USDT; deadline "
            f"{created['data']['expiresAt']}"
        )
        event = await wait_event(receiver, txn, ("payment.expired",), WAIT_S + 20)
        self.step(f"C: [red]expired[/red] (callback verified, status {event['status']})")
        return True


def run_demo(console: Console | None = None) -> int:
    # The demo narrates on stdout; the daemon's own logs would drown it, so only warnings
    # and errors reach stderr.
    configure_logging(LogSettings(level="WARNING", json_logs=False))
    return asyncio.run(Demo(console or Console()).run())


async def _chain_ready(api_url: str, *, timeout_s: float) -> bool:
    """Whether /healthz stops saying "starting" within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                health = (await http.get(f"{api_url}/healthz")).json()
                if health.get("status") != "starting":
                    return True
            await asyncio.sleep(0.1)
    return False
