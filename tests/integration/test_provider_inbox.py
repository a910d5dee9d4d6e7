"""A verified webhook is stored before it is answered, and applied even when applying it fails
at first: providers such as Kazawallet send a webhook once only. The failure is made in the
database itself (a trigger refusing to update the payment), not by patching our code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from tests.support.cards import CardHarness, card_harness
from tests.support.dbfaults import allow_payment_updates, refuse_payment_updates
from tests.support.servers import serve_asgi
from watcher.callbacks.receiver import CallbackReceiver
from watcher.db.models import PaymentReport
from watcher.providers.reconcile import ProviderReconciler


@pytest.fixture
async def cards(db_url: str) -> AsyncIterator[CardHarness]:
    async with card_harness(db_url) as harness:
        yield harness


async def test_a_webhook_whose_processing_fails_is_kept_answered_and_applied_later(
    cards: CardHarness,
) -> None:
    receiver = CallbackReceiver(cards.merchant.webhook_secret)
    async with serve_asgi(receiver) as hook:
        created = await cards.card(callbackUrl=f"{hook}/kasa")
        txn, sid = created.json()["transactionId"], cards.session_of(created)
        await refuse_payment_updates(cards.services.engine)
        resp = await cards.webhook(cards.stripe.complete(sid))
        assert (resp.status_code, resp.json()) == (200, {"received": True})
        async with cards.services.sessions() as s:
            [row] = (await s.execute(select(PaymentReport))).scalars().all()
        assert (row.result, row.transaction_id) == ("received", txn)
        assert (await cards.status(txn))["status"] == "pending"

        await allow_payment_updates(cards.services.engine)
        s = cards.services
        reconciler = ProviderReconciler(s.settings, s.sessions, s.providers, s.payments, s.clock)
        await reconciler.step()
        assert (await cards.status(txn))["status"] == "completed"
        assert await cards.deliver() == 1
    [payload] = receiver.verified()
    assert (payload["event"], payload["provider"]["paidAmount"]) == ("payment.completed", 1000)
