"""systemd notify protocol without a library, and a watchdog that trusts only progress.

sd_notify is one datagram of `KEY=VALUE` lines to the AF_UNIX socket named by $NOTIFY_SOCKET
(a leading '@' means the Linux abstract namespace). Outside systemd the variable is unset and
every call here is a cheap no-op, so the daemon calls them unconditionally.

The watchdog is fed only while every registered loop reports progress (`progress("follower")`
once per iteration, whatever it found). A follower catching up far behind the head is making
progress; a follower stuck in a hung request is not. Chain lag is for /healthz, not for killing
the process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("watcher.systemd")


class Notifier:
    """Sends sd_notify messages to one socket address (or nowhere)."""

    def __init__(self, address: str | None):
        self.address = _socket_address(address) if address else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        return cls((os.environ if env is None else env).get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """Send `message`; True if a datagram went out. Never raises: systemd is advisory."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            log.warning("systemd.notify_failed", message=message, error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send("STATUS=" + text.replace("\n", " "))


def _socket_address(path: str) -> str:
    if path.startswith("@"):
        return "\0" + path[1:]
    return path


def notify_ready(status: str | None = None) -> bool:
    return Notifier.from_env().ready(status)


def notify_stopping() -> bool:
    return Notifier.from_env().stopping()


def notify_watchdog() -> bool:
    return Notifier.from_env().watchdog()


def notify_status(text: str) -> bool:
    return Notifier.from_env().status(text)


def watchdog_timeout_s(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set for this process, or None when it is off.

    $WATCHDOG_PID, when present, names the process meant to ping (not a child of it).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """Pings WATCHDOG=1 every `timeout_s / 2` while every registered loop is making progress.

    A loop registers by name and calls `progress(name)` once per iteration. If any loop has
    not reported for `timeout_s`, pings stop and systemd restarts the service once its
    WatchdogSec runs out. Disabled (`timeout_s` None) it only waits for stop, so it can run
    as a component everywhere.
    """

    name = "watchdog"

    def __init__(
        self,
        notifier: Notifier,
        timeout_s: float | None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._notifier = notifier
        self.timeout_s = timeout_s
        self._monotonic = monotonic
        self._last: dict[str, float] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Watchdog:
        return cls(Notifier.from_env(env), watchdog_timeout_s(env))

    @property
    def enabled(self) -> bool:
        return self.timeout_s is not None and self._notifier.enabled

    def register(self, loop: str) -> None:
        """Watch `loop`; registering counts as its first progress (start-up grace)."""
        self._last[loop] = self._monotonic()

    def unregister(self, loop: str) -> None:
        self._last.pop(loop, None)

    def progress(self, loop: str) -> None:
        self._last[loop] = self._monotonic()

    def stalled(self) -> list[str]:
        """The loops that have not reported within the timeout."""
        if self.timeout_s is None:
            return []
        now = self._monotonic()
        return sorted(n for n, t in self._last.items() if now - t > self.timeout_s)

    def tick(self) -> bool:
        """Ping if nothing is stalled; True if a ping went out."""
        stalled = self.stalled()
        if stalled:
            log.error("systemd.watchdog_withheld", stalled=stalled)
            return False
        return self._notifier.watchdog()

    async def run(self, stop: asyncio.Event) -> None:
        if not self.enabled or self.timeout_s is None:
            await stop.wait()
            return
        interval = self.timeout_s / 2
        log.info("systemd.watchdog_started", interval_s=interval, loops=sorted(self._last))
        while not stop.is_set():
            self.tick()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
