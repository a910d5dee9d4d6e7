"""Shared fixtures: a migrated database on SQLite and, when reachable, on PostgreSQL.

PostgreSQL tests get a fresh database per test, cloned from a migrated template database
(CREATE DATABASE … TEMPLATE), which costs tens of milliseconds instead of a migration run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import NullPool

from tests.support import pgcluster
from tests.support.pgcluster import PgCluster
from watcher.db.engine import create_engine, session_factory
from watcher.db.migrate import upgrade

PG_HOST = os.environ.get("WATCHER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("WATCHER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("WATCHER_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("WATCHER_TEST_PG_DB", "test")
_TEMPLATE = f"watcher_tpl_{os.getpid()}"


def pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            return True
    except OSError:
        return False


def pg_url(db: str, driver: str = "asyncpg") -> str:
    return f"postgresql+{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not pg_reachable():
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT}")

    async def make() -> None:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
        await _pg_admin(f'CREATE DATABASE "{_TEMPLATE}"')
        engine = create_engine(pg_url(_TEMPLATE), poolclass=NullPool)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(make())
    yield _TEMPLATE
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty, migrated database of the kind in `db_kind`."""
    if db_kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'watcher.db'}"

        async def migrate() -> None:
            engine = create_engine(url)
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        yield url
        return
    template = request.getfixturevalue("pg_template")
    name = f"watcher_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield pg_url(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_database(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (for tests that only make sense there)."""
    name = f"watcher_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield pg_url(name)
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture(autouse=True)
def _secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixed master key so tests never write key files into the repo.
    monkeypatch.setenv("WATCHER_SECRET_KEY", "x4XHk6qf3W5sC3xK0v1h8c3W6mQ9Zb2LrT7yU1pN5aE=")


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL cluster the tests of one module may stop and start."""
    if not pgcluster.available():
        pytest.skip("no initdb/pg_ctl to run a private PostgreSQL cluster")
    made = PgCluster()
    try:
        made.init()
        made.start()
        yield made
    finally:
        made.remove()
