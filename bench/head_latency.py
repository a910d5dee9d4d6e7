"""Latency at the head: from a block becoming final on the node to the merchant's callback.

    .venv/bin/python bench/head_latency.py [--payments 60] [--db sqlite|postgres] \
        [--solidify-lag 3] [--tree PATH]

A devchain makes a block every 3 s on the wall clock (`watcher devchain`, its own process);
`watcher run` follows it with its default settings (poll interval included) and delivers
callbacks to a receiver in this process. Payments are created through the API every 1.5 s
and paid at once with the exact amount; each is completed when its transfer's block is
final (`--solidify-lag` blocks later: finality is read from the node, as in production).

An observer in this process asks the node for its solidified head every 5 ms and notes when
each block became final; a callback's latency is its arrival minus that moment for the block
holding the payment's transfer. The baseline, measured in the same run: a plain loop that
polls the node for the solidified head at the daemon's default poll interval
(tron.poll_interval_s = 1 s) and does nothing else: how late it sees the same blocks become
final (ten such loops, a tenth of a second apart: blocks come on the clock, one loop alone
would always be late by the same amount). Figures: p50, p90,
p99 and max of both, and the ratio of the p99s. `--tree PATH` runs another checkout's
daemon (PATH/.venv/bin/watcher) for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_load import free_port, pg_database, pg_drop  # noqa: E402
from watcher.wallets.hd import DEMO_XPUB  # noqa: E402

KEY = "x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE="
DEFAULT_POLL_S = 1.0  # tron.poll_interval_s's default
PHASES = 10  # baseline pollers, started a tenth of the interval apart (blocks come on the clock)


class Observer:
    """When each block became final on the node, as seen by polling every `every_s`."""

    def __init__(self, node: str, every_s: float) -> None:
        self.node = node
        self.every_s = every_s
        self.final_at: dict[int, float] = {}
        self._last = -1

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with http.post(
                    self.node + "/walletsolidity/getblock", json={"detail": False}
                ) as resp:
                    header = await resp.json(content_type=None)
                number = int(header["blockID"][:16], 16)
            except (aiohttp.ClientError, KeyError, ValueError):
                number = self._last
            now = time.time()
            if self._last >= 0:
                for n in range(self._last + 1, number + 1):
                    self.final_at.setdefault(n, now)
            self._last = max(self._last, number)
            await asyncio.sleep(self.every_s)


async def _after(
    delay_s: float, o: Observer, http: aiohttp.ClientSession, stop: asyncio.Event
) -> None:
    await asyncio.sleep(delay_s)
    await o.run(http, stop)


class Receiver:
    def __init__(self) -> None:
        self.completed: dict[str, tuple[float, list[str]]] = {}  # payment -> (arrival, txids)

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.json()
        if body.get("event") == "payment.completed" or body.get("status") == "completed":
            pid = body.get("transactionId") or body.get("transaction", {}).get("id")
            crypto = body.get("crypto") or body.get("transaction", {}).get("crypto") or {}
            self.completed.setdefault(str(pid), (arrived, list(crypto.get("txids") or [])))
        return web.json_response({"received": True})


async def block_of(http: aiohttp.ClientSession, node: str, txid: str) -> int | None:
    async with http.post(node + "/wallet/gettransactioninfobyid", json={"value": txid}) as resp:
        info = await resp.json(content_type=None)
    number = info.get("blockNumber") if isinstance(info, dict) else None
    return int(number) if number is not None else None


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    qs = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else []

    def q(p: int) -> float:
        return qs[p - 1] if qs else ordered[0]

    return {"p50": q(50), "p90": q(90), "p99": q(99), "max": ordered[-1], "n": len(ordered)}


def show(label: str, stats: dict[str, float]) -> None:
    print(
        f"  {label:<44} n={int(stats['n']):>3}  p50 {1000 * stats['p50']:6.0f} ms  "
        f"p90 {1000 * stats['p90']:6.0f} ms  p99 {1000 * stats['p99']:6.0f} ms  "
        f"max {1000 * stats['max']:6.0f} ms",
        flush=True,
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--payments", type=int, default=60)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--solidify-lag", type=int, default=3)
    p.add_argument("--tree", type=Path, default=ROOT, help="checkout whose daemon to run")
    args = p.parse_args()
    watcher = str(args.tree / ".venv" / "bin" / "watcher")
    folder = Path(tempfile.mkdtemp(prefix="head-latency-"))
    env = {**os.environ, "WATCHER_SECRET_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[bytes]] = []
    pg_name = ""
    stop = asyncio.Event()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load}; daemon from {args.tree}, {args.db}")
    try:
        node_port, api_port, hook_port = free_port(), free_port(), free_port()
        node, api = f"http://127.0.0.1:{node_port}", f"http://127.0.0.1:{api_port}"
        with open(folder / "devchain.log", "wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        *(watcher, "devchain", "--port", str(node_port)),
                        *("--block-time-ms", "3000", "--solidify-lag", str(args.solidify_lag)),
                    ],
                    stdout=out,
                    stderr=out,
                    env=env,
                )
            )
        if args.db == "postgres":
            url, pg_name = await pg_database()
        else:
            url = f"sqlite+aiosqlite:///{folder}/watcher.db"
        config = folder / "watcher.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n[api]\nport = {api_port}\nrate_limit_per_minute = 0\n'
            f'[tron]\nendpoints = ["{node}"]\n[wallet]\nxpub = "{DEMO_XPUB}"\n'
            f'[rates]\nbinance_base_url = "{node}"\n[callbacks]\nallow_private_urls = true\n'
        )
        env["WATCHER_CONFIG"] = str(config)
        receiver = Receiver()
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", hook_port).start()
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.post(node + "/wallet/getnodeinfo") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            init = subprocess.run([watcher, "init", "--json"], env=env, capture_output=True)
            key = json.loads(init.stdout)["api_key"]
            with open(folder / "daemon.log", "wb") as out:
                procs.append(subprocess.Popen([watcher, "run"], stdout=out, stderr=out, env=env))
            observer = Observer(node, 0.005)
            plain = [Observer(node, DEFAULT_POLL_S) for _ in range(PHASES)]
            watching = [asyncio.create_task(observer.run(http, stop))]
            for i, o in enumerate(plain):  # pollers a tenth of the interval apart
                watching.append(
                    asyncio.create_task(_after(i * DEFAULT_POLL_S / PHASES, o, http, stop))
                )
            txids: dict[str, str] = {}
            made = 0
            while made < args.payments:
                body = {
                    "amount": 1500,
                    "fullName": "Ahmet Yılmaz",
                    "externalRef": f"lat-{uuid.uuid4().hex[:12]}",
                    "callbackUrl": f"http://127.0.0.1:{hook_port}/hook",
                }
                try:
                    async with http.post(
                        api + "/api/payment/create", json=body, headers={"x-api-key": key}
                    ) as resp:
                        created = await resp.json(content_type=None)
                except aiohttp.ClientError:
                    created = {}
                if not created.get("success"):
                    await asyncio.sleep(0.5)  # the daemon is starting
                    continue
                micro = int(Decimal(str(created["data"]["amount"])) * 1_000_000)
                async with http.post(
                    node + "/_dev/transfer",
                    json={"to": created["data"]["walletAddress"], "amount": micro},
                ) as resp:
                    txids[created["transactionId"]] = (await resp.json())["txid"]
                made += 1
                await asyncio.sleep(1.5)
            deadline = time.time() + 3 * (args.solidify_lag + 4) + 10
            while len(receiver.completed) < made and time.time() < deadline:
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*watching)
            latencies, plain_lat = [], []
            for pid, (arrived, paid_by) in receiver.completed.items():
                block = await block_of(http, node, (paid_by or [txids[pid]])[-1])
                if block is None or block not in observer.final_at:
                    continue
                latencies.append(arrived - observer.final_at[block])
                plain_lat.extend(
                    o.final_at[block] - observer.final_at[block]
                    for o in plain
                    if block in o.final_at
                )
        await runner.cleanup()
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        if pg_name:
            await pg_drop(pg_name)
    print(f"{len(receiver.completed)} of {made} payments called back as completed")
    if not latencies:
        raise SystemExit(f"no latency measured; logs in {folder}")
    ours, base = percentiles(latencies), percentiles(plain_lat)
    show("block final on the node -> callback received", ours)
    show(f"baseline: polling the node every {DEFAULT_POLL_S:g} s", base)
    print(f"  p99 / baseline p99: {ours['p99'] / base['p99']:.2f}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average after: {load}")


if __name__ == "__main__":
    asyncio.run(main())
