import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import _pg_admin, pg_reachable, pg_url
from watcher.config import Settings
from watcher.db.engine import create_engine
from watcher.db.migrate import head_revision, is_current, upgrade
from watcher.db.models import Merchant
from watcher.secrets import load_box
from watcher.services import build_services
from watcher.wallets.hd import DEMO_XPUB


async def test_upgrade_is_idempotent_and_creates_tables(engine: AsyncEngine) -> None:
    assert await is_current(engine)
    await upgrade(engine)  # second run is a no-op
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"payment", "callback", "transfer", "chain_cursor", "merchant"} <= tables
    assert head_revision() == "0004"


@pytest.fixture
def empty_db_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) of the kind in `db_kind`."""
    if db_kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    if not pg_reachable():
        pytest.skip("no PostgreSQL")
    name = f"watcher_m_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield pg_url(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_merchants_from_before_test_secrets_get_one_at_the_next_start(
    empty_db_url: str,
) -> None:
    engine = create_engine(empty_db_url)
    box = load_box(empty_db_url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO merchant (name, webhook_secret_enc, created_ms, disabled) "
                    "VALUES ('old shop', :enc, 0, false)"
                ),
                {"enc": box.encrypt("whsec_live_only")},
            )
        await upgrade(engine)
        async with engine.connect() as conn:
            before = (
                await conn.execute(text("SELECT test_webhook_secret_enc FROM merchant"))
            ).one()
        assert before == (None,)
    finally:
        await engine.dispose()
    settings = Settings.model_validate(
        {"database": {"url": empty_db_url}, "wallet": {"xpub": DEMO_XPUB}}
    )
    async with build_services(settings) as services, services.sessions() as s:
        merchant = (await s.execute(select(Merchant))).scalar_one()
    assert merchant.test_webhook_secret_enc is not None
    issued = box.decrypt(merchant.test_webhook_secret_enc)
    assert issued.startswith("whsec_test_") and box.decrypt(merchant.webhook_secret_enc) == (
        "whsec_live_only"
    )
