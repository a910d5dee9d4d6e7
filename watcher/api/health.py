"""GET /healthz and GET /metrics.

/healthz answers 200 {"status": "ok", "checks": {...}}, or 503 with "degraded", or with
"starting" until the scanner has resolved the start block (the node may not answer yet):
- database: a round trip within a few seconds; on SQLite also writes getting their turn (no
  write begun for WRITE_STALL_S while writers wait: another process holds the file's lock);
- follower: from the chain_cursor table, so any process (API-only ones too) can tell. The
  `seen` cursor must exist, `final` must be at most tron.max_lag_blocks behind it (finality
  is advancing), and `seen` must have moved within the time those blocks take (3 s each): a
  stuck follower or a stalled node shows as a cursor that stopped moving. Lag — how far `seen`
  is behind the chain, here in seconds (now minus the seen block's timestamp), as in /metrics
  and `watcher chain status` — is reported, never judged: catching up is not a failure.
  `nodeHead` is the node's head as the follower last polled it; when it is below `seen` (a
  node restarted from an older state) the follower waits, and `waiting` says so.
  `nodeAgeSeconds` is how long ago that head last changed: when `seen` stops, the reason
  says whether the node stopped showing new blocks (down, erring, stuck) or not.
- delivery: judged by the outbox as a whole, never by one row. It degrades when callbacks
  have been due for longer than DELIVERY_MAX_WAIT_S and no attempt at all has been made in
  that time: no worker runs, or none gets anything done. One merchant's endpoint that never
  takes its callbacks (or a row a worker cannot send) shows in `overdue` and `oldestDueSeconds`
  while the others flow, and does not take the API out of its load balancer. Callbacks parked
  as dead are counted but do not degrade: a merchant's broken endpoint is theirs. Callbacks
  waiting for a retry after failed attempts are not due, so they are counted apart
  (`retrying`, over `retryingHosts`, how the latest ended in `reason`): a merchant
  endpoint that has been down for hours shows there.
- rates: this process's rate source as its last fetch left it: while Binance fails, since when
  and whether creates are refused for it (502) or priced at the last rate. Reported, never
  judged: every API process shares Binance, so taking them all out of the load balancer
  would only add the status and checkout pages to what is down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import case, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from watcher.config import Settings
from watcher.db.engine import write_stall_s
from watcher.db.models import Callback, CallbackAttempt, ChainCursor
from watcher.errors import NotFound
from watcher.metrics import lag_seconds
from watcher.rates.base import RateSource
from watcher.tron.cursors import FINAL, NODE, SEEN, waiting_reason

log = structlog.get_logger("watcher.health")

router = APIRouter()

BLOCK_INTERVAL_S = 3  # TRON produces a block every 3 s
DELIVERY_MAX_WAIT_S = 300  # a due callback waiting longer means no delivery worker is keeping up
CHECK_TIMEOUT_S = 5.0
WRITE_STALL_S = 5.0  # SQLite: no write begun for longer, with writers waiting, is an outage


@dataclass(frozen=True)
class Health:
    ok: bool
    checks: dict[str, dict[str, Any]]
    starting: bool = False

    @property
    def status(self) -> str:
        return "ok" if self.ok else "starting" if self.starting else "degraded"

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "checks": self.checks}


JUDGED = ("database", "follower", "delivery")


async def check_health(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    now: int,
    rates: RateSource | None = None,
) -> Health:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), sessions() as session:
            await session.execute(text("SELECT 1"))
            database = _writes(sessions)
            follower = await _follower(session, settings.tron.max_lag_blocks, now)
            delivery = await _delivery(session, now)
    except Exception as exc:
        # The error class only: driver messages can carry hosts and SQL.
        log.warning("health.database_unreachable", error=repr(exc))
        unknown = {"ok": False, "reason": "database unreachable"}
        database = {"ok": False, "error": type(exc).__name__}
        checks: dict[str, dict[str, Any]] = {
            "database": database,
            "follower": unknown,
            "delivery": unknown,
        }
    else:
        checks = {"database": database, "follower": follower, "delivery": delivery}
    if rates is not None:
        checks["rates"] = rates.health(now)
    starting = checks["follower"].get("starting", False)
    return Health(all(checks[name]["ok"] for name in JUDGED), checks, starting=starting)


def _writes(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """SQLite: whether this process's writes get their turn. A file whose write lock another
    process holds answers reads, not writes."""
    engine = sessions.kw.get("bind")
    stall_s = write_stall_s(engine) if isinstance(engine, AsyncEngine) else 0.0
    if stall_s <= WRITE_STALL_S:
        return {"ok": True}
    return {
        "ok": False,
        "writeStallSeconds": round(stall_s, 1),
        "reason": f"no write has begun for {stall_s:.0f} s while writers wait: the database "
        "file's write lock is held, by another process (a sqlite3 shell in a transaction?)",
    }


async def _follower(session: AsyncSession, max_lag: int, now: int) -> dict[str, Any]:
    rows = (await session.execute(select(ChainCursor))).scalars()
    cursors = {c.name: c for c in rows}
    seen, final, node = cursors.get(SEEN), cursors.get(FINAL), cursors.get(NODE)
    if seen is None:
        return {
            "ok": False,
            "starting": True,
            "reason": "starting: the scanner has not resolved the start block yet "
            "(it needs an answer from the TRON node)",
        }
    age_s = max(0, now - seen.updated_ms) / 1000
    gap = seen.block_number - final.block_number if final is not None else None
    max_age_s = max_lag * BLOCK_INTERVAL_S
    report: dict[str, Any] = {
        "ok": (gap is None or gap <= max_lag) and age_s <= max_age_s,
        "seen": seen.block_number,
        "final": final.block_number if final is not None else None,
        "lagSeconds": lag_seconds(seen.block_ms, now),
        "finalityGapBlocks": gap,
        "maxFinalityGapBlocks": max_lag,
        "seenAgeSeconds": age_s,
        "maxSeenAgeSeconds": max_age_s,
    }
    node_age_s = None
    if node is not None:
        node_age_s = max(0, now - node.updated_ms) / 1000
        report["nodeHead"] = node.block_number
        report["nodeAgeSeconds"] = node_age_s
        report["lagBlocks"] = max(0, node.block_number - seen.block_number)
        if node.block_number < seen.block_number:
            report["waiting"] = waiting_reason(node.block_number, seen.block_number)
    if gap is not None and gap > max_lag:
        report["reason"] = f"final is {gap} blocks behind seen: finality is not advancing"
    elif age_s > max_age_s:
        report["reason"] = report.get("waiting") or _stopped(age_s, node_age_s, max_age_s)
    return report


def _stopped(age_s: float, node_age_s: float | None, max_age_s: float) -> str:
    """Why the seen cursor stopped, as far as the node's head (noted by the follower each
    time it changes) tells: a node showing no new block, or one whose head moves while the
    follower does not get through its blocks (bench/faults.py's sick node did both)."""
    said = f"the seen cursor has not moved for {age_s:.0f} s"
    if node_age_s is None:
        return said
    if node_age_s > max_age_s:
        return (
            f"{said}: the TRON node has shown no new block for {node_age_s:.0f} s (not "
            "answering, answering errors, or not producing blocks; see tron.endpoints and "
            "the follower.retry log lines)"
        )
    return (
        f"{said} while the TRON node's head moves: the follower cannot read the blocks (the "
        "node fails block requests while answering head polls; see the follower.retry log "
        "lines) or is stuck"
    )


async def _delivery(session: AsyncSession, now: int) -> dict[str, Any]:
    max_wait_ms = DELIVERY_MAX_WAIT_S * 1000
    next_ms = col(Callback.next_attempt_ms)
    due, overdue, oldest = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((next_ms < now - max_wait_ms, 1), else_=0)), 0),
                func.min(next_ms),
            ).where(col(Callback.status) == "pending", next_ms <= now)
        )
    ).one()
    dead = await session.scalar(
        select(func.count()).select_from(Callback).where(col(Callback.status) == "dead")
    )
    retrying, retrying_hosts, latest = await _retrying(session)
    # The newest attempt by id (the primary key's index), not by time: no scan as it grows.
    last_ms = await session.scalar(
        select(col(CallbackAttempt.started_ms) + col(CallbackAttempt.duration_ms))
        .order_by(col(CallbackAttempt.id).desc())
        .limit(1)
    )
    oldest_s = max(0, now - oldest) / 1000 if oldest is not None else 0
    last_s = max(0, now - last_ms) / 1000 if last_ms is not None else None
    stalled = overdue > 0 and (last_s is None or last_s > DELIVERY_MAX_WAIT_S)
    report: dict[str, Any] = {
        "ok": not stalled,
        "due": due,
        "overdue": int(overdue),
        "oldestDueSeconds": oldest_s,
        "lastAttemptSeconds": last_s,
        "maxWaitSeconds": DELIVERY_MAX_WAIT_S,
        "dead": dead or 0,
        "retrying": retrying,
        "retryingHosts": retrying_hosts,
    }
    if stalled:
        since = "no attempt yet" if last_s is None else f"no attempt for {last_s:.0f} s"
        report["reason"] = f"{overdue} callbacks overdue, the oldest for {oldest_s:.0f} s; {since}"
    elif retrying:
        report["reason"] = (
            f"{retrying} callbacks waiting for a retry after failed attempts, to "
            f"{retrying_hosts} merchant hosts (watcher callbacks list); the latest got {latest}"
        )
    return report


async def _retrying(session: AsyncSession) -> tuple[int, int, str]:
    """Pending callbacks with failed attempts behind them: how many, to how many hosts, and
    how the newest one's last attempt ended. Neither host nor error text: /healthz is open
    to anyone, `watcher callbacks list` shows them to operators."""
    failed = (col(Callback.status) == "pending", col(Callback.attempts) > 0)
    count, hosts = (
        await session.execute(
            select(func.count(), func.count(func.distinct(col(Callback.host)))).where(*failed)
        )
    ).one()
    if not count:
        return 0, 0, ""
    code = await session.scalar(
        select(col(Callback.last_status_code))
        .where(*failed)
        .order_by(col(Callback.id).desc())
        .limit(1)
    )
    return int(count), int(hosts), f"HTTP {code}" if code else "no answer"


@router.get("/healthz", include_in_schema=False)
async def healthz(request: Request) -> JSONResponse:
    services = request.app.state.services
    rates = getattr(services, "rates", None)
    health = await check_health(services.sessions, services.settings, services.clock(), rates)
    return JSONResponse(health.body(), status_code=200 if health.ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    m = getattr(request.app.state, "metrics", None)
    if m is None:
        raise NotFound("metrics are not enabled in this process")
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await m.refresh(request.app.state.services.sessions)
    except Exception as exc:  # serve what we have; watcher_database_up says why it is stale
        log.warning("metrics.refresh_failed", error=repr(exc))
    body, content_type = m.render()
    return Response(body, media_type=content_type)
