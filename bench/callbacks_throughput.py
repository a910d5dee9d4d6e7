"""Callbacks per second to a local receiver: 5000 callbacks, 1 and 4 delivery workers, PostgreSQL.

    .venv/bin/python bench/callbacks_throughput.py [--callbacks 5000] [--workers 1,4]

Creates a scratch PostgreSQL database (127.0.0.1:5432, dropped at the end), fills the outbox
with N callbacks, and times `watcher deliver`-style worker processes (one DeliveryWorker each)
until all are delivered (the bench asks every 20 ms, then tells the workers to stop). The
receiver is a minimal HTTP/1.1 server in its own process that answers {"received": true},
so the figure is the worker's, not the receiver's: once at once
(CPU-bound: what a worker costs) and once after 50 ms (latency-bound, like a merchant endpoint
across the internet: what more workers buy).

The baseline, measured in the same run against the same receiver: raw HTTP POSTs of a
callback-sized body with httpx from one process at the same concurrency. Figures are printed
as ratios to it and 4-workers / 1-worker. Absolute numbers depend on the machine (cores shared
by the workers, PostgreSQL and the receiver); the ratios are the point.

`cpu` is CPU time (user + system) per callback: the workers' from "go" to their exit, summed
(their start-up, a second of imports each, is left out), and beside it the receiver's and
PostgreSQL's (Linux: every postgres process on the machine, so other clients' queries count
too). When the receiver answers at once, their sum bounds the rate: 2 cores deliver at most
2000 / sum callbacks a second.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.callbacks import bulk_events, new_merchant  # noqa: E402
from watcher.clock import now_ms  # noqa: E402
from watcher.db.engine import create_engine, session_factory  # noqa: E402
from watcher.db.migrate import upgrade  # noqa: E402
from watcher.secrets import SecretBox  # noqa: E402

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
ADMIN_DB = os.environ.get("WATCHER_TEST_PG_DB", "test")
KEY = "x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE="
CONCURRENCY = 16
POLL_S = 0.02  # how often the bench asks whether anything is left pending

RECEIVER = r"""
import asyncio, sys
ACK = (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n'
       b'{"received":true}')
DELAY = float(sys.argv[1])

class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            if DELAY:
                asyncio.get_running_loop().call_later(DELAY, self.t.write, ACK)
            else:
                self.t.write(ACK)

async def main():
    server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""

WORKER = r"""
import asyncio, resource, sys
import httpx
from watcher.callbacks.delivery import DeliveryWorker
from watcher.config import LogSettings, Settings
from watcher.db.engine import create_engine, session_factory
from watcher.logs import configure_logging
from watcher.secrets import load_box
try:
    from watcher.callbacks.sender import callback_session  # the daemon's session (aiohttp)
except ImportError:  # an older checkout: its worker took an httpx client
    callback_session = httpx.AsyncClient

async def main(url, name, concurrency):
    configure_logging(LogSettings(level="INFO"))  # as the daemon logs: a JSON line per attempt
    settings = Settings(database={"url": url}, callbacks={
        "allow_private_urls": True, "concurrency": concurrency,
        "per_host_concurrency": concurrency, "poll_interval_s": 0.05})
    engine = create_engine(url)
    sessions = session_factory(engine)
    stop = asyncio.Event()
    line = asyncio.get_running_loop().run_in_executor

    async def until_told():  # the bench says "stop" once nothing is left pending
        await line(None, sys.stdin.readline)
        stop.set()

    async with callback_session() as http:
        worker = DeliveryWorker(settings, sessions, load_box(url), http, worker_id=name)
        print("ready", flush=True)
        await line(None, sys.stdin.readline)
        cpu0 = cpu_s()
        await asyncio.gather(worker.run(stop), until_told())
    await engine.dispose()
    print("cpu", cpu_s() - cpu0, flush=True)

def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

run = asyncio.run
try:
    from watcher.eventloop import run  # the loop `watcher deliver` runs on (uvloop)
except ImportError:  # an older checkout
    pass
run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def pg_url(db: str) -> str:
    return f"postgresql+asyncpg://{USER}@{HOST}:{PORT}/{db}"


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(database=ADMIN_DB, host=HOST, port=PORT, user=USER)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fill(url: str, receiver_url: str, count: int) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "TRUNCATE callback_attempt, callback, payment_event, payment, api_key, merchant"
            " RESTART IDENTITY CASCADE"
        )
    merchant = await new_merchant(sessions, SecretBox(KEY.encode()), "bench")
    await bulk_events(sessions, merchant.id, receiver_url, now_ms(), count)
    await engine.dispose()


async def delivered(url: str) -> int:
    conn = await asyncpg.connect(dsn=url.replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM callback WHERE status='delivered'"))
    finally:
        await conn.close()


async def until_none_pending(url: str) -> None:
    """Return once no callback is pending (one poller here, rather than one per worker)."""
    conn = await asyncpg.connect(dsn=url.replace("+asyncpg", ""))
    try:
        query = "SELECT EXISTS (SELECT 1 FROM callback WHERE status = 'pending')"
        while await conn.fetchval(query):
            await asyncio.sleep(POLL_S)
    finally:
        await conn.close()


async def run_workers(url: str, workers: int, count: int, receiver: int) -> tuple[float, Cpu]:
    """(callbacks per second, CPU milliseconds per callback)."""
    env = {**os.environ, "WATCHER_SECRET_KEY": KEY, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, f"bench-{i}", str(CONCURRENCY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,  # not the caller's directory: `-c` would import a checkout found there
            text=True,
        )
        for i in range(workers)
    ]
    for p in procs:  # every process imported, connected and waiting: start them together
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    pg0, receiver0 = _postgres_cpu(), _process_cpu(receiver)
    t0 = time.perf_counter()
    tell(procs, "go")
    await until_none_pending(url)
    elapsed = time.perf_counter() - t0
    tell(procs, "stop")
    for p in procs:
        await asyncio.to_thread(p.wait)
    worker_s = sum(float(p.stdout.read().split()[-1]) for p in procs if p.stdout is not None)
    receiver_s, pg_s = _process_cpu(receiver) - receiver0, _postgres_cpu() - pg0
    done = await delivered(url)
    assert done == count, f"only {done} of {count} delivered"
    per = 1000 / count
    return count / elapsed, Cpu(worker_s * per, receiver_s * per, pg_s * per)


@dataclass
class Cpu:
    """Milliseconds of CPU (user + system) per callback."""

    worker: float  # summed over the workers, from "go" to their exit (not their start-up)
    receiver: float
    postgres: float  # every PostgreSQL process on the machine (other clients' too)

    def __str__(self) -> str:
        if math.isnan(self.receiver):
            return f"cpu {self.worker:.2f} ms"
        total = self.worker + self.receiver + self.postgres
        return (
            f"cpu {self.worker:.2f} ms (+ receiver {self.receiver:.2f}"
            f" + postgres {self.postgres:.2f} = {total:.2f})"
        )


def tell(procs: list[subprocess.Popen[str]], line: str) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(line + "\n")
        p.stdin.flush()


def _process_cpu(pid: int) -> float:
    """Seconds of CPU a process and its reaped children used (Linux /proc); NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """Every postgres process's CPU, and its exited backends' (in the postmaster's count)."""
    total = 0.0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() != "postgres":
                        continue
            except OSError:
                continue
            total += _process_cpu(int(entry))
    return total


async def raw_posts(receiver_url: str, count: int) -> float:
    body = b'{"event":"payment.completed","amount":1000,"fullName":"Ahmet Y\xc4\xb1lmaz"}' * 6
    left = iter(range(count))

    async def one_lane(http: httpx.AsyncClient) -> None:
        for _ in left:
            r = await http.post(receiver_url, content=body, headers={"X-Signature": "0" * 64})
            assert r.status_code == 200 and r.json() == {"received": True}

    async with httpx.AsyncClient() as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(one_lane(http) for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - t0)


async def scenario(url: str, delay_ms: int, count: int, counts: list[int]) -> None:
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(delay_ms / 1000)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        receiver_url = f"http://127.0.0.1:{int(receiver.stdout.readline())}/kasa"
        print(f"\nreceiver answering after {delay_ms} ms:")
        baseline = await raw_posts(receiver_url, count)
        print(f"  baseline: raw httpx POSTs, {CONCURRENCY} concurrent    {baseline:7.0f} /s")
        rates: dict[int, float] = {}
        for n in counts:
            await fill(url, receiver_url, count)
            rates[n], cpu = await run_workers(url, n, count, receiver.pid)
            label = f"{n} worker{'s' if n > 1 else ''} x {CONCURRENCY} slots"
            print(
                f"  {label:<32}{rates[n]:10.0f} /s = {rates[n] / baseline:.2f} x baseline   {cpu}"
            )
        for n in counts:
            if n != 1 and 1 in rates:
                print(f"  ratio {n} workers / 1 worker: {rates[n] / rates[1]:.2f}")
    finally:
        receiver.terminate()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--delays-ms", default="0,50", help="receiver answer delays to run")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    db = f"watcher_bench_cb_{uuid.uuid4().hex[:8]}"
    await admin(f'CREATE DATABASE "{db}"')
    url = pg_url(db)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.callbacks} callbacks on PostgreSQL; {os.cpu_count()} CPUs (load average {load})")
    print("shared by the receiver, PostgreSQL and the workers: CPU-bound runs cannot scale past")
    print("them; `cpu` is user+system time per callback: the workers' (summed, while they")
    print("deliver), the receiver's and PostgreSQL's (all of its processes on the machine)")
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        for delay in (int(d) for d in args.delays_ms.split(",")):
            await scenario(url, delay, args.callbacks, counts)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    asyncio.run(main())
