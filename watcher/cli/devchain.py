"""`watcher devchain`: the local TRON node and Binance ticker simulator, standalone.

For the demo and for e2e tests in other processes, which drive it through its control API
(POST /_dev/transfer, /_dev/mine, /_dev/fork, /_dev/fault; GET /_dev/state).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from watcher.cli.common import fail, out, print_json, run, state, styled
from watcher.cli.shape import ConfigOpt, JsonOpt
from watcher.config import MAINNET_USDT
from watcher.devchain.binance import FakeBinance
from watcher.devchain.chain import DevChain
from watcher.devchain.server import DevChainServer
from watcher.devchain.stripe import FakeStripe
from watcher.logs import configure_logging
from watcher.tron.address import is_valid


def devchain(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8090,
    block_time_ms: Annotated[
        int, typer.Option(help="Mine a block every this many ms; 0 mines only on request.")
    ] = 3000,
    solidify_lag: Annotated[
        int, typer.Option(help="Blocks between the head and the solidified head.")
    ] = 19,
    usdt_price: Annotated[str, typer.Option(help="USDTTRY price the ticker answers.")] = "35.50",
    usdt_contract: Annotated[str, typer.Option(help="The USDT contract (base58).")] = MAINNET_USDT,
    start_number: Annotated[int, typer.Option(help="Number of the first block.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the chain's randomness.")] = 0,
    api_key: Annotated[
        str | None, typer.Option(help="Require this TRON-PRO-API-KEY header.")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The local TRON node simulator (java-tron HTTP API) and a Binance USDTTRY ticker.

    Point tron.endpoints and rates.binance_base_url at the printed URL.

    Pay an address: POST /_dev/transfer {"to": ADDRESS, "amount": MICRO_USDT}.

    It also stands in for Stripe's Checkout API: point [providers.stripe] api_base at the
    URL; POST /_dev/stripe/SESSION/complete (or expire, refund) answers with the event
    Stripe would send, to sign with the webhook secret and post to the daemon.

    Also POST /_dev/mine, /_dev/fork, /_dev/fault and GET /_dev/state.
    """
    configure_logging(state(ctx, config).settings.log)
    try:
        price = Decimal(usdt_price)
    except InvalidOperation:
        fail(f"--usdt-price {usdt_price!r} is not a number")
    if not price.is_finite() or price <= 0:
        fail("--usdt-price must be a positive number")
    if not is_valid(usdt_contract):
        fail(f"--usdt-contract {usdt_contract!r} is not a TRON address")
    if solidify_lag < 0 or block_time_ms < 0:
        fail("--solidify-lag and --block-time-ms must not be negative")
    # Blocks are stamped with the wall clock in slots of the timer's period, so a payment's
    # deadline compares with block times as it would on mainnet, whatever the block time.
    chain = DevChain(
        usdt_contract=usdt_contract,
        solidify_lag=solidify_lag,
        block_interval_ms=block_time_ms or 3000,
        start_number=start_number,
        seed=seed,
    )
    server = DevChainServer(
        chain,
        host=host,
        port=port,
        block_time_ms=block_time_ms or None,
        binance=FakeBinance(price=price),
        stripe=FakeStripe(),
        api_key=api_key,
    )
    try:
        run(_serve(server, as_json))
    except KeyboardInterrupt:
        pass


async def _serve(server: DevChainServer, as_json: bool) -> None:
    await server.start(handle_signals=True)
    try:
        _announce(server, as_json)
    except BaseException:
        await server.stop()
        raise
    await server.wait()


def _announce(server: DevChainServer, as_json: bool) -> None:
    chain = server.chain
    info = {
        "url": server.url,
        "binanceUrl": server.url,
        "stripeApiBase": server.url,
        "usdtContract": chain.usdt_contract,
        "head": chain.head_number,
        "solidifyLag": chain.solidify_lag,
        "blockTimeMs": server.block_time_ms,
    }
    if as_json:
        print_json(info)
        return
    out.print(styled(("devchain", "bold green"), f" listening on {server.url}"))
    out.print(f"  USDT contract  {chain.usdt_contract}")
    out.print(f"  head block     {chain.head_number} (solidified {chain.solid_number})")
    out.print(f"  Binance        {server.url}/api/v3/ticker/price?symbol=USDTTRY")
    out.print(f"  control        {server.url}/_dev/state  (Ctrl-C stops)")
