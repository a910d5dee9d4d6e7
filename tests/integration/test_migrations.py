from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from watcher.db.migrate import head_revision, is_current, upgrade


async def test_upgrade_is_idempotent_and_creates_tables(engine: AsyncEngine) -> None:
    assert await is_current(engine)
    await upgrade(engine)  # second run is a no-op
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"payment", "callback", "transfer", "chain_cursor", "merchant"} <= tables
    assert head_revision() == "0001"
