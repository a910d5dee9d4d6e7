"""An API server with card payments on: the fake Stripe on loopback, the fake Binance, a real
database; and helpers to post webhooks the way Stripe posts them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.integration.conftest import ApiHarness, serve_api
from watcher.callbacks.delivery import DeliveryWorker
from watcher.devchain import stripe as fake_stripe
from watcher.devchain.stripe import FakeStripe

# A live-mode key (for the local fake only): live payments are only ever paid in live mode.
SECRET_KEY = "sk_live_51FakeKeyForTheLocalStripe"
WEBHOOK_SECRET = "whsec_local_fake_stripe_secret"


@dataclass
class CardHarness(ApiHarness):
    stripe: FakeStripe

    async def card(self, key: str | None = None, **fields: object) -> httpx.Response:
        body: dict[str, object] = {
            "amount": 1000,
            "fullName": "Ahmet Yılmaz",
            "email": "ahmet@example.com",
            "phone": "+905551234567",
            "externalRef": "ORD-CARD-1",
            "provider": "card",
        }
        body.update(fields)
        return await self.http.post(
            f"{self.url}/api/payment/create", json=body, headers=self.headers(key)
        )

    async def webhook(
        self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
    ) -> httpx.Response:
        body, headers = self.stripe.signed(event, secret, timestamp)
        return await self.http.post(
            f"{self.url}/providers/stripe/webhook", content=body, headers=headers
        )

    async def status(self, txn: str, key: str | None = None) -> dict[str, Any]:
        resp = await self.http.get(
            f"{self.url}/api/payment/status",
            params={"transactionId": txn},
            headers=self.headers(key),
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json()["transaction"])

    async def deliver(self) -> int:
        s = self.services
        worker = DeliveryWorker(s.settings, s.sessions, s.box, s.http, s.clock, "card-test")
        return await worker.run_once()

    def session_of(self, created: httpx.Response) -> str:
        return str(created.json()["redirectUrl"]).rsplit("/", 1)[-1]


@asynccontextmanager
async def card_harness(
    db_url: str, stripe: FakeStripe | None = None, **sections: dict[str, object]
) -> AsyncIterator[CardHarness]:
    fake = stripe or FakeStripe()
    async with fake_stripe.serve(fake) as stripe_url:
        providers: dict[str, object] = {
            "card": "stripe",
            "stripe": {
                "secret_key": SECRET_KEY,
                "webhook_secret": WEBHOOK_SECRET,
                "api_base": stripe_url,
                "timeout_s": 2,
            },
        }
        providers.update(sections.pop("providers", {}))
        async with serve_api(db_url, providers=providers, **sections) as api:
            yield CardHarness(**vars(api), stripe=fake)
