"""The crash soak: payments made and paid while the daemon's processes are SIGKILLed at random
moments and started again; then everything is audited (tests.support.soak.audit).

Time is compressed: blocks every `block_ms`, payments open `ttl_s` seconds, callback retries
after fractions of a second. The devchain (TRON + Binance) runs on a thread of this process,
the merchant's endpoint in its loop; the daemon runs as `watcher` processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

from tests.support.soak import audit
from tests.support.soak.merchant import Merchant, serving
from tests.support.soak.payers import Api, Forker, Order, Payer, plan
from tests.support.soak.processes import Layout, Process, daemon_config, free_port, watcher_cli
from watcher.config import LogSettings
from watcher.devchain.binance import FakeBinance
from watcher.devchain.chain import DevChain
from watcher.devchain.server import DevChainServer
from watcher.logs import configure_logging

PG_HOST = os.environ.get("WATCHER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("WATCHER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("WATCHER_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("WATCHER_TEST_PG_DB", "test")
RATE = Decimal("35.50")


@dataclass
class Options:
    payments: int = 2000
    kills: int = 20
    db: str = "sqlite"  # sqlite | postgres
    split: bool = False
    rate: float = 10.0  # payments started per second
    ttl_s: float = 60.0  # how long a payment stays open
    block_ms: int = 500
    solidify_lag: int = 6
    backoff_s: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    settle_timeout_s: float = 300.0
    seed: int = 1
    keep: bool = False  # keep the work folder (logs, SQLite file) even when all is well


@dataclass
class Kill:
    at_s: float
    target: str
    pid: int | None
    restarted_after_s: float


@dataclass
class Result:
    ok: bool
    lines: list[str]
    workdir: Path


# -- the database ---------------------------------------------------------------------------


async def _pg_admin(sql: str, host: str = PG_HOST, port: int = PG_PORT) -> None:
    conn = await asyncpg.connect(host=host, port=port, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def database(kind: str, workdir: Path) -> AsyncIterator[str]:
    """A URL of an empty database: a SQLite file in `workdir`, or a new database on the
    shared PostgreSQL server (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'watcher.db'}"
        return
    name = f"watcher_soak_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def devchain(block_ms: int, solidify_lag: int) -> AsyncIterator[DevChainServer]:
    chain = DevChain(solidify_lag=solidify_lag, block_interval_ms=block_ms)
    chain.mine(solidify_lag + 2)
    server = DevChainServer(chain, block_time_ms=block_ms, binance=FakeBinance(price=RATE))
    server.start_in_thread()
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop_in_thread)


async def until_ready(ports: list[int], timeout_s: float = 90) -> None:
    """Every API answers /healthz with something other than "starting"."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as http:
        for port in ports:
            while True:
                try:
                    health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
                    if health.get("status") != "starting":
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API on port {port} did not get ready")
                await asyncio.sleep(0.2)


def init_merchant(config: Path) -> dict[str, str]:
    done = watcher_cli(config, "init", "--name", "soak-shop", "--json")
    if done.returncode != 0:
        raise RuntimeError(f"watcher init failed: {done.stderr[-2000:]}")
    creds: dict[str, str] = json.loads(done.stdout)
    return creds


# -- killing --------------------------------------------------------------------------------


class Killer:
    """SIGKILLs a process of the layout at each of the planned moments and starts it again
    after a short random pause; starts again, too, any process that ended by itself (that
    is noted: a daemon must never end by itself)."""

    def __init__(
        self, layout: Layout, moments_s: list[float], rng: random.Random, t0: float
    ) -> None:
        self.layout = layout
        self.moments_s = sorted(moments_s)
        self.rng = rng
        self.t0 = t0
        self.kills: list[Kill] = []
        self.self_exits: list[str] = []

    def _target(self) -> tuple[Process, str]:
        layout = self.layout
        if not layout.of("scan"):
            return layout.processes[0], "watcher run"
        role = self.rng.choices(["scan", "deliver", "api"], weights=[4, 4, 2])[0]
        if role == "scan":
            leading = [p for p in layout.of("scan") if p.alive and p.leading()]
            if leading:
                return leading[0], "the active scanner"
            return self.rng.choice(layout.of("scan")), "a scanner (none leading yet)"
        what = "an API process" if role == "api" else "a delivery worker"
        return self.rng.choice(layout.of(role)), what

    async def run(self) -> None:
        for moment in self.moments_s:
            while time.monotonic() - self.t0 < moment:
                self.restart_exited()
                await asyncio.sleep(0.1)
            target, what = self._target()
            pid = target.pid
            target.kill()
            at = time.monotonic() - self.t0
            pause = self.rng.uniform(0.2, 1.5)
            await asyncio.sleep(pause)
            target.start()
            self.kills.append(Kill(at, f"{target.name} ({what})", pid, pause))

    def restart_exited(self) -> None:
        for p in self.layout.processes:
            code = p.reap()
            if code is not None and code != -9:
                at = time.monotonic() - self.t0
                self.self_exits.append(
                    f"{p.name} ended by itself with code {code} at "
                    f"{at:.1f} s (log {p.log_path.name})"
                )
                p.start()


# -- the soak -------------------------------------------------------------------------------


async def settled(
    db_url: str, orders: list[Order], merchant: Merchant, chain: DevChain
) -> tuple[bool, str]:
    """Whether everything has come to rest: all sent transfers solidified, every payment in a
    closed state, the outbox drained, every event acknowledged. The reason if not."""
    solid = chain.heights()[1]
    for o in orders:
        for s in o.sent:
            at = chain.find(s.txid)
            if at is not None and (at.block is None or at.block.number > solid):
                return False, "transfers not final on the chain yet"
    snap = await audit.snapshot(db_url)
    open_ = [
        o
        for o in orders
        if o.txn
        and (p := snap.payments.get(o.txn)) is not None
        and (p.status not in ("completed", "expired") or (o.kind == "late" and not p.late))
    ]
    if open_:
        return False, f"{len(open_)} payments still open"
    pending = [c for c in snap.callbacks.values() if c.status == "pending"]
    if pending:
        return False, f"{len(pending)} callbacks pending"
    unacked = [e for es in snap.events.values() for e in es if not merchant.acked[e.event_id]]
    if unacked:
        return False, f"{len(unacked)} events not acknowledged"
    return True, ""


async def wait_settled(
    db_url: str,
    orders: list[Order],
    merchant: Merchant,
    chain: DevChain,
    timeout_s: float,
    killer: Killer,
) -> str:
    deadline = time.monotonic() + timeout_s
    why = ""
    while time.monotonic() < deadline:
        killer.restart_exited()
        try:
            done, why = await settled(db_url, orders, merchant, chain)
        except Exception as exc:  # the database mid-restart: look again
            done, why = False, repr(exc)
        if done:
            return ""
        await asyncio.sleep(1.0)
    return why


def log_findings(layout: Layout) -> tuple[Counter[str], list[str]]:
    """Error and warning events in every process log, and the tracebacks printed."""
    events: Counter[str] = Counter()
    tracebacks: list[str] = []
    for path in layout.logs():
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("level") in ("error", "critical"):
                    events[f"{record.get('level')}: {record.get('event')}"] += 1
            elif line.startswith("Traceback"):
                tracebacks.append(path.name)
    return events, tracebacks


async def soak(opts: Options, say: Callable[[str], None] = print) -> Result:
    configure_logging(LogSettings(level="WARNING", json_logs=False))  # the devchain's
    workdir = Path(tempfile.mkdtemp(prefix="watcher-soak-"))
    rng = random.Random(opts.seed)
    layout_name = "split: api ×2, scan ×2, deliver ×2" if opts.split else "watcher run"
    say(
        f"soak: {opts.payments} payments, {opts.kills} SIGKILLs, {opts.db}, {layout_name}; "
        f"work folder {workdir}"
    )
    async with (
        database(opts.db, workdir) as db_url,
        devchain(opts.block_ms, opts.solidify_lag) as node,
    ):
        port = free_port()
        config = daemon_config(
            workdir / "watcher.toml",
            db_url=db_url,
            node_url=node.url,
            port=port,
            ttl_s=opts.ttl_s,
            backoff_s=opts.backoff_s,
        )
        creds = init_merchant(config)
        logdir = workdir / "logs"
        logdir.mkdir()
        layout = Layout.split(config, logdir) if opts.split else Layout.single(config, logdir, port)
        merchant = Merchant(creds["webhook_secret"])
        async with serving(merchant):
            layout.start()
            try:
                await until_ready(layout.api_ports)
                result = await _soak(opts, rng, layout, merchant, creds, db_url, node, say)
            finally:
                codes = layout.stop()
            result.lines.append(f"stopped with SIGTERM: exit codes {codes}")
            bad_stops = {k: c for k, c in codes.items() if c not in (0, None)}
            events, tracebacks = log_findings(layout)
            result.lines.append(
                "process logs: "
                + (", ".join(f"{n} × {e}" for e, n in events.most_common()) or "no error events")
                + f"; {len(tracebacks)} tracebacks"
            )
            if bad_stops:
                result.ok = False
                result.lines.append(f"  VIOLATION processes that did not stop cleanly: {bad_stops}")
    result.lines.append("RESULT: " + ("PASS" if result.ok else "FAIL (violations above)"))
    for line in result.lines:
        say(line)
    if result.ok and not opts.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"logs and database kept in {workdir}")
    return Result(result.ok, result.lines, workdir)


async def _soak(
    opts: Options,
    rng: random.Random,
    layout: Layout,
    merchant: Merchant,
    creds: dict[str, str],
    db_url: str,
    node: DevChainServer,
    say: Callable[[str], None],
) -> Result:
    chain = node.chain
    t0 = time.monotonic()
    orders = plan(opts.payments, rng, f"SOAK-{uuid.uuid4().hex[:6]}")
    api = Api(layout.api_ports, creds["api_key"], merchant.url)
    forker = Forker(chain, rng, t0)
    payer = Payer(api, chain, forker, ttl_s=opts.ttl_s)
    window = opts.payments / opts.rate + opts.ttl_s * 0.8
    killer = Killer(layout, [rng.uniform(2, window) for _ in range(opts.kills)], rng, t0)
    stop_forks = asyncio.Event()
    fork_task = asyncio.create_task(forker.run(stop_forks))
    kill_task = asyncio.create_task(killer.run())
    tasks = []
    for order in orders:
        tasks.append(asyncio.create_task(payer.run(order)))
        await asyncio.sleep(1 / opts.rate)
    created_s = time.monotonic() - t0
    await asyncio.gather(*tasks)
    paid_s = time.monotonic() - t0
    stop_forks.set()
    await fork_task
    await kill_task
    why = await wait_settled(db_url, orders, merchant, chain, opts.settle_timeout_s, killer)
    settled_s = time.monotonic() - t0
    await api.aclose()
    snap = await audit.snapshot(db_url)
    findings = audit.check(snap, orders, merchant, chain)
    lines = _injected(opts, killer, forker, orders, api, created_s, paid_s, settled_s, why)
    lines += ["", "FOUND", *findings.lines]
    lines += findings.violation_lines()
    ok = findings.ok and not why and not killer.self_exits
    for exit_ in killer.self_exits:
        lines.append(f"  VIOLATION a process ended by itself: {exit_}")
    if why:
        lines.append(
            f"  VIOLATION not settled {opts.settle_timeout_s:.0f} s after the last payment: {why}"
        )
    return Result(ok, lines, Path())


def _injected(
    opts: Options,
    killer: Killer,
    forker: Forker,
    orders: list[Order],
    api: Api,
    created_s: float,
    paid_s: float,
    settled_s: float,
    why: str,
) -> list[str]:
    kinds = Counter(o.kind for o in orders)
    lines = [
        "",
        "INJECTED",
        f"payments: {len(orders)} (" + ", ".join(f"{n} {k}" for k, n in kinds.items()) + ")"
        f", started at {opts.rate:g}/s; ttl {opts.ttl_s:g} s, blocks {opts.block_ms} ms, "
        f"solidified {opts.solidify_lag} blocks behind",
        f"time: all created by {created_s:.0f} s, all paid by {paid_s:.0f} s, "
        + (f"settled at {settled_s:.0f} s" if not why else f"NOT settled at {settled_s:.0f} s"),
        f"kills: {len(killer.kills)} SIGKILLs",
    ]
    for k in killer.kills:
        lines.append(
            f"  {k.at_s:7.1f} s  SIGKILL pid {k.pid} {k.target}; "
            f"started again {k.restarted_after_s:.1f} s later"
        )
    outcomes = Counter(o.fork for o in orders if o.kind == "fork")
    moved = sum(r.moved for r in forker.records)
    dropped = sum(r.dropped for r in forker.records)
    bystanders = sum(r.bystanders for r in forker.records)
    depths = Counter(r.depth for r in forker.records)
    lines.append(
        f"forks: {len(forker.records)} (depths "
        + ", ".join(f"{d}: {n}" for d, n in sorted(depths.items()))
        + f"); fork-kind transfers moved "
        f"{moved}, dropped and paid again {dropped}, missed (solidified first) "
        f"{outcomes.get('missed', 0)}; other transactions moved with them {bystanders}; "
        f"refused {forker.refused}"
    )
    turned = Counter(o.turned_late for o in orders if o.turned_late)
    if turned:
        lines.append(
            f"orders answered with less than half their time left, paid late instead: "
            f"{sum(turned.values())} (" + ", ".join(f"{n} {k}" for k, n in turned.items()) + ")"
        )
    lines.append("create answers: " + ", ".join(f"{n} × {c}" for c, n in api.answers.most_common()))
    return lines
