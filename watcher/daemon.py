"""The daemon: API, follower, expiry and delivery as components of one supervised process, or
any subset of them (`watcher api`, `watcher scan`, `watcher deliver`).

Each component has a `name` and `async run(stop)`. They run as named tasks; when one dies the
daemon stops the rest and exits non-zero, loudly (procrastinate's worker does the same).
SIGTERM/SIGINT set `stop`: requests in flight finish, the follower commits its cursor,
deliveries in flight finish or go back to the queue when their lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Protocol

import structlog
import uvicorn
from sqlalchemy.exc import DBAPIError

from watcher import eventloop
from watcher.api import serving
from watcher.api.app import create_app
from watcher.api_processes import ApiChildren, fork_api_processes
from watcher.callbacks.delivery import DeliveryWorker
from watcher.config import Settings
from watcher.db.engine import create_engine, is_sqlite, sqlite_dir_made
from watcher.db.errors import transient_db_error, unavailable
from watcher.db.migrate import upgrade
from watcher.locks import LeaderElected, PgLeaderLock, SqliteInstanceLock
from watcher.metrics import Metrics
from watcher.providers.reconcile import ProviderReconciler
from watcher.services import Services, build_services
from watcher.systemd import Notifier, Watchdog
from watcher.tron.client import TronClient, node_session
from watcher.tron.expiry import Expirer
from watcher.tron.follower import Follower, ensure_start_cursor

log = structlog.get_logger("watcher.daemon")

PARTS = frozenset({"api", "scan", "deliver"})
API_ONLY = frozenset({"api"})
GRACE_S = 20.0
BACKLOG = 2048  # uvicorn's default


class Component(Protocol):
    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


class DaemonError(Exception):
    """The daemon cannot start (another instance, bad settings); the message says why."""


def listen(settings: Settings) -> socket.socket:
    """The API's listening socket, bound before anything else starts: a port in use is one
    clear error at once, not a component dying after the database and node were opened."""
    host, port = settings.api.host, settings.api.port
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        why = (exc.strerror or str(exc)).lower()
        raise DaemonError(f"the API cannot listen on {where}: {why} (api.host, api.port)") from None
    sock.setblocking(False)
    return sock


@dataclass
class ApiServer:
    """uvicorn inside our loop, so it shares the services and stops with the daemon."""

    services: Services
    metrics: Metrics
    sock: socket.socket
    name: str = "api"
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.services.settings
        config = uvicorn.Config(
            create_app(self.services, self.metrics),
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(GRACE_S),
            proxy_headers=True,
            forwarded_allow_ips=settings.api.trusted_proxies,
        )
        server = serving.Server(config)
        task = await serving.start(server, sockets=[self.sock])
        self.started.set()
        log.info("api_listening", host=settings.api.host, port=server.port)
        await stop.wait()
        server.should_exit = True
        await task


@dataclass
class Scanner:
    """The chain follower, the expirer and the provider reconciler: they run together, on
    one elected process."""

    services: Services
    metrics: Metrics
    watchdog: Watchdog
    name: str = "scan"

    async def run(self, stop: asyncio.Event) -> None:
        async with node_session() as http:
            await self._run(
                stop, TronClient(self.services.settings.tron, http, metrics=self.metrics)
            )

    async def _run(self, stop: asyncio.Event, tron: TronClient) -> None:
        s = self.services
        reconciler = ProviderReconciler(s.settings, s.sessions, s.providers, s.payments, s.clock)
        async with asyncio.TaskGroup() as group:
            group.create_task(reconciler.run(stop), name="provider-reconcile")
            # The chain's loops wait for the start cursor; card payments do not.
            if not await self._started(stop, tron):
                return
            follower = Follower(
                s.settings,
                s.sessions,
                tron,
                s.clock,
                metrics=self.metrics,
                watchdog=self.watchdog,
            )
            expirer = Expirer(s.settings, s.sessions, s.clock)
            group.create_task(follower.run(stop), name="follower")
            group.create_task(expirer.run(stop), name="expirer")

    async def _started(self, stop: asyncio.Event, tron: TronClient) -> bool:
        """The start cursor, resolved or read. At the first start the node may not answer
        yet: the API is open meanwhile (creates get 502, /healthz "starting"), and a stop
        does not wait for a retry. A database outage is waited out the same way."""
        attempt = 0
        while not stop.is_set():
            try:
                s = self.services
                start = ensure_start_cursor(s.settings, s.sessions, tron, attempts=None)
                return await _unless_stopped(stop, start)
            except DBAPIError as exc:
                if not transient_db_error(exc):
                    raise
                delay = tron.backoff(attempt)
                attempt += 1
                log.warning("scanner.start_retry", error=str(exc).splitlines()[0], retry_in_s=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        return False


@dataclass
class Daemon:
    settings: Settings
    parts: frozenset[str]
    notifier: Notifier = field(default_factory=Notifier.from_env)
    on_ready: Callable[[Services], Awaitable[None]] | None = None
    # Set by run_daemon() for api.processes > 1: the socket bound before the fork, the
    # schema already migrated, the children to watch.
    sock: socket.socket | None = None
    migrate: bool = True
    children: ApiChildren | None = None

    async def run(self, stop: asyncio.Event | None = None) -> int:
        stop = stop or asyncio.Event()
        _install_signals(stop)
        async with AsyncExitStack() as stack:
            await self._single_instance(stack)
            sock = self.sock
            if sock is None and "api" in self.parts:
                sock = listen(self.settings)
            if sock is not None:
                stack.callback(sock.close)
            if self.migrate:
                await _migrate(self.settings)
            services = await stack.enter_async_context(build_services(self.settings))
            metrics = Metrics(services.clock)
            watchdog = Watchdog.from_env()
            components: list[Component] = []
            if "scan" in self.parts:
                components.append(self._elected(Scanner(services, metrics, watchdog)))
            if "deliver" in self.parts:
                components.append(
                    DeliveryWorker(
                        self.settings,
                        services.sessions,
                        services.box,
                        services.http,
                        services.clock,
                        worker_id=f"{socket.gethostname()}-{os.getpid()}",
                        metrics=metrics,
                        doorbell=services.doorbell,
                    )
                )
            api = ApiServer(services, metrics, sock) if sock is not None else None
            if api is not None:
                components.append(api)
            if watchdog.enabled:
                components.append(_Named("watchdog", watchdog.run))
            if self.children is not None:
                components.append(self.children)
            return await self._supervise(components, api, services, stop)
        return 0

    async def _single_instance(self, stack: AsyncExitStack) -> None:
        path = sqlite_dir_made(self.settings.database.url)
        if path is None:
            return
        lock = SqliteInstanceLock(path)
        try:
            lock.acquire()  # raises with a clear message when another daemon holds the file
        except OSError as exc:
            why = f"cannot create the lock file {lock.path}: {exc.strerror or exc}"
            raise unavailable(self.settings.database.url, why, exc) from None
        stack.callback(lock.release)

    def _elected(self, scanner: Scanner) -> Component:
        """On PostgreSQL exactly one scanner is active: the others stand by (READY, watchdog
        fed) and take over from the stored cursors when the leader's lock goes away."""
        if is_sqlite(self.settings.database.url):
            return scanner
        return LeaderElected(PgLeaderLock(self.settings.database.url), lambda: scanner, "scan")

    async def _supervise(
        self,
        components: list[Component],
        api: ApiServer | None,
        services: Services,
        stop: asyncio.Event,
    ) -> int:
        tasks = {asyncio.create_task(c.run(stop), name=c.name): c for c in components}
        if api is not None:
            await _first(api.started.wait(), *tasks)
        self.notifier.ready(f"running: {', '.join(sorted(self.parts))}")
        log.info("daemon_ready", parts=sorted(self.parts))
        if self.on_ready is not None:
            await self.on_ready(services)
        done, _ = await asyncio.wait(
            [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        failed = [t for t in done if t in tasks and not t.cancelled() and t.exception()]
        for t in failed:
            log.error("component_died", component=t.get_name(), error=repr(t.exception()))
        stop.set()
        self.notifier.stopping()
        log.info("daemon_stopping")
        _, pending = await asyncio.wait(tasks, timeout=GRACE_S)
        for t in pending:
            log.warning("component_cancelled", component=t.get_name())
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("daemon_stopped")
        return 1 if failed else 0


@dataclass
class _Named:
    name: str
    fn: Callable[[asyncio.Event], Awaitable[None]]

    async def run(self, stop: asyncio.Event) -> None:
        await self.fn(stop)


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[object]) -> bool:
    """Run `work` unless `stop` is set first (then it is cancelled); True if it finished."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()  # raises what the work raised
    return True


async def _first(*aws: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks[:1]:
        if not t.done():
            t.cancel()


def run_daemon(settings: Settings, parts: frozenset[str]) -> int:
    """Run the daemon's `parts` until stopped; with api.processes > 1 the API's extra
    processes too (watcher.api_processes). The exit code."""
    extra = settings.api.processes - 1 if "api" in parts else 0
    if extra <= 0:
        return eventloop.run(Daemon(settings, parts).run())
    sock = listen(settings)

    def serve_api() -> int:  # in each forked process
        return eventloop.run(Daemon(settings, API_ONLY, sock=sock, migrate=False).run())

    try:
        # Once, before the fork: the schema, and what every process needs ready and checked
        # (the master key file is made here, the settings that fail only when used fail here).
        eventloop.run(_prepare(settings))
        try:
            pids = fork_api_processes(serve_api, extra)
        except OSError as exc:
            raise DaemonError(
                f"cannot start {extra} more API processes (api.processes): {exc.strerror or exc}"
            ) from None
    except BaseException:
        sock.close()
        raise
    children = ApiChildren(pids, GRACE_S)
    log.info("api_processes_started", pids=pids)
    try:
        return eventloop.run(
            Daemon(settings, parts, sock=sock, migrate=False, children=children).run()
        )
    finally:
        children.kill_now()  # none left after a clean stop; all of them after a failed start


async def _prepare(settings: Settings) -> None:
    await _migrate(settings)
    async with build_services(settings):
        pass


async def _migrate(settings: Settings) -> None:
    """`watcher run` applies pending migrations itself: one less step for operators, and
    upgrade() is safe against concurrent starts (advisory lock / BEGIN IMMEDIATE)."""
    engine = create_engine(settings.database.url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
