"""Replay devchain blocks of mainnet size through the follower, with many watched addresses.

    .venv/bin/python bench/follower_replay.py [--blocks 1000] [--watched 100000] \
        [--txs 300] [--usdt 100] [--hit-rate 0.1] [--db sqlite|postgres]

A devchain in its own process (so serving costs the follower nothing on its core) mines
`blocks` blocks of `txs` transactions, `usdt` of them successful USDT transfers, plus failed
USDT calls, TRX transfers and other tokens' logs; `hit-rate` of the USDT transfers go to
watched addresses. The database holds `watched` open payments, one address each.

Three passes over the same blocks from the same server, in this run:
- baseline: the node requests the follower makes per block (header, transaction count,
  transaction infos) with httpx and the standard library's JSON parser, one block after the
  other, nothing else: a plain loop that only fetches and parses;
- floor: the same requests as the follower sends them (its HTTP session and JSON parser,
  `tron.fetch_ahead` blocks in flight), nothing else: what no follower on this transport
  can beat;
- follower: Follower.step() until caught up (fetch ahead, check the infos against the block,
  decode, match, record each transfer, settle its payment, move the cursors; final blocks
  stored in batches), with the default poll interval.
It prints blocks per second for each, the follower's ratio to both, and the peak RSS of this
process (the bench's own 100 000 addresses included). The baseline also counts the transfers
to watched addresses with a plain set lookup: the follower must have recorded exactly that
many.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import msgspec
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from watcher import eventloop, jsonio  # noqa: E402
from watcher.config import MAINNET_USDT, LogSettings, Settings  # noqa: E402
from watcher.db.engine import create_engine, session_factory, transaction  # noqa: E402
from watcher.db.migrate import upgrade  # noqa: E402
from watcher.db.models import Payment, Transfer  # noqa: E402
from watcher.logs import configure_logging  # noqa: E402
from watcher.merchants import create_merchant  # noqa: E402
from watcher.secrets import SecretBox  # noqa: E402
from watcher.tron.address import to_base58, to_hex  # noqa: E402
from watcher.tron.client import TronClient, node_session  # noqa: E402
from watcher.tron.decode import Token, transfers_in_block  # noqa: E402
from watcher.tron.follower import Follower, ensure_start_cursor  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ADMIN_DB = os.environ.get("WATCHER_TEST_PG_DB", "test")
KEY = b"x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE="
T0 = 1_800_000_000_000

SERVER = r"""
import asyncio, json, sys
from watcher.devchain.chain import DevChain
from watcher.devchain.server import DevChainServer

args = json.loads(sys.argv[1])
with open(args["recipients"]) as f:
    recipients = json.load(f)
chain = DevChain(start_time_ms=args["t0"], seed=1)
chain.make_mainnet_like(args["blocks"], txs=args["txs"], usdt_transfers=args["usdt"],
                        recipients=recipients)

async def main():
    server = DevChainServer(chain)
    await server.start()
    print("READY", json.dumps({"url": server.url, "first": chain.first_number + 1,
                      "head": chain.head_number}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()

from watcher import eventloop
eventloop.run(main())
"""


class Cpu:
    """CPU seconds used since the last lap: by this process (all its threads, the database
    driver's included) and by the node's process."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._at = self._now()

    def _now(self) -> tuple[float, float]:
        fields = Path(f"/proc/{self._pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return time.process_time(), (int(fields[11]) + int(fields[12])) / tick

    def lap(self) -> tuple[float, float]:
        now = self._now()
        spent = (now[0] - self._at[0], now[1] - self._at[1])
        self._at = now
        return spent


def watched_addresses(n: int, rng: random.Random) -> list[str]:
    return [to_base58("41" + rng.randbytes(20).hex()) for _ in range(n)]


def recipients(watched: list[str], hit_rate: float, rng: random.Random) -> list[str]:
    """A pool the devchain draws USDT recipients from: `hit_rate` of it is ours."""
    ours = rng.sample(watched, 200)
    strangers = watched_addresses(int(len(ours) * (1 - hit_rate) / hit_rate), rng)
    return ours + strangers


async def start_server(args: argparse.Namespace, pool: list[str]) -> tuple[Any, dict[str, Any]]:
    path = Path(tempfile.mkstemp(suffix=".json")[1])
    path.write_text(json.dumps(pool))
    spec = {
        "recipients": str(path),
        "t0": T0,
        "blocks": args.blocks,
        "txs": args.txs,
        "usdt": args.usdt,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        json.dumps(spec),
        cwd=str(ROOT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    while line := await proc.stdout.readline():  # its logs go to stdout too
        if line.startswith(b"READY "):
            path.unlink()
            asyncio.get_running_loop().create_task(_drain(proc.stdout))
            return proc, json.loads(line[6:])
    raise SystemExit("the devchain process did not start")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def database(kind: str) -> tuple[str, Any]:
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="follower-bench-")
        return f"sqlite+aiosqlite:///{folder}/watcher.db", folder
    name = f"follower_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database=ADMIN_DB, **PG)  # type: ignore[arg-type]
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    return url, name


async def drop(name: str | None) -> None:
    """The scratch database: a PostgreSQL database's name, or a SQLite file's folder."""
    if name and os.path.isdir(name):
        shutil.rmtree(name, ignore_errors=True)
    elif name:
        conn = await asyncpg.connect(database=ADMIN_DB, **PG)  # type: ignore[arg-type]
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def fill(settings: Settings, watched: list[str], created_block: int) -> None:
    engine = create_engine(settings.database.url)
    await upgrade(engine)
    sessions = session_factory(engine)
    async with transaction(sessions) as s:
        merchant = await create_merchant(s, SecretBox(KEY), "bench")
    rows = [
        {
            "id": f"txn_{i:032x}",
            "merchant_id": merchant.id,
            "sandbox": False,
            "external_ref": f"ref-{i}",
            "provider": "crypto",
            "amount_kurus": 1_000_000,
            "currency": "TRY",
            "full_name": "Bench",
            "metadata_json": "{}",
            "status": "pending",
            "late": False,
            "created_ms": T0,
            "updated_ms": T0,
            "expires_ms": T0 + 86_400_000 * 30,
            "address": a,
            "amount_micro": 10**12,
            "received_micro": 0,
            "confirming_micro": 0,
            "late_micro": 0,
            "rate": "35.5",
            "created_block": created_block,
            "next_sequence": 1,
        }
        for i, a in enumerate(watched)
    ]
    async with transaction(sessions) as s:
        for i in range(0, len(rows), 5000):
            await s.execute(insert(Payment), rows[i : i + 5000])
    await engine.dispose()


async def baseline(url: str, first: int, head: int, watched_hex: set[str]) -> tuple[float, int]:
    """The follower's requests per block, parsed, no decoding, matching or storage."""
    token = Token(MAINNET_USDT)
    hits = 0
    async with httpx.AsyncClient() as http:
        elapsed = 0.0
        for n in range(first, head + 1):
            started = time.perf_counter()
            for path, body in (
                ("/wallet/getblock", {"id_or_num": str(n), "detail": False}),
                ("/wallet/gettransactioncountbyblocknum", {"num": n}),
            ):
                jsonio.loads((await http.post(url + path, json=body)).content)
            infos = jsonio.loads(
                (
                    await http.post(url + "/wallet/gettransactioninfobyblocknum", json={"num": n})
                ).content
            )
            elapsed += time.perf_counter() - started
            # Counted outside the timed part: the expected number, by a plain set lookup.
            hits += sum(t.recipient in watched_hex for t in transfers_in_block(infos, token))
    return elapsed, hits


async def floor(url: str, first: int, head: int, window: int) -> float:
    """The follower's requests, transport and parser, `window` blocks in flight."""
    decoder = msgspec.json.Decoder(float_hook=Decimal)
    numbers = iter(range(first, head + 1))

    async def post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
        async with http.post(url + path, data=msgspec.json.encode(body)) as resp:
            return decoder.decode(await resp.read())

    async def lane(http: aiohttp.ClientSession) -> None:
        for n in numbers:
            await asyncio.gather(
                post(http, "/wallet/getblock", {"id_or_num": str(n), "detail": False}),
                post(http, "/wallet/gettransactioncountbyblocknum", {"num": n}),
                post(http, "/wallet/gettransactioninfobyblocknum", {"num": n}),
            )

    async with node_session() as http:
        started = time.perf_counter()
        await asyncio.gather(*(lane(http) for _ in range(window)))
        return time.perf_counter() - started


async def follow(settings: Settings, profile: str | None) -> tuple[float, int, int]:
    engine = create_engine(settings.database.url)
    sessions = session_factory(engine)
    async with node_session() as http:
        client = TronClient(settings.tron, http)
        await ensure_start_cursor(settings, sessions, client)
        follower = Follower(settings, sessions, client, lambda: T0)
        profiler = None
        if profile:
            from pyinstrument import Profiler  # only with --profile: pip install pyinstrument

            profiler = Profiler(async_mode="enabled")
            profiler.start()
        started = time.perf_counter()
        while await follower.step():
            pass
        elapsed = time.perf_counter() - started
        if profiler is not None:
            profiler.stop()
            Path(profile).write_text(profiler.output_text(unicode=True, show_all=False))
        print(
            f"follower: {follower.walked_blocks} blocks in {follower.walk_commits} transactions",
            flush=True,
        )
    async with sessions() as s:
        recorded = (await s.execute(select(func.count()).select_from(Transfer))).scalar_one()
        completed = (
            await s.execute(
                select(func.count()).select_from(Payment).where(Payment.received_micro > 0)
            )  # type: ignore[arg-type]
        ).scalar_one()
    await engine.dispose()
    return elapsed, recorded, completed


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--blocks", type=int, default=1000)
    p.add_argument("--watched", type=int, default=100_000)
    p.add_argument("--txs", type=int, default=300)
    p.add_argument("--usdt", type=int, default=100)
    p.add_argument("--hit-rate", type=float, default=0.1)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--profile", metavar="FILE", help="profile the follower pass (pyinstrument) into FILE"
    )
    args = p.parse_args()
    # Logs as in production (JSON lines, INFO: one per credited transfer), to /dev/null.
    configure_logging(LogSettings(), stream=open(os.devnull, "w"))
    rng = random.Random(42)
    watched = watched_addresses(args.watched, rng)
    print(
        f"generating {args.blocks} blocks of {args.txs} transactions "
        f"({args.usdt} USDT transfers each, {args.hit_rate:.0%} to watched addresses)…"
    )
    proc, chain = await start_server(args, recipients(watched, args.hit_rate, rng))
    url, pg_name = await database(args.db)
    try:
        settings = Settings(
            database={"url": url},
            tron={
                "endpoints": [chain["url"]],
                "start_block": chain["first"],
            },
        )
        await fill(settings, watched, chain["first"] - 1)
        watched_hex = {to_hex(a) for a in watched}
        node = Cpu(proc.pid)
        base_s, hits = await baseline(chain["url"], chain["first"], chain["head"], watched_hex)
        base_cpu = node.lap()
        window = settings.tron.fetch_ahead
        floor_s = await floor(chain["url"], chain["first"], chain["head"], window)
        floor_cpu = node.lap()
        follow_s, recorded, paid = await follow(settings, args.profile)
        follow_cpu = node.lap()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        await proc.wait()
        await drop(pg_name)
    n = chain["head"] - chain["first"] + 1
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"watched addresses: {args.watched}, database: {args.db}, load average {load}")
    print(f"baseline (fetch + parse, 1 by 1): {n / base_s:8.1f} blocks/s  ({base_s:.2f} s)")
    print(f"floor ({window} in flight, no storage): {n / floor_s:8.1f} blocks/s  ({floor_s:.2f} s)")
    print(f"follower (all of it):             {n / follow_s:8.1f} blocks/s  ({follow_s:.2f} s)")
    print(f"follower / baseline:              {base_s / follow_s:8.2f}")
    print(f"follower / floor:                 {floor_s / follow_s:8.2f}")
    print(f"peak RSS of this process:         {rss_mb:8.0f} MB")
    print("CPU ms per block (this process / the node process):")
    for label, (own, served) in (
        ("baseline", base_cpu),
        ("floor", floor_cpu),
        ("follower", follow_cpu),
    ):
        print(f"  {label:<10} {1000 * own / n:6.2f} / {1000 * served / n:6.2f}")
    print(
        f"transfers to watched addresses: {hits} on chain, {recorded} recorded, "
        f"{paid} payments credited"
    )
    if recorded != hits:
        raise SystemExit("MISMATCH: the follower did not record every transfer exactly once")


if __name__ == "__main__":
    eventloop.run(main())
