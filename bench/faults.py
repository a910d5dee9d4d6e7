"""Faults for minutes: the daemon under a sick node, a node restarted behind, Binance down,
its database gone and a merchant's endpoint down for hours, with payments coming all along.

    .venv/bin/python bench/faults.py [--db postgres|sqlite] [--node-faults-s 180] [--seed 1]

One `watcher run` follows a devchain (a block every 0.5 s) while payments are created and
paid (two a second: full, partial then the rest, over, late). Phases, in order:

    node        every chain request may get a 500, a 503, a timeout (no answer within the
                daemon's request timeout) or a slow body (2 s), for --node-faults-s seconds
    node-behind the node stopped and started again (same port) answering with a head 40
                blocks below what the daemon has read, for 40 s, then caught up
    binance     Binance answers 503: creates get 502 PROVIDER_ERROR (a probe checks that such a
                create left nothing behind: its externalRef is 404), then back
    database    PostgreSQL: the harness's own cluster (pg_ctl, in a temporary folder; never the
                system one) stopped for 30 s; SQLite: another process holds the file's write
                lock for 30 s
    merchant    the merchant's endpoint answers 503 for "3 hours": the retry schedule is the
                default one (1 min, 10 min, 1 h, 6 h) divided by 240, so 3 h are 45 s

with quiet spells between them. Every 5 s a timeline line: time, phase, what /healthz said,
how creates were answered since the last line. At the end the soak's audit (every payment in
its expected state, every event delivered, duplicates counted, nothing lost) and whether the
daemon ran throughout. Exit 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import pgcluster
from tests.support.pgcluster import PgCluster
from tests.support.soak import audit
from tests.support.soak.merchant import Merchant, serving
from tests.support.soak.payers import Api, Forker, Order, Payer, plan
from tests.support.soak.processes import Layout, daemon_config, free_port
from tests.support.soak.run import (
    Killer,
    devchain,
    init_merchant,
    log_findings,
    until_ready,
    wait_settled,
)
from watcher.config import LogSettings
from watcher.devchain.server import DevChainServer
from watcher.logs import configure_logging

MIX = {"full": 50, "partial": 20, "over": 15, "late": 15}
COMPRESSION = 240  # retry schedule divided by this: 3 h of outage = 45 s
DEFAULT_SCHEDULE_S = [60, 600, 3600, 21600]
NODE_FAULTS = ["http_500", "http_503", "timeout", "slow"]
QUIET_S = 15


@dataclass
class Timeline:
    t0: float
    phase: str = "baseline"
    lines: list[str] = field(default_factory=list)
    health: dict[str, Counter[str]] = field(default_factory=dict)  # phase -> what it said

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, text: str) -> None:
        self.lines.append(f"{self.now():6.1f} s  {self.phase:12} {text}")
        print(self.lines[-1], flush=True)

    def enter(self, phase: str, what: str) -> None:
        self.phase = phase
        self.note(f">>> {what}")


def health_text(status: int | None, body: dict[str, Any] | None) -> str:
    """What /healthz said, in one line: the verdict, then every check that is not ok or has
    something to say (a `reason` while ok, the follower waiting for the node, callbacks due)."""
    if status is None or body is None:
        return "healthz: no answer"
    parts = [f"healthz {status} {body.get('status')}"]
    for name, check in body.get("checks", {}).items():
        why = check.get("reason") or check.get("error") or check.get("waiting")
        if not check.get("ok", True):
            parts.append(f"{name} NOT ok: {why or 'no reason given'}")
        elif why:
            parts.append(f"{name} ok: {why}")
    delivery = body.get("checks", {}).get("delivery", {})
    if delivery.get("due"):
        parts.append(f"callbacks due {delivery['due']}")
    return "; ".join(parts)


async def sample(tl: Timeline, api: Api, port: int, stop: asyncio.Event) -> None:
    seen: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            try:
                resp = await http.get(f"http://127.0.0.1:{port}/healthz")
                status, body = resp.status_code, resp.json()
            except (httpx.HTTPError, ValueError):
                status, body = None, None
            said = health_text(status, body)
            tl.health.setdefault(tl.phase, Counter())[said.split(";")[0]] += 1
            now = api.answers.copy()
            delta = now - seen
            seen = now
            creates = ", ".join(f"{n}×{c}" for c, n in sorted(delta.items())) or "none"
            tl.note(f"creates {creates} | {said}")
            try:
                await asyncio.wait_for(stop.wait(), 5)
            except TimeoutError:
                pass


async def node_faults(node: DevChainServer, seconds: float, rng: random.Random) -> int:
    """Keep chain requests failing for `seconds`: about five faults a second, each taken by
    the next request (500, 503, a hang past the daemon's timeout, or a slow answer)."""
    node.hang_s, node.slow_s = 5.0, 2.0
    injected = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if node.chain.faults_queued < 8:
            node.chain.inject_fault(rng.choice(NODE_FAULTS))
            injected += 1
        await asyncio.sleep(0.2)
    node.chain.clear_faults()
    return injected


async def restart_behind(node: DevChainServer, behind: int, seconds: float) -> DevChainServer:
    """Stop the node and start it again on the same port, answering as a node `behind`
    blocks back (restored from an older state) for `seconds`, then caught up."""
    port = int(node.url.rsplit(":", 1)[1])
    await asyncio.to_thread(node.stop_in_thread)
    await asyncio.sleep(2)
    again = DevChainServer(
        node.chain, port=port, block_time_ms=node.block_time_ms, binance=node.binance
    )
    node.chain.inject_fault("stale_head", 10**9, behind=behind)
    again.start_in_thread()
    await asyncio.sleep(seconds)
    node.chain.clear_faults()
    return again


class SqliteLock:
    """Another process's write transaction on the database file (a backup tool, a sqlite3
    shell left open): BEGIN EXCLUSIVE held for a while."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._release = threading.Event()
        self._held = threading.Event()
        self._thread: threading.Thread | None = None

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self._held.set()
            self._release.wait()
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    async def hold(self, seconds: float) -> None:
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._held.wait, 60)
        await asyncio.sleep(seconds)
        self._release.set()
        await asyncio.to_thread(self._thread.join)


@asynccontextmanager
async def database(kind: str, workdir: Path) -> AsyncIterator[tuple[str, PgCluster | None]]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'watcher.db'}", None
        return
    if not pgcluster.available():
        raise SystemExit("no initdb/pg_ctl: cannot run a private PostgreSQL cluster")
    cluster = PgCluster()
    try:
        await asyncio.to_thread(cluster.init)
        await asyncio.to_thread(cluster.start)
        conn = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres")
        await conn.execute("CREATE DATABASE faults")
        await conn.close()
        yield cluster.url("faults"), cluster
    finally:
        await asyncio.to_thread(cluster.remove)


async def generate(
    payer: Payer, rng: random.Random, stop: asyncio.Event, orders: list[Order], every_s: float
) -> None:
    prefix = f"FAULT-{uuid.uuid4().hex[:6]}"
    tasks = []
    while not stop.is_set():
        (order,) = plan(1, rng, prefix, MIX, start=len(orders))
        orders.append(order)
        tasks.append(asyncio.create_task(payer.run(order)))
        await asyncio.sleep(every_s)
    await asyncio.gather(*tasks)


async def probe_binance(api: Api, tl: Timeline, results: Counter[str]) -> None:
    """One create without retries while Binance is down: 502, and its ref not stored."""
    ref = f"PROBE-{uuid.uuid4().hex[:8]}"
    base = api.bases[0]
    body = {"amount": 1000, "fullName": "Probe", "externalRef": ref, "provider": "crypto"}
    made = await api.http.post(f"{base}/api/payment/create", json=body)
    code = made.json().get("error", {}).get("code", "") if made.status_code != 200 else ""
    found = await api.http.get(f"{base}/api/payment/status", params={"externalRef": ref})
    verdict = f"create {made.status_code} {code}, then status by its ref {found.status_code}"
    results[verdict] += 1
    tl.note(f"probe {ref}: {verdict}")


async def faults(args: argparse.Namespace) -> int:
    configure_logging(LogSettings(level="WARNING", json_logs=False))
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="watcher-faults-"))
    print(f"faults on {args.db}; work folder {workdir}", flush=True)
    schedule = [s / COMPRESSION for s in DEFAULT_SCHEDULE_S]
    async with database(args.db, workdir) as (db_url, cluster), devchain(500, 6) as node:
        port = free_port()
        config = daemon_config(
            workdir / "watcher.toml",
            db_url=db_url,
            node_url=node.url,
            port=port,
            ttl_s=args.ttl_s,
            backoff_s=schedule,
            tron={"max_lag_blocks": 10},
            rates={"cache_s": 1, "max_age_s": 5},
        )
        creds = init_merchant(config)
        (workdir / "logs").mkdir()
        layout = Layout.single(config, workdir / "logs", port)
        merchant = Merchant(creds["webhook_secret"])
        async with serving(merchant):
            layout.start()
            try:
                await until_ready(layout.api_ports)
                return await _phases(
                    args, rng, layout, merchant, creds, db_url, cluster, node, schedule
                )
            finally:
                codes = layout.stop()
                print(f"daemon stopped with SIGTERM: exit code {codes}", flush=True)
                events, tracebacks = log_findings(layout)
                print(
                    "daemon log: "
                    + (
                        ", ".join(f"{n} × {e}" for e, n in events.most_common())
                        or "no error events"
                    )
                    + f"; {len(tracebacks)} tracebacks"
                )
                print(f"logs kept in {workdir}", flush=True)


async def _phases(
    args: argparse.Namespace,
    rng: random.Random,
    layout: Layout,
    merchant: Merchant,
    creds: dict[str, str],
    db_url: str,
    cluster: PgCluster | None,
    node: DevChainServer,
    schedule: list[float],
) -> int:
    t0 = time.monotonic()
    tl = Timeline(t0)
    api = Api(layout.api_ports, creds["api_key"], merchant.url)
    chain = node.chain
    payer = Payer(api, chain, Forker(chain, rng, t0), ttl_s=args.ttl_s)
    orders: list[Order] = []
    stop_load, stop_sampling = asyncio.Event(), asyncio.Event()
    load = asyncio.create_task(generate(payer, rng, stop_load, orders, 0.5))
    sampler = asyncio.create_task(sample(tl, api, layout.api_ports[0], stop_sampling))
    watchdog = Killer(layout, [], rng, t0)  # no kills: notes a daemon that ends by itself
    probes: Counter[str] = Counter()

    async def quiet(seconds: float = QUIET_S, phase: str = "quiet") -> None:
        tl.enter(phase, f"no fault for {seconds:.0f} s")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            watchdog.restart_exited()
            await asyncio.sleep(0.5)

    await quiet(20, "baseline")
    tl.enter("node", f"node: 500/503/timeouts/slow bodies for {args.node_faults_s:.0f} s")
    injected = await node_faults(node, args.node_faults_s, rng)
    tl.note(f"<<< node faults over: {injected} injected")
    await quiet()
    tl.enter("node-behind", "node stopped and started again 40 blocks behind, for 40 s")
    node = await restart_behind(node, 40, 40)
    tl.note("<<< node caught up")
    await quiet()
    tl.enter("binance", "Binance answers 503 for 40 s (rates.max_age_s = 5)")
    assert node.binance is not None
    node.binance.mode = "down"
    end = time.monotonic() + 40
    await asyncio.sleep(8)  # past max_age_s: the last rate may no longer be used
    while time.monotonic() < end:
        await probe_binance(api, tl, probes)
        await asyncio.sleep(6)
    node.binance.mode = "ok"
    tl.note("<<< Binance back")
    await quiet()
    if cluster is not None:
        tl.enter("database", "PostgreSQL (the harness's own cluster) stopped for 30 s")
        await asyncio.to_thread(cluster.stop)
        await asyncio.sleep(30)
        await asyncio.to_thread(cluster.start)
    else:
        tl.enter("database", "SQLite file write-locked by another process for 30 s")
        path = Path(db_url.removeprefix("sqlite+aiosqlite:///"))
        await SqliteLock(path).hold(30)
    tl.note("<<< database back")
    await quiet()
    hours = 3
    down_s = hours * 3600 / COMPRESSION
    tl.enter(
        "merchant",
        f"merchant endpoint down for {hours} h (= {down_s:.0f} s; retries "
        f"after {', '.join(f'{s:g}' for s in schedule)} s)",
    )
    merchant.down = True
    await asyncio.sleep(down_s)
    merchant.down = False
    tl.note("<<< merchant back")
    await quiet()
    tl.enter("tail", "load stopped; waiting for everything to settle")
    stop_load.set()
    await load
    why = await wait_settled(db_url, orders, merchant, chain, 300, watchdog)
    stop_sampling.set()
    await sampler
    await api.aclose()
    findings = audit.check(await audit.snapshot(db_url), orders, merchant, chain)
    lines = ["", "HEALTHZ BY PHASE"]
    for phase, said in tl.health.items():
        lines.append(f"  {phase:12} " + "; ".join(f"{n}× {s}" for s, n in said.most_common()))
    lines += ["", "BINANCE PROBES (create while down, then status by its externalRef)"]
    lines += [f"  {n}× {v}" for v, n in probes.items()]
    lines += ["", "FOUND", *findings.lines, *findings.violation_lines()]
    ok = findings.ok and not why and not watchdog.self_exits
    ok = ok and all(v.startswith("create 502 PROVIDER_ERROR") and v.endswith("404") for v in probes)
    for exit_ in watchdog.self_exits:
        lines.append(f"  VIOLATION the daemon ended by itself: {exit_}")
    if why:
        lines.append(f"  VIOLATION not settled 300 s after the load stopped: {why}")
    lost = len(findings.violations.get(audit.LOST, []))
    lines.append(f"losses: events lost {lost}; duplicates {merchant.duplicates}")
    lines.append("RESULT: " + ("PASS" if ok else "FAIL (violations above)"))
    for line in lines:
        print(line, flush=True)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--node-faults-s", type=float, default=180)
    parser.add_argument("--ttl-s", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    return asyncio.run(faults(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
