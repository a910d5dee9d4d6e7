"""`watcher run|api|scan|deliver` (the daemon, whole or in parts) and `watcher demo`."""

from __future__ import annotations

import typer

from watcher.cli.common import fail, state
from watcher.cli.shape import ConfigOpt
from watcher.config import ConfigError
from watcher.daemon import DaemonError, run_daemon
from watcher.db.errors import DatabaseUnavailable
from watcher.demo import run_demo
from watcher.locks import InstanceLocked
from watcher.logs import configure_logging
from watcher.redact import redact_url
from watcher.secrets import SecretKeyError
from watcher.tron.client import NodeError


def _serve(ctx: typer.Context, config: str | None, parts: frozenset[str]) -> None:
    settings = state(ctx, config).settings
    configure_logging(settings.log)
    try:
        code = run_daemon(settings, parts)
    except (DaemonError, InstanceLocked, DatabaseUnavailable) as exc:
        fail(str(exc))
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}")
    except SecretKeyError as exc:
        fail(f"{exc} (WATCHER_SECRET_KEY or watcher.key)")
    except NodeError as exc:
        # Only at the very first start: the start block is resolved from the node's head.
        endpoints = ", ".join(redact_url(u) for u in settings.tron.endpoints)
        fail(f"no TRON node answered (tron.endpoints: {endpoints}): {exc}")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_all(ctx: typer.Context, config: ConfigOpt = None) -> None:
        """API, chain follower, expiry and callback delivery in one process."""
        _serve(ctx, config, frozenset({"api", "scan", "deliver"}))

    @app.command("api")
    def api(ctx: typer.Context, config: ConfigOpt = None) -> None:
        """Only the HTTP API (run several behind a load balancer on PostgreSQL)."""
        _serve(ctx, config, frozenset({"api"}))

    @app.command("scan")
    def scan(ctx: typer.Context, config: ConfigOpt = None) -> None:
        """Only the chain follower and expiry; on PostgreSQL one is active, others stand by."""
        _serve(ctx, config, frozenset({"scan"}))

    @app.command("deliver")
    def deliver(ctx: typer.Context, config: ConfigOpt = None) -> None:
        """Only callback delivery (run several on PostgreSQL)."""
        _serve(ctx, config, frozenset({"deliver"}))

    @app.command("demo")
    def demo() -> None:
        """The whole flow on a local devchain and simulated Binance; no network, no config."""
        raise typer.Exit(run_demo())
