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
from watcher.config import MAINNET_USDT, Settings
from watcher.devchain.acidpanel import FakeAcidPanel
from watcher.devchain.binance import FakeBinance
from watcher.devchain.chain import DevChain
from watcher.devchain.kazawallet import FakeKazawallet
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
    webhooks_to: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The daemon's URL: the AcidPanel and Kazawallet stand-ins post their "
            "webhooks to URL/providers/{acidpanel,kazawallet}/webhook.",
        ),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The local TRON node simulator (java-tron HTTP API) and a Binance USDTTRY ticker.

    Point tron.endpoints and rates.binance_base_url at the printed URL.

    Pay an address: POST /_dev/transfer {"to": ADDRESS, "amount": MICRO_USDT}.

    It also stands in for Stripe's Checkout API: point [providers.stripe] api_base at the
    URL (a secret_key configured there is the only one it takes; as at Stripe, a test key,
    sk_test_, makes test-mode sessions, which never pay a live payment: use an sk_live_ one);
    POST /_dev/stripe/SESSION/complete (or expire, refund) answers with the event Stripe
    would send, to sign with the webhook secret and post to the daemon.

    And for AcidPanel (base_url URL/api/provider) and Kazawallet (base_url URL/wallet), with
    the credentials of the config's [providers.acidpanel] and [providers.kazawallet]: POST
    /_dev/acidpanel/TRACKING_CODE/STATUS[?amount=…] and /_dev/kazawallet/ORDER_ID/STATUS
    sign the webhook as they do and deliver it to --webhooks-to.

    Also POST /_dev/mine, /_dev/fork, /_dev/fault and GET /_dev/state.
    """
    settings = state(ctx, config).settings
    configure_logging(settings.log)
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
        stripe=FakeStripe(secret_key=settings.providers.stripe.secret_key or None),
        acidpanel=_acidpanel(settings, webhooks_to),
        kazawallet=_kazawallet(settings, webhooks_to),
        api_key=api_key,
    )
    try:
        run(_serve(server, as_json))
    except KeyboardInterrupt:
        pass


def _acidpanel(settings: Settings, webhooks_to: str | None) -> FakeAcidPanel:
    """The AcidPanel stand-in, taking the credentials the daemon is configured with."""
    ours = settings.providers.acidpanel
    return FakeAcidPanel(
        api_key=ours.api_key or "ak_devchain",
        secret_key=ours.secret_key or "sk_devchain",
        credential_key=ours.credential_key or "site-devchain",
        callback_url=f"{webhooks_to.rstrip('/')}/providers/acidpanel/webhook"
        if webhooks_to
        else None,
    )


def _kazawallet(settings: Settings, webhooks_to: str | None) -> FakeKazawallet:
    ours = settings.providers.kazawallet
    return FakeKazawallet(
        api_key=ours.api_key or "kz_devchain",
        api_secret=ours.api_secret or "kz_secret_devchain",
        webhook_url=f"{webhooks_to.rstrip('/')}/providers/kazawallet/webhook"
        if webhooks_to
        else None,
    )


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
        "acidpanelBaseUrl": f"{server.url}/api/provider",
        "kazawalletBaseUrl": f"{server.url}/wallet",
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
    out.print(f"  Stripe         {server.url}  (api_base)")
    out.print(f"  AcidPanel      {server.url}/api/provider  (base_url)")
    out.print(f"  Kazawallet     {server.url}/wallet  (base_url)")
    out.print(f"  control        {server.url}/_dev/state  (Ctrl-C stops)")
