"""The crash soak in short (bench/soak.py runs it at volume): about forty payments of every
kind — full, partial then the rest, over, late, moved or dropped by a fork — paid on the
devchain while `watcher run` is SIGKILLed three times and started again, on SQLite and on
PostgreSQL. Every payment ends in its expected state, each state event comes once, every
event reaches the merchant's endpoint, every transfer is credited once."""

from __future__ import annotations

import pytest

from tests.conftest import pg_reachable
from tests.support.soak.run import Options, soak


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
async def test_payments_survive_sigkills_of_the_daemon(db: str) -> None:
    if db == "postgres" and not pg_reachable():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    lines: list[str] = []
    opts = Options(
        payments=40,
        kills=3,
        db=db,
        rate=8,
        ttl_s=10,
        block_ms=400,
        solidify_lag=4,
        settle_timeout_s=120,
        seed=7,
    )
    result = await soak(opts, lines.append)
    assert result.ok, "\n".join(lines)
