"""The payment methods and provider adapters this daemon knows, wired in one place.

How each kind is created (needs the daemon's collaborators: a rate source, an address
allocator, the provider adapters) and how each is shown (needs only the database: the CLI
shows payments without building the rest).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from watcher.config import ConfigError, Settings
from watcher.db.models import Payment
from watcher.payments.methods import Block, Describe, PaymentMethod
from watcher.providers.acidpanel import AcidPanelProvider
from watcher.providers.banktransfer import BankTransferProvider
from watcher.providers.base import Provider
from watcher.providers.kazawallet import KazawalletProvider
from watcher.providers.method import ProviderMethod, provider_blocks
from watcher.providers.sandbox import SandboxProvider
from watcher.rates.base import RateSource
from watcher.tron.method import CryptoMethod
from watcher.tron.view import crypto_blocks
from watcher.wallets.base import AddressAllocator

_DESCRIBE: dict[str, Describe] = {
    "crypto": crypto_blocks,
    "card": provider_blocks,
    "bank": provider_blocks,
    "wallet": provider_blocks,
}


async def blocks(session: AsyncSession, payments: Sequence[Payment]) -> dict[str, Block]:
    """The method block of each payment, by payment id (one query per kind at most)."""
    by_kind: dict[str, list[Payment]] = defaultdict(list)
    for p in payments:
        by_kind[p.provider].append(p)
    found: dict[str, Block] = {}
    for kind, group in by_kind.items():
        describe = _DESCRIBE.get(kind)
        if describe is not None:
            found.update(await describe(session, group))
    return found


def build_providers(settings: Settings) -> dict[str, Provider]:
    """The adapters of the enabled payment methods, those configured but not used by a method
    now (payments made before a switch still get their webhooks and status questions
    answered), and the sandbox; by name."""
    public_url = settings.public_url()
    built: dict[str, Provider] = {"sandbox": SandboxProvider(public_url)}
    chosen = settings.providers.enabled()
    wanted = {name: method for method, name in chosen.items()}
    for name in settings.providers.configured():
        wanted.setdefault(name, "")
    for name, method in wanted.items():
        if name == "stripe":
            # Imported only when configured: the stripe package takes a fifth of a second
            # to import, which every CLI command would pay otherwise.
            from watcher.providers.stripe import StripeProvider

            built[name] = StripeProvider(settings.providers.stripe, public_url)
        elif name == "acidpanel":
            built[name] = AcidPanelProvider(settings.providers.acidpanel)
        elif name == "banktransfer":
            built[name] = BankTransferProvider(settings.providers.banktransfer)
        elif name == "kazawallet":
            built[name] = KazawalletProvider(settings.providers.kazawallet)
        else:  # the settings allow no other name
            raise ConfigError(
                f"providers.{method or name} = {name!r}: that adapter is not part of this version"
            )
    return built


def build_methods(
    settings: Settings,
    rates: RateSource,
    addresses: AddressAllocator,
    providers: dict[str, Provider],
) -> dict[str, PaymentMethod]:
    """The kinds a create request may ask for; the others answer "not enabled"."""
    methods: dict[str, PaymentMethod] = {"crypto": CryptoMethod(settings, rates, addresses)}
    ttl_ms = int(Decimal(str(settings.providers.session_ttl_min)) * 60_000)
    for kind, name in settings.providers.enabled().items():
        methods[kind] = ProviderMethod(kind, name, providers, settings.public_url(), ttl_ms, rates)
    return methods
