"""What makes the subcommands one program: the same help layout, the same options.

Help is click's plain layout: typer's rich layout prints a `<bool>` value beside every flag,
which reads as if `--json` took an argument. `--config` is accepted before the subcommand (by
the root) and after it (by every command that reads settings, through `ConfigOpt`).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

CONFIG_HELP = "TOML config file (default: $WATCHER_CONFIG)."

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only (for scripts).")]
ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", metavar="PATH", help=CONFIG_HELP)]


def group(**kwargs: Any) -> typer.Typer:
    """A command group laid out like the others."""
    return typer.Typer(no_args_is_help=True, rich_markup_mode=None, **kwargs)
