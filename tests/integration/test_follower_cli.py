"""`watcher chain status|verify` and `watcher payments unmatched`, on the devchain.

The verification rules run in-process on both databases; the commands themselves run as an
operator runs them, as processes printing JSON.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from typer.testing import CliRunner

from tests.integration.chainkit import LAG, USDT_10, Rig
from watcher import jsonio
from watcher.cli import app as cli
from watcher.cli.common import State
from watcher.cli.unmatched import unmatched
from watcher.clock import now_ms
from watcher.logs import configure_logging
from watcher.tron.verify import Verifier

pytestmark = pytest.mark.asyncio
FAKE_USDT = "TXLAQ63Xg1NAzckPwKHvzw7CSEmLMEqcdj"


def verifier(r: Rig) -> Verifier:
    return Verifier(r.settings, r.sessions, r.client, r.clock)


async def test_verify_explains_what_counts_and_what_never_does(r: Rig) -> None:
    p = await r.pay(USDT_10)
    to = p.address or ""
    good = r.chain.transfer(to, USDT_10)
    fake = r.chain.transfer(to, USDT_10, token=FAKE_USDT)
    failed = r.chain.transfer(to, USDT_10, result="OUT_OF_ENERGY")
    poison = r.chain.transfer(to, 0)
    stranger = r.chain.transfer(r.address(), USDT_10)
    r.chain.mine(LAG + 1)
    await r.catch_up()
    v = verifier(r)
    counted = await v.verify(good)
    assert (counted.outcome, counted.logs[0].payment_id, counted.logs[0].state) == (
        "counted",
        p.id,
        "final",
    )
    assert (await v.verify(fake)).outcome == "fake_token"
    assert (await v.verify(failed)).outcome == "failed"
    assert (await v.verify(poison)).outcome == "zero_amount"
    assert (await v.verify(stranger)).outcome == "not_watched"
    assert (await v.verify("ab" * 32)).outcome == "not_found"


async def test_verify_credits_a_transfer_the_follower_missed_once(r: Rig) -> None:
    to = r.address()
    txid = r.chain.transfer(to, USDT_10)
    (block,) = r.chain.mine(1)
    r.chain.mine(LAG)
    await r.catch_up()
    # The payment appears with a creation block before the transfer only afterwards (say,
    # restored from a backup): the follower has walked past it already.
    p = await r.pay(USDT_10, to=to, created_block=block - 1)
    first = await verifier(r).verify(txid)
    assert (first.outcome, first.block, first.logs[0].payment_id) == ("credited_now", block, p.id)
    paid = await r.payment(p.id)
    assert (paid.status, paid.received_micro) == ("completed", USDT_10)
    again = await verifier(r).verify(txid)
    assert again.outcome == "counted"
    assert len(await r.transfers()) == 1
    assert await r.events(p.id) == ["payment.completed"]


async def test_verify_leaves_blocks_not_walked_yet_to_the_follower(r: Rig) -> None:
    p = await r.pay(USDT_10)
    txid = r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(1)
    v = await verifier(r).verify(txid)
    assert (v.outcome, v.logs[0].payment_id) == ("not_walked_yet", p.id)
    assert await r.transfers() == []


async def test_unmatched_lists_funds_that_belong_to_no_payment(r: Rig) -> None:
    to = r.address()
    r.chain.transfer(to, 1_234_567)
    (block,) = r.chain.mine(1)
    await r.pay(USDT_10, to=to, created_block=block)  # the transfer predates the payment
    r.chain.mine(LAG)
    await r.catch_up()
    app = typer.Typer()
    app.command()(unmatched)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = State()
        ctx.obj._settings = r.settings

    result = await asyncio.to_thread(CliRunner().invoke, app, ["unmatched", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = jsonio.loads(result.stdout)
    assert (row["to"], row["block"], row["amountUsdt"]) == (to, block, jsonio.loads("1.234567"))


async def watcher(r: Rig, *args: str) -> tuple[int, str]:
    """The real `watcher` command line, in a thread (it runs its own event loop)."""
    env = {
        "WATCHER_DATABASE__URL": r.settings.database.url,
        "WATCHER_TRON__ENDPOINTS": json.dumps(r.settings.tron.endpoints),
        "WATCHER_TRON__REQUEST_TIMEOUT_S": "2",
        "WATCHER_CONFIG": None,
    }
    try:
        result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    finally:
        configure_logging(r.settings.log)  # the command pointed logs at the runner's stderr
    return result.exit_code, result.stdout


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_chain_status_and_verify_commands_print_json(r: Rig) -> None:
    p = await r.pay(USDT_10)
    txid = r.chain.transfer(p.address or "", USDT_10)
    r.chain.mine(LAG + 2)
    await r.catch_up()
    r.chain.mine(3)  # the node is ahead of the follower now
    before = now_ms()
    code, stdout = await watcher(r, "chain", "status", "--json")
    after = now_ms()
    assert code == 0
    status = jsonio.loads(stdout)
    assert status["head"] == r.chain.head_number
    assert status["seen"]["block"] == r.chain.head_number - 3
    assert status["final"]["block"] == r.chain.head_number - 3 - LAG
    # Lag as /metrics and /healthz count it: head - seen blocks, now - seen block's time.
    seen_ms = status["seen"]["blockMs"]
    assert status["lagBlocks"] == 3
    assert max(0, before - seen_ms) / 1000 - 0.1 <= status["lagSeconds"]
    assert status["lagSeconds"] <= max(0, after - seen_ms) / 1000 + 0.1
    assert status["watchedAddresses"] == 1  # completed, its address held for the late window
    assert [e["ok"] for e in status["endpoints"]] == [True]
    code, stdout = await watcher(r, "chain", "verify", txid, "--json")
    assert code == 0
    v = jsonio.loads(stdout)
    assert (v["outcome"], v["logs"][0]["paymentId"]) == ("counted", p.id)
    assert v["logs"][0]["amountUsdt"] == 10 and v["blockTime"].endswith("Z")


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_chain_status_without_a_node_exits_1_but_reports_the_cursors(r: Rig) -> None:
    r.settings.tron.endpoints = ["http://127.0.0.1:9"]
    code, stdout = await watcher(r, "chain", "status", "--json")
    status = jsonio.loads(stdout)
    assert code == 1
    assert status["head"] is None and status["seen"]["block"] == await r.cursor("seen")
    assert status["endpoints"][0]["ok"] is False
