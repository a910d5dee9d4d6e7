"""More than one API process on one port (`api.processes`, PostgreSQL).

One Python process answers a few hundred payment requests a second with one core busy; the
others sit idle. With `api.processes = N` the daemon binds the API's socket and applies the
migrations, then forks N-1 processes before any event loop, thread or database connection
exists. Each child serves only the API, on the inherited socket: the kernel hands every new
connection to one of the processes waiting to accept, so more cores answer merchants and no
load balancer is needed. The parent goes on as `watcher run` or `watcher api` would, and
watches its children:

- SIGTERM or SIGINT to the parent stops the children the same graceful way (it forwards the
  signal; after the grace period what is left is killed);
- a child that dies stops the parent with exit 1, so the service manager restarts them all
  rather than leaving fewer processes than configured without a word;
- a parent killed outright takes its children with it (Linux: PR_SET_PDEATHSIG).

Only the parent speaks to systemd (READY, STOPPING, the watchdog). What each process keeps
for itself: the rate limits per merchant and per address, the key cache, and the counters
on /metrics (a scrape is answered by whichever process takes the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import structlog

from watcher.errors import WatcherError

log = structlog.get_logger("watcher.daemon")

_SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_PR_SET_PDEATHSIG = 1
POLL_S = 0.2


class ApiProcessDied(Exception):
    """One of the extra API processes exited while the daemon was running."""


def fork_api_processes(serve: Callable[[], int], count: int) -> list[int]:
    """Fork `count` processes, each running `serve()` (the API alone, on the inherited
    socket) and exiting with its code; their pids. Call before any event loop exists in this
    process. If a fork fails, those made already are killed before the OSError is raised."""
    parent = os.getpid()
    # uvloop (libuv) accepts every pending connection at once by default; one at a time
    # spreads new connections over the processes instead of the one that woke first.
    os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    pids: list[int] = []
    for _ in range(count):
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            ApiChildren(pids, 0).kill_now()
            raise
        if pid == 0:
            _serve_child(serve, parent)
        pids.append(pid)
    return pids


def _serve_child(serve: Callable[[], int], parent: int) -> NoReturn:
    code = 1
    try:
        structlog.contextvars.bind_contextvars(pid=os.getpid())
        _die_with(parent)
        for name in _SYSTEMD_VARS:
            os.environ.pop(name, None)
        code = serve()
    except WatcherError as exc:
        log.error("api_process_failed", error=str(exc)[:500])
    except BaseException:  # nothing may unwind into the parent's code after fork
        log.exception("api_process_failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """SIGTERM this process when the parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            log.warning(
                "api_process_orphan_risk",
                error=os.strerror(ctypes.get_errno()),
                note="this process may outlive a killed parent",
            )
    if os.getppid() != parent:
        os._exit(1)


@dataclass
class ApiChildren:
    """The parent's component watching the extra API processes (see the module docstring)."""

    pids: list[int]
    grace_s: float
    name: str = "api-processes"
    _live: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self._live = set(self.pids)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            died = self._reap()
            if died:
                pid, status = died[0]
                await self.stop()  # the others finish their requests in flight
                raise ApiProcessDied(f"API process {pid} exited ({_how(status)})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
        await self.stop()

    async def stop(self) -> None:
        """SIGTERM the live children, wait up to the grace period, SIGKILL the rest."""
        self._signal(signal.SIGTERM)
        await self._reap_all(self.grace_s)
        if self._live:
            log.warning("api_processes_killed", pids=sorted(self._live))
            self._signal(signal.SIGKILL)
            await self._reap_all(None)

    async def _reap_all(self, within_s: float | None) -> None:
        """Reap children until none is left or `within_s` has passed (None: no limit)."""
        loop = asyncio.get_running_loop()
        deadline = None if within_s is None else loop.time() + within_s
        while self._live and (deadline is None or loop.time() < deadline):
            self._reap()
            if self._live:
                await asyncio.sleep(0.05)

    def kill_now(self) -> None:
        """For a parent that could not start: take the children down at once."""
        self._signal(signal.SIGKILL)
        for pid in list(self._live):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._live.clear()

    def _signal(self, sig: signal.Signals) -> None:
        for pid in list(self._live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _reap(self) -> list[tuple[int, int]]:
        died = []
        for pid in list(self._live):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self._live.discard(pid)
                died.append((pid, status))
        return died


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
