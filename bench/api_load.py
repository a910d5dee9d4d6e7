"""The merchant API under load, as a new user would measure it: wrk against `watcher run`.

    .venv/bin/python bench/api_load.py [--db sqlite|postgres] [--duration 10] \
        [--api-processes 1] [--tree PATH]

A devchain (TRON node and Binance ticker, its own process, a block every 3 s) and the daemon
(`watcher run`, HD wallet, rates cached, INFO JSON logs to a file as in production) are
started on loopback; wrk then drives, each for `duration` seconds:

- create at 1, 50 and 200 concurrent clients (every request a new externalRef);
- status (GET /api/payment/status?transactionId=…) at 1 and 50 clients;
- the hosted page GET /pay/{id} at 50 clients.

The baseline, measured in the same run on the same machine: a bare FastAPI endpoint (POST a
JSON body, answer a small JSON object) in one uvicorn process with the same loop and HTTP
parser the daemon uses, at 50 clients. Each line prints requests/s, p50 and p99 latency,
errors (connect, read, write, timeouts, non-2xx answers) and the throughput ratio to the
baseline. A last line, the *floor*, serves the least a status request does (FastAPI, one read
of the payment by id through the daemon's engine, no ORM) against the daemon's database at 50
clients: what no work on the daemon's own code can beat on this stack. `--tree PATH` runs
the daemon of another checkout (PATH/.venv/bin/watcher) with the same bench, for before/after
figures. `--api-processes N` (PostgreSQL) sets
`api.processes = N`: `watcher run` serves the API from N processes on one port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher.wallets.hd import DEMO_XPUB  # noqa: E402

KEY = "x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE="
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ADMIN_DB = os.environ.get("WATCHER_TEST_PG_DB", "test")

# Each request a new externalRef: `prefix`-thread-counter. done() prints one JSON line.
CREATE_LUA = r"""
local counter, thread_id, prefix = 0, 0, ""
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1]
  thread_id = tid
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"amount": 1500, "currency": "TRY", "fullName": "Ahmet Yılmaz", ' ..
    '"email": "ahmet@example.com", "externalRef": "%s-%d-%d", ' ..
    '"callbackUrl": "https://shop.example.com/kasa"}', prefix, thread_id, counter)
  return wrk.format("POST", "/api/payment/create", nil, body)
end
"""

DONE_LUA = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

BARE_APP = r"""
import sys
import uvicorn
from fastapi import FastAPI, Request
app = FastAPI()

@app.post("/echo")
async def echo(request: Request):
    body = await request.json()
    return {"success": True, "transactionId": "txn_0", "ref": body.get("externalRef")}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, loop=sys.argv[2], http=sys.argv[3])
"""

# The least a status request does, served the same way: FastAPI, one read of a payment by id
# through the daemon's own engine (Core, no ORM), a small JSON answer. Run against the
# daemon's database while it is up, one process.
FLOOR_APP = r"""
import sys
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from watcher.db.engine import create_engine
url, port, loop, http = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
engine = create_engine(url)
app = FastAPI()
READ = text("SELECT id, status, amount_kurus FROM payment WHERE id = :id")

@app.get("/read/{pid}")
async def read(pid: str):
    async with engine.connect() as conn:
        row = (await conn.execute(READ, {"id": pid})).one()
    return {"id": row.id, "status": row.status, "amount": row.amount_kurus}

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            loop=loop, http=http)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def wait_http(url: str, ok: Any = None, timeout_s: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while True:
            try:
                r = await http.get(url, timeout=2)
                if ok is None or ok(r):
                    return r
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up")
            await asyncio.sleep(0.2)


def wrk(
    url: str,
    clients: int,
    duration_s: int,
    *,
    script: str = "",
    headers: dict[str, str] | None = None,
    args: list[str] | None = None,
    method: str = "GET",
    body: str | None = None,
) -> dict[str, Any]:
    """One wrk run; its summary as a dict (latencies in ms)."""
    lua = script + DONE_LUA
    if method != "GET" and not script:
        lua = f"wrk.method = {json.dumps(method)}\nwrk.body = {json.dumps(body or '')}\n" + DONE_LUA
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    cmd = [
        "wrk",
        f"-t{min(clients, 2)}",
        f"-c{clients}",
        f"-d{duration_s}s",
        "--timeout",
        "2s",  # wrk's default
        "-s",
        f.name,
    ]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    r = json.loads(line[4:])
    seconds = r["duration_us"] / 1e6
    return {
        "clients": clients,
        "rps": r["requests"] / seconds,
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "errors": r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"],
        "timeouts": r["timeout"],
        "non2xx": r["status"],
    }


def show(label: str, r: dict[str, Any], baseline: float | None = None) -> None:
    ratio = f"  = {r['rps'] / baseline:5.2f} x bare" if baseline else ""
    print(
        f"  {label:<28} {r['clients']:>3} clients {r['rps']:8.0f} req/s  "
        f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
        f"errors {r['errors']} (timeouts {r['timeouts']}, non-2xx {r['non2xx']}){ratio}",
        flush=True,
    )


async def pg_database() -> tuple[str, str]:
    name = f"api_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database=ADMIN_DB, **PG)  # type: ignore[arg-type]
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}", name


async def pg_drop(name: str) -> None:
    conn = await asyncpg.connect(database=ADMIN_DB, **PG)  # type: ignore[arg-type]
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


class Stack:
    """devchain + daemon processes in a scratch folder."""

    def __init__(self, tree: Path, db: str, api_processes: int) -> None:
        self.bin = tree / ".venv" / "bin" / "watcher"
        self.db = db
        self.api_processes = api_processes
        self.dir = Path(tempfile.mkdtemp(prefix="api-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pg_name = ""
        self.url = ""
        self.env = {**os.environ, "WATCHER_SECRET_KEY": KEY, "PYTHONUNBUFFERED": "1"}

    def spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with open(self.dir / log, "ab") as out:
            p = subprocess.Popen(
                [str(self.bin), *args], stdout=out, stderr=out, env=self.env, cwd=self.dir
            )
        self.procs.append(p)
        return p

    async def start(self) -> tuple[str, str]:
        node_port, api_port = free_port(), free_port()
        node = f"http://127.0.0.1:{node_port}"
        self.spawn("devchain", "--port", str(node_port), log="devchain.log")
        await wait_http(node + "/wallet/getnodeinfo")
        if self.db == "postgres":
            url, self.pg_name = await pg_database()
        else:
            url = f"sqlite+aiosqlite:///{self.dir}/watcher.db"
        self.url = url
        self.config = self.dir / "watcher.toml"
        # The per-address page limit (where the tree has it) would answer 429 to the load.
        config_py = (self.bin.parent.parent.parent / "watcher" / "config.py").read_text()
        pay_limit = (
            "pay_rate_limit_per_minute = 0\n" if "pay_rate_limit_per_minute" in config_py else ""
        )
        if self.api_processes > 1:
            pay_limit += f"processes = {self.api_processes}\n"
        self.config.write_text(
            f"""
[database]
url = "{url}"
[api]
port = {api_port}
rate_limit_per_minute = 0
{pay_limit}[tron]
endpoints = ["{node}"]
[wallet]
xpub = "{DEMO_XPUB}"
[rates]
binance_base_url = "{node}"
[log]
level = "INFO"
"""
        )
        env = {**self.env, "WATCHER_CONFIG": str(self.config)}
        out = subprocess.run(
            [str(self.bin), "init", "--json"], env=env, cwd=self.dir, capture_output=True
        )
        if out.returncode:
            raise SystemExit(f"watcher init failed: {out.stderr.decode()[-2000:]}")
        key = json.loads(out.stdout)["api_key"]
        self.env = env
        self.spawn("run", log="daemon.log")
        api = f"http://127.0.0.1:{api_port}"
        await wait_http(api + "/healthz", ok=lambda r: "starting" not in r.text)
        return api, key

    async def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.pg_name:
            await pg_drop(self.pg_name)
        shutil.rmtree(self.dir, ignore_errors=True)


async def first_payment(api: str, key: str) -> str:
    body = {
        "amount": 1500,
        "fullName": "Ahmet Yılmaz",
        "externalRef": f"warm-{uuid.uuid4().hex}",
    }
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            r = await http.post(api + "/api/payment/create", json=body, headers={"x-api-key": key})
            if r.status_code == 200:
                return str(r.json()["transactionId"])
            await asyncio.sleep(0.3)
    raise SystemExit(f"create never succeeded: {r.status_code} {r.text}")


def bare_baseline(duration: int, loop: str, http: str) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(port), loop, http],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/docs"))
        body = '{"amount": 1500, "fullName": "Ahmet", "externalRef": "r-1"}'
        return wrk(
            f"http://127.0.0.1:{port}/echo",
            50,
            duration,
            method="POST",
            body=body,
            headers={"Content-Type": "application/json"},
        )
    finally:
        proc.terminate()
        proc.wait()


async def floor(db_url: str, txn: str, duration: int) -> dict[str, Any]:
    port = free_port()
    loop, http = stack_of(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOR_APP, db_url, str(port), loop, http],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}/read/{txn}"
        await wait_http(url, ok=lambda r: r.status_code == 200)
        return await asyncio.to_thread(wrk, url, 50, duration)
    finally:
        proc.terminate()
        proc.wait()


def stack_of(tree: Path) -> tuple[str, str]:
    """The loop and HTTP parser uvicorn picks in that tree's environment ("auto")."""
    py = tree / ".venv" / "bin" / "python"
    code = (
        "import importlib.util as u;"
        "print('uvloop' if u.find_spec('uvloop') else 'asyncio',"
        " 'httptools' if u.find_spec('httptools') else 'h11')"
    )
    loop, http = subprocess.run([py, "-c", code], capture_output=True, text=True).stdout.split()
    return loop, http


async def daemon_runs(args: argparse.Namespace) -> tuple[Stack, list[tuple[str, dict[str, Any]]]]:
    stack = Stack(args.tree, args.db, args.api_processes)
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        api, key = await stack.start()
        txn = await first_payment(api, key)
        hdr = {"x-api-key": key, "Content-Type": "application/json"}
        prefix = uuid.uuid4().hex[:10]
        for clients in (1, 50, 200):
            r = await asyncio.to_thread(
                wrk,
                api + "/api/payment/create",
                clients,
                args.duration,
                script=CREATE_LUA,
                headers=hdr,
                args=[f"{prefix}-{clients}"],
            )
            results.append(("create", r))
        for clients in (1, 50):
            r = await asyncio.to_thread(
                wrk,
                f"{api}/api/payment/status?transactionId={txn}",
                clients,
                args.duration,
                headers={"x-api-key": key},
            )
            results.append(("status", r))
        r = await asyncio.to_thread(wrk, f"{api}/pay/{txn}", 50, args.duration)
        results.append(("/pay/{id}", r))
        results.append(("floor: FastAPI + 1 read", await floor(stack.url, txn, args.duration)))
    finally:
        await stack.stop()
    return stack, results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--api-processes", type=int, default=1, help="api.processes (PostgreSQL)")
    p.add_argument("--tree", type=Path, default=ROOT, help="checkout whose daemon to run")
    args = p.parse_args()
    if args.api_processes > 1 and args.db != "postgres":
        raise SystemExit("--api-processes > 1 needs --db postgres")
    loop, http = stack_of(args.tree)
    print(
        f"{os.cpu_count()} CPUs, load average {load()}; daemon from {args.tree}, "
        f"{args.db}, {args.api_processes} API process(es), uvicorn {loop}+{http}",
        flush=True,
    )
    bare = bare_baseline(args.duration, loop, http)
    show("bare FastAPI endpoint", bare)
    _, results = asyncio.run(daemon_runs(args))
    for label, r in results:
        show(label, r, bare["rps"])
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
