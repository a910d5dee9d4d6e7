"""An API server with card, bank and wallet payments on, and the provider stand-ins on loopback:
the fake AcidPanel and Kazawallet check our signatures exactly as the seeds define them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import col

from tests.integration.conftest import ApiHarness, serve_api
from watcher import jsonio
from watcher.callbacks.delivery import DeliveryWorker
from watcher.db.models import PaymentEvent
from watcher.devchain import acidpanel as fake_acidpanel
from watcher.devchain import kazawallet as fake_kazawallet
from watcher.devchain.acidpanel import FakeAcidPanel
from watcher.devchain.kazawallet import FakeKazawallet

ACID_API_KEY = "ak_test_7f3c"
ACID_SECRET_KEY = "sk_test_91ab"
ACID_CREDENTIAL_KEY = "site-cred-42"
KAZA_API_KEY = "kz_key_1"
KAZA_API_SECRET = "kz_secret_1"


def fake_kaza(**kwargs: Any) -> FakeKazawallet:
    return FakeKazawallet(api_key=KAZA_API_KEY, api_secret=KAZA_API_SECRET, **kwargs)


def fake_acid(**kwargs: Any) -> FakeAcidPanel:
    return FakeAcidPanel(
        api_key=ACID_API_KEY,
        secret_key=ACID_SECRET_KEY,
        credential_key=ACID_CREDENTIAL_KEY,
        **kwargs,
    )


@dataclass
class ProviderHarness(ApiHarness):
    acidpanel: FakeAcidPanel
    kazawallet: FakeKazawallet

    async def pay(self, method: str, key: str | None = None, **fields: object) -> httpx.Response:
        """A create request for a `method` (card, bank, wallet) payment."""
        body: dict[str, object] = {
            "amount": 1000,
            "fullName": "Mehmet Ali Yılmaz",
            "email": "mehmet@example.com",
            "phone": "+905551234567",
            "externalRef": f"ORD-{method.upper()}-1",
            "provider": method,
        }
        body.update(fields)
        return await self.http.post(
            f"{self.url}/api/payment/create", json=body, headers=self.headers(key)
        )

    async def webhook(
        self, name: str, body: bytes, headers: dict[str, str], path: str = ""
    ) -> httpx.Response:
        url = f"{self.url}/providers/{name}/webhook" + (f"/{path}" if path else "")
        return await self.http.post(url, content=body, headers=headers)

    async def status(self, txn: str, key: str | None = None) -> dict[str, Any]:
        resp = await self.http.get(
            f"{self.url}/api/payment/status",
            params={"transactionId": txn},
            headers=self.headers(key),
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json()["transaction"])

    async def events(self) -> list[dict[str, Any]]:
        """Every payment event recorded, oldest first: type, payment id and data."""
        async with self.services.sessions() as s:
            rows = (await s.execute(select(PaymentEvent).order_by(col(PaymentEvent.id)))).scalars()
            return [
                {"type": e.type, "payment_id": e.payment_id, "data": jsonio.loads(e.data_json)}
                for e in rows
            ]

    async def deliver(self) -> int:
        s = self.services
        worker = DeliveryWorker(s.settings, s.sessions, s.box, s.http, s.clock, "provider-test")
        return await worker.run_once()


def kazawallet_settings(url: str, **overrides: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "base_url": url,
        "api_key": KAZA_API_KEY,
        "api_secret": KAZA_API_SECRET,
        "timeout_s": 2,
    }
    settings.update(overrides)
    return settings


def acidpanel_settings(url: str, **overrides: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "base_url": url,
        "api_key": ACID_API_KEY,
        "secret_key": ACID_SECRET_KEY,
        "credential_key": ACID_CREDENTIAL_KEY,
        "timeout_s": 2,
    }
    settings.update(overrides)
    return settings


@asynccontextmanager
async def provider_harness(
    db_url: str,
    *,
    providers: dict[str, object],
    acidpanel: FakeAcidPanel | None = None,
    kazawallet: FakeKazawallet | None = None,
    **sections: dict[str, object],
) -> AsyncIterator[ProviderHarness]:
    """The API with `providers` ([providers] settings; a section pointing at the fake
    AcidPanel or Kazawallet is added when one of its methods is on and none is given)."""
    acid = acidpanel or fake_acid()
    kaza = kazawallet or fake_kaza()
    async with AsyncExitStack() as stack:
        acid_url = await stack.enter_async_context(fake_acidpanel.serve(acid))
        kaza_url = await stack.enter_async_context(fake_kazawallet.serve(kaza))
        chosen = dict(providers)
        if "acidpanel" in chosen.values() and "acidpanel" not in chosen:
            chosen["acidpanel"] = acidpanel_settings(acid_url)
        if "kazawallet" in chosen.values() and "kazawallet" not in chosen:
            chosen["kazawallet"] = kazawallet_settings(kaza_url)
        api = await stack.enter_async_context(serve_api(db_url, providers=chosen, **sections))
        yield ProviderHarness(**vars(api), acidpanel=acid, kazawallet=kaza)
