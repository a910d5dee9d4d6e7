"""`watcher callbacks list|show|retry` on a database where callbacks died and come back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from tests.support.callbacks import add_events, callback_settings, new_merchant
from tests.support.servers import serve_asgi
from watcher import jsonio
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.receiver import ACK, CallbackReceiver, Received
from watcher.callbacks.sender import callback_session
from watcher.cli import app
from watcher.clock import now_ms
from watcher.metrics import Metrics
from watcher.secrets import load_box


async def invoke(*args: str) -> Result:
    # The command runs its own event loop (asyncio.run), so it gets a thread of its own.
    runner = CliRunner()
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args)))


async def cli_json(*args: str) -> Any:
    result = await invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return jsonio.loads(result.stdout)


@pytest.fixture(autouse=True)
def _env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_DATABASE__URL", db_url)
    monkeypatch.delenv("WATCHER_CONFIG", raising=False)


async def test_dead_callbacks_are_listed_shown_and_sent_again(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    box = load_box(db_url)
    merchant = await new_merchant(sessions, box)
    answer = 500

    async def respond(_: Received) -> tuple[int, bytes]:
        return ACK if answer == 200 else (answer, b"{}")

    metrics = Metrics()
    async with serve_asgi(CallbackReceiver(None, respond)) as url, callback_session() as http:
        await add_events(sessions, merchant.id, url, now_ms(), 2)
        settings = callback_settings(db_url, max_attempts=1)
        worker = DeliveryWorker(settings, sessions, box, http, metrics=metrics)
        assert await worker.run_once() == 2
        assert b'watcher_callback_attempts_total{outcome="dead"} 2.0' in metrics.render()[0]

        dead = await cli_json("callbacks", "list", "--status", "dead")
        assert len(dead) == 2 and {c["status"] for c in dead} == {"dead"}
        assert {c["event"] for c in dead} == {"payment.completed"}
        assert await cli_json("callbacks", "list", "--status", "delivered") == []

        shown = await cli_json("callbacks", "show", str(dead[0]["id"]))
        assert (shown["lastStatusCode"], shown["lastError"], shown["attempts"]) == (
            500,
            "HTTP 500",
            1,
        )
        [attempt] = shown["attemptLog"]
        assert (attempt["attempt"], attempt["statusCode"], attempt["error"]) == (1, 500, "HTTP 500")
        assert attempt["durationMs"] >= 0 and attempt["startedAt"].endswith("Z")

        assert await worker.run_once() == 0  # dead stays dead until an operator says otherwise
        retried = await cli_json("callbacks", "retry", "--all-dead")
        assert retried == {"retried": sorted(c["id"] for c in dead)}
        pending = await cli_json("callbacks", "list")
        assert {(c["status"], c["attempts"]) for c in pending} == {("pending", 0)}

        answer = 200
        assert await worker.run_once() == 2
    delivered = await cli_json("callbacks", "list", "--status", "delivered")
    assert len(delivered) == 2 and all(c["deliveredAt"] for c in delivered)
    table = await invoke("callbacks", "list")
    assert table.exit_code == 0 and "delivered" in table.stdout


async def test_retry_needs_exactly_one_target_and_an_existing_id() -> None:
    assert (await invoke("callbacks", "retry")).exit_code == 1
    missing = await invoke("callbacks", "retry", "424242")
    assert missing.exit_code == 1 and "no callback 424242" in missing.stderr
    assert (await invoke("callbacks", "list", "--status", "lost")).exit_code == 1
