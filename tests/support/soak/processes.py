"""`watcher` processes as operators run them, killed with SIGKILL and started again.

A layout is `watcher run` alone, or on PostgreSQL the split one: `watcher api` x2 (two ports),
`watcher scan` x2 (one active, elected by an advisory lock) and `watcher deliver` x2. Each
start of a process writes its own log file (`NAME.N.log`), so the harness can tell what the
current incarnation said (the active scanner is the one whose log last says
`leader.acquired`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.wallets.hd import DEMO_XPUB

WATCHER = str(Path(sys.executable).with_name("watcher"))
SECRET_KEY = "x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    return {**env, "WATCHER_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def daemon_config(
    path: Path,
    *,
    db_url: str,
    node_url: str,
    port: int,
    ttl_s: float,
    backoff_s: list[float],
    **overrides: dict[str, Any],
) -> Path:
    """The daemon's settings with time compressed: a payment open `ttl_s` seconds, callback
    retries after `backoff_s`, the node polled every 0.1 s."""
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": db_url},
        "api": {"port": port, "rate_limit_per_minute": 0},
        "tron": {"endpoints": [node_url], "poll_interval_s": 0.1, "request_timeout_s": 3},
        "wallet": {"xpub": DEMO_XPUB},
        "rates": {"binance_base_url": node_url, "quote_ttl_min": ttl_s / 60, "cache_s": 30},
        "callbacks": {
            "allow_private_urls": True,
            "backoff_s": backoff_s,
            "poll_interval_s": 0.2,
            "timeout_s": 5,
            "per_host_concurrency": 8,
        },
        "log": {"level": "INFO"},
    }
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return write_config(path, sections)


def watcher_cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WATCHER, "--config", str(config), *args],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Process:
    """One `watcher CMD` process, started again after each kill."""

    name: str
    command: str  # run | api | scan | deliver
    config: Path
    logdir: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)  # codes of incarnations that ended alone

    @property
    def log_path(self) -> Path:
        return self.logdir / f"{self.name}.{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        env = environment()
        if self.port is not None:
            env["WATCHER_API__PORT"] = str(self.port)
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [WATCHER, "--config", str(self.config), self.command],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be killed)."""
        if self.popen is None:
            return None
        if self.popen.poll() is not None:
            return self.popen.returncode
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def reap(self) -> int | None:
        """If the process ended by itself, note its code (once) and return it."""
        if self.popen is None or self.popen.poll() is None:
            return None
        code = self.popen.returncode
        if code != -signal.SIGKILL:
            self.exits.append(code)
        self.popen = None
        return code

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def leading(self) -> bool:
        """Whether this incarnation's log says it holds the scanner's lock now."""
        text = self.log_text()
        acquired = text.rfind("leader.acquired")
        given_up = max(text.rfind("leader.lost"), text.rfind("leader.standby_again"))
        return acquired > given_up


@dataclass
class Layout:
    processes: list[Process]

    @classmethod
    def single(cls, config: Path, logdir: Path, port: int) -> Layout:
        return cls([Process("run", "run", config, logdir, port)])

    @classmethod
    def split(cls, config: Path, logdir: Path) -> Layout:
        procs = [Process(f"api-{i}", "api", config, logdir, free_port()) for i in (1, 2)]
        procs += [Process(f"scan-{i}", "scan", config, logdir) for i in (1, 2)]
        procs += [Process(f"deliver-{i}", "deliver", config, logdir) for i in (1, 2)]
        return cls(procs)

    @property
    def api_ports(self) -> list[int]:
        return [p.port for p in self.processes if p.command in ("run", "api") and p.port]

    def of(self, command: str) -> list[Process]:
        return [p for p in self.processes if p.command == command]

    def start(self) -> None:
        for p in self.processes:
            p.start()

    def stop(self) -> dict[str, int | None]:
        for p in self.processes:
            if p.popen is not None and p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        codes: dict[str, int | None] = {}
        for p in self.processes:
            codes[p.name] = p.stop(timeout=max(1.0, deadline - time.monotonic()))
        return codes

    def kill_all(self) -> None:
        for p in self.processes:
            p.kill()

    def logs(self) -> list[Path]:
        return sorted(self.processes[0].logdir.glob("*.log"))
