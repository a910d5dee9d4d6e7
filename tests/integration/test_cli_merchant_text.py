"""Text that merchants and payers control (externalRef, full name, a receiver's answer) is
printed by the operator CLI as it is: never read as rich markup, never an emoji code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from watcher.cli import app
from watcher.clock import now_ms
from watcher.db.engine import create_engine, session_factory
from watcher.db.models import Callback, CallbackAttempt, Payment
from watcher.merchants import create_merchant
from watcher.payments.events import record_event
from watcher.secrets import load_box, new_id

runner = CliRunner()
REF = "[/bold]ORD-[red]1 :smile:"
ANSWER = 'HTTP 200 without {"received": true}: [/]'


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    return path


def _cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(cfg), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


def _seed(db_url: str) -> tuple[str, int]:
    async def go() -> tuple[str, int]:
        engine = create_engine(db_url)
        sessions = session_factory(engine)
        try:
            async with sessions() as s, s.begin():
                box = load_box(db_url)
                merchant = await create_merchant(s, box, "Kasa [bold]Ltd[/bold]")
                now = now_ms()
                p = Payment(
                    id=new_id("txn_"),
                    merchant_id=merchant.id,
                    sandbox=True,
                    external_ref=REF,
                    provider="crypto",
                    amount_kurus=100_000,
                    full_name="[link=http://x]Ayşe[/link]",
                    status="cancelled",
                    created_ms=now,
                    updated_ms=now,
                    expires_ms=now + 60_000,
                    address="TJCnKsPa7y5okkXvQAidZBzqx3QyQ6sxMW",
                    amount_micro=28_169_000,
                    rate="35.5",
                    created_block=1,
                    callback_url="http://127.0.0.1:9/[/]",
                )
                s.add(p)
                await s.flush()
                await record_event(s, p, "payment.cancelled", now)
                row = (await s.execute(select(Callback))).scalar_one()
                assert row.id is not None
                row.attempts, row.last_status_code, row.last_error = 1, 200, ANSWER
                s.add(
                    CallbackAttempt(
                        callback_id=row.id,
                        attempt=1,
                        started_ms=now,
                        status_code=200,
                        error=ANSWER,
                        worker="[/]",
                    )
                )
                return p.id, row.id
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_merchant_text_with_markup_is_printed_as_plain_text(cfg: Path, db_url: str) -> None:
    payment_id, callback_id = _seed(db_url)
    code, out, _ = _cli(cfg, "payments", "list")
    assert code == 0, out
    assert REF in out
    assert "cancelled [test]" in out
    code, out, _ = _cli(cfg, "payments", "show", payment_id)
    assert code == 0 and REF in out and "[link=http://x]Ayşe[/link]" in out
    code, out, _ = _cli(cfg, "callbacks", "list")
    assert code == 0 and "[/]" in out
    code, out, _ = _cli(cfg, "callbacks", "show", str(callback_id))
    assert code == 0 and ANSWER in out and "http://127.0.0.1:9/[/]" in out
    code, out, _ = _cli(cfg, "merchant", "list")
    assert code == 0 and "Kasa [bold]Ltd[/bold]" in out
