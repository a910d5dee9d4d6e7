"""`watcher merchant add|list|rotate-key|disable|enable`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.cli.common import (
    camel,
    fail,
    out,
    print_json,
    require_database_file,
    run,
    secret_box,
    state,
    styled,
    with_session,
    yes_no,
)
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.clock import iso
from watcher.db.models import ApiKey, Merchant, Payment
from watcher.merchants import (
    Credentials,
    MerchantExists,
    MerchantNotFound,
    create_merchant,
    new_test_secret,
    rotate,
    set_disabled,
)

app = group()


def show_credentials(creds: Credentials, as_json: bool, title: str) -> None:
    if as_json:
        # The snake_case keys stay for the scripts written against them; camelCase twins
        # match every other JSON output.
        plain = creds.as_dict()
        print_json(plain | {camel(k): v for k, v in plain.items() if "_" in k})
        return
    out.print(styled((title, "bold green"), f" {creds.name} (id {creds.id})"))
    for label, value in (
        ("live API key:       ", creds.api_key),
        ("test API key:       ", creds.test_api_key),
        ("webhook secret:     ", creds.webhook_secret),
        ("test webhook secret:", creds.test_webhook_secret),
    ):
        if value:  # what was not issued this time is not shown
            out.print(f"  {label} {value}", markup=False, highlight=False)
    out.print(styled(("These are shown once. Store them now.", "yellow")))


@app.command("add")
def add(ctx: typer.Context, name: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Create a merchant; prints its API keys and webhook secret once."""
    settings = state(ctx, config).settings
    require_database_file(settings)  # before the key file is made beside it

    async def go(session: AsyncSession) -> Credentials:
        return await create_merchant(session, await secret_box(session, settings), name)

    try:
        creds = run(with_session(settings, go))
    except (MerchantExists, ValueError) as exc:
        fail(str(exc))
    show_credentials(creds, as_json, "Merchant created:")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List merchants with their active keys and payment counts."""
    settings = state(ctx, config).settings

    async def go(session: AsyncSession) -> list[dict[str, object]]:
        keys = (
            select(col(ApiKey.merchant_id), func.count().label("n"))
            .where(col(ApiKey.revoked_ms).is_(None))
            .group_by(col(ApiKey.merchant_id))
            .subquery()
        )
        pays = (
            select(col(Payment.merchant_id), func.count().label("n"))
            .group_by(col(Payment.merchant_id))
            .subquery()
        )
        rows = await session.execute(
            select(Merchant, keys.c.n, pays.c.n)
            .outerjoin(keys, keys.c.merchant_id == col(Merchant.id))
            .outerjoin(pays, pays.c.merchant_id == col(Merchant.id))
            .order_by(col(Merchant.id))
        )
        return [
            {
                "id": m.id,
                "name": m.name,
                "createdAt": iso(m.created_ms),
                "disabled": m.disabled,
                "activeKeys": k or 0,
                "payments": p or 0,
            }
            for m, k, p in rows
        ]

    rows = run(with_session(settings, go))
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "created", "active keys", "payments", "disabled")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["name"]),
            str(r["createdAt"]),
            str(r["activeKeys"]),
            str(r["payments"]),
            yes_no(bool(r["disabled"])),
        )
    out.print(table)


@app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    merchant: Annotated[str, typer.Argument(help="Merchant name or id.")],
    secret: Annotated[
        bool, typer.Option("--secret", help="Also issue new webhook secrets (live and test).")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Revoke the merchant's API keys and issue new ones (shown once)."""
    settings = state(ctx, config).settings
    require_database_file(settings)  # before the key file is made beside it

    async def go(session: AsyncSession) -> Credentials:
        return await rotate(session, await secret_box(session, settings), merchant, secret=secret)

    try:
        creds = run(with_session(settings, go))
    except MerchantNotFound as exc:
        fail(str(exc))
    show_credentials(creds, as_json, "New keys for")


def _set_disabled(
    ctx: typer.Context, config: str | None, ref: str, disabled: bool, as_json: bool
) -> None:
    settings = state(ctx, config).settings

    async def go(session: AsyncSession) -> Merchant:
        return await set_disabled(session, ref, disabled)

    try:
        merchant = run(with_session(settings, go))
    except MerchantNotFound as exc:
        fail(str(exc))
    if as_json:
        print_json({"id": merchant.id, "name": merchant.name, "disabled": merchant.disabled})
        return
    state_text = "disabled: its API keys get 401" if disabled else "enabled"
    out.print(f"merchant {merchant.name} (id {merchant.id}) is {state_text}", highlight=False)


MerchantArg = Annotated[str, typer.Argument(help="Merchant name or id.")]


@app.command("disable")
def disable(
    ctx: typer.Context, merchant: MerchantArg, as_json: JsonOpt = False, config: ConfigOpt = None
) -> None:
    """Stop the merchant's API keys (401); its open payments are still watched and reported."""
    _set_disabled(ctx, config, merchant, True, as_json)


@app.command("enable")
def enable(
    ctx: typer.Context, merchant: MerchantArg, as_json: JsonOpt = False, config: ConfigOpt = None
) -> None:
    """Let the merchant's API keys in again."""
    _set_disabled(ctx, config, merchant, False, as_json)


@app.command("test-secret")
def test_secret(
    ctx: typer.Context, merchant: MerchantArg, as_json: JsonOpt = False, config: ConfigOpt = None
) -> None:
    """Issue a new test webhook secret (shown once); the API keys and the live secret stay.

    Callbacks of test-mode payments (sk_test_ keys) are signed with it, never with the live
    secret. Merchants created before test secrets existed need this once.
    """
    settings = state(ctx, config).settings
    require_database_file(settings)

    async def go(session: AsyncSession) -> Credentials:
        return await new_test_secret(session, await secret_box(session, settings), merchant)

    try:
        creds = run(with_session(settings, go))
    except MerchantNotFound as exc:
        fail(str(exc))
    if as_json:
        secret = creds.test_webhook_secret
        print_json(
            {"id": creds.id, "name": creds.name, "test_webhook_secret": secret}
            | {"testWebhookSecret": secret}
        )
        return
    show_credentials(creds, as_json, "New test webhook secret for")
