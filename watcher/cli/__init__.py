"""The `watcher` command: operators' view of the daemon and its database."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from importlib.metadata import version
from typing import Annotated, NoReturn

import typer

from watcher.cli import (
    admin,
    callbacks,
    chain,
    common,
    devchain,
    merchant,
    openapi,
    payments,
    providers,
    rate,
    sandbox,
    serve,
)
from watcher.cli.shape import ConfigOpt
from watcher.config import LogSettings
from watcher.logs import configure_logging

app = typer.Typer(
    name="watcher",
    help="kasa-watcher: USDT-TRC20 deposits and payment API for merchants pricing in TRY.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"watcher {version('kasa-watcher')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: ConfigOpt = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    # Commands log warnings and errors only, to stderr, so `--json` output stays clean; the
    # daemon commands reconfigure logging from [log] once settings are loaded.
    configure_logging(LogSettings(level="WARNING", json_logs=False))
    ctx.obj = common.State(config_path=config)


admin.register(app)
serve.register(app)
app.command("devchain", short_help="Run the local TRON node and Binance simulator.")(
    devchain.devchain
)
app.command("openapi", short_help="Print the API's OpenAPI document.")(openapi.openapi)
app.add_typer(merchant.app, name="merchant", help="Merchants and their API keys.")
app.add_typer(payments.app, name="payments", help="Inspect payments.")
app.add_typer(callbacks.app, name="callbacks", help="Merchant callbacks: list, show, retry.")
app.add_typer(rate.app, name="rate", help="The TRY/USDT rate payments are locked at.")
app.add_typer(chain.app, name="chain", help="The chain follower: status, verify a transaction.")
app.add_typer(
    providers.app, name="providers", help="Card, bank and wallet providers: check credentials."
)
app.add_typer(sandbox.app, name="sandbox", help="Test-mode payments: pay one without a chain.")


def main() -> NoReturn:
    """The console script. Once the command has returned, everything it opened is closed
    (database, sockets, the instance lock); the process then leaves without the interpreter
    tearing down a few hundred modules, which takes most of a second on a busy host and
    would make every stop (SIGTERM, systemd restarts) that much slower."""
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1
