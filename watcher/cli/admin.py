"""`watcher init`, `watcher db upgrade`, `watcher system disable|enable|status`."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.cli.common import (
    database,
    out,
    print_json,
    run,
    secret_box,
    state,
    styled,
    with_session,
)
from watcher.cli.merchant import show_credentials
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.clock import now_ms
from watcher.config import Settings
from watcher.db.migrate import current_revision, upgrade
from watcher.db.models import Merchant
from watcher.merchants import Credentials, create_merchant
from watcher.payments.switch import is_disabled, set_disabled


async def migrate(settings: Settings) -> tuple[str | None, str | None]:
    async with database(settings, require_current=False) as (engine, _):
        before = await current_revision(engine)
        await upgrade(engine)
        return before, await current_revision(engine)


def register(app: typer.Typer) -> None:
    db = group(help="Database schema.")
    system = group(help="The operator switch (SYSTEM_DISABLED).")
    app.add_typer(db, name="db")
    app.add_typer(system, name="system")

    @app.command("init")
    def init(
        ctx: typer.Context,
        name: Annotated[str, typer.Option(help="Name of the first merchant.")] = "default",
        as_json: JsonOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        """Create the database and a first merchant; prints its keys and secret once."""
        settings = state(ctx, config).settings
        run(migrate(settings))

        async def go(session: AsyncSession) -> Credentials | None:
            box = await secret_box(session, settings)
            if (await session.execute(select(col(Merchant.id)).limit(1))).first():
                return None
            return await create_merchant(session, box, name)

        creds = run(with_session(settings, go))
        if creds is None:
            if as_json:
                print_json({"initialized": True, "merchant": None})
            else:
                out.print(
                    "Database is ready; merchants exist already (see `watcher merchant list`)."
                )
            return
        show_credentials(creds, as_json, "Database ready. First merchant:")

    @db.command("upgrade")
    def db_upgrade(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        """Apply pending migrations (safe to run twice or from several hosts)."""
        before, after = run(migrate(state(ctx, config).settings))
        if as_json:
            print_json({"from": before, "to": after})
        else:
            out.print(
                f"database schema already current ({after})"
                if before == after
                else f"database schema: {before or 'empty'} -> {after}"
            )

    def _switch(
        ctx: typer.Context, config: str | None, disabled: bool | None, as_json: bool
    ) -> None:
        settings = state(ctx, config).settings

        async def go(session: AsyncSession) -> bool:
            if disabled is not None:
                await set_disabled(session, disabled, now_ms())
            return await is_disabled(session)

        now_disabled = run(with_session(settings, go))
        if as_json:
            print_json({"disabled": now_disabled})
        else:
            out.print(
                styled("payments are ", ("DISABLED", "red"), " (503 SYSTEM_DISABLED)")
                if now_disabled
                else styled("payments are ", ("enabled", "green"))
            )

    @system.command("disable")
    def disable(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        """New payments get 503 SYSTEM_DISABLED; open payments keep being watched."""
        _switch(ctx, config, True, as_json)

    @system.command("enable")
    def enable(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        """Take new payments again."""
        _switch(ctx, config, False, as_json)

    @system.command("status")
    def status(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        """Whether new payments are taken."""
        _switch(ctx, config, None, as_json)
