"""`watcher openapi`: the API's OpenAPI document, as the server serves it at /openapi.json."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from watcher.api.app import ROUTERS
from watcher.api.openapi import document, render
from watcher.cli.common import state
from watcher.cli.shape import ConfigOpt
from watcher.config import LimitsSettings


def openapi(
    ctx: typer.Context,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults",
            help="With the default [limits] instead of the config's (docs/openapi.json).",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Print the OpenAPI document of the merchant API (JSON)."""
    limits = LimitsSettings() if defaults else state(ctx, config).settings.limits
    routes = [route for router in ROUTERS for route in router.routes]
    sys.stdout.write(render(document(routes, limits)))
