"""`watcher providers check`: whether each configured provider takes our credentials."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import typer

from watcher.cli.common import fail, out, print_json, run, state, styled
from watcher.cli.shape import ConfigOpt, JsonOpt, group
from watcher.config import ConfigError, Settings
from watcher.errors import ProviderError
from watcher.methods import build_providers
from watcher.providers.base import NotChecked, Provider

app = group()


@dataclass(frozen=True)
class Checked:
    name: str
    methods: list[str]  # the payment methods it takes: card, bank, wallet
    ok: bool
    checked: bool  # False: the provider has no call to check credentials with
    detail: str  # what the provider said, or why it failed; never a secret


@app.command("check")
def check(ctx: typer.Context, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Ask each configured card, bank and wallet provider whether our credentials work.

    Exits 1 when one of them does not (a provider with no call to check credentials with is
    shown as "not checked"). Secrets are never printed.
    """
    settings = state(ctx, config).settings
    try:
        results = run(_check_all(settings))
    except ConfigError as exc:
        fail(str(exc))
    if as_json:
        print_json({"providers": [asdict(r) for r in results]})
    else:
        _print(results)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


async def _check_all(settings: Settings) -> list[Checked]:
    by_adapter: dict[str, list[str]] = {}
    for method, name in settings.providers.enabled().items():
        by_adapter.setdefault(name, []).append(method)
    providers = build_providers(settings)
    try:
        return [await _check(providers[n], n, methods) for n, methods in by_adapter.items()]
    finally:
        for provider in providers.values():
            await provider.close()


async def _check(provider: Provider, name: str, methods: list[str]) -> Checked:
    try:
        detail = await provider.check()
    except ProviderError as exc:
        return Checked(name, methods, False, True, exc.message)
    except NotChecked as exc:
        return Checked(name, methods, True, False, str(exc))
    return Checked(name, methods, True, True, detail)


def _print(results: list[Checked]) -> None:
    if not results:
        out.print("no card, bank or wallet provider is configured ([providers] is empty)")
        return
    name_width = max(len(r.name) for r in results) + 2
    methods_width = max(len(", ".join(r.methods)) for r in results) + 2
    for r in results:
        mark = ("ok", "green") if r.ok else ("FAILED", "red")
        if not r.checked:
            mark = ("not checked", "yellow")
        methods = ", ".join(r.methods)
        line = styled(
            (r.name.ljust(name_width), "bold"), methods.ljust(methods_width), mark, f"  {r.detail}"
        )
        out.print(line, soft_wrap=True)
