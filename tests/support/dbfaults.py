"""Faults made in the database itself, for tests that must see our code meet them (never by
patching our own functions): a trigger that refuses every update of a payment."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def refuse_payment_updates(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_update BEFORE UPDATE ON payment "
                    "BEGIN SELECT RAISE(ABORT, 'injected: the payment cannot change now'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION refuse_update() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'injected: the payment cannot change now'; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_update BEFORE UPDATE ON payment "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_update()"
                )
            )


async def allow_payment_updates(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(text("DROP TRIGGER refuse_update"))
        else:
            await conn.execute(text("DROP TRIGGER refuse_update ON payment"))
            await conn.execute(text("DROP FUNCTION refuse_update()"))
