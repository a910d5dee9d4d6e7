"""Test mode cannot speak for live mode: `livemode` in every payload and in status, and test
callbacks signed with the merchant's separate test webhook secret (as Stripe does)."""

from __future__ import annotations

from sqlalchemy import update

from tests.integration.conftest import ApiHarness
from tests.support.callbacks import callback_rows
from tests.support.servers import serve_asgi
from watcher.callbacks.delivery import DeliveryWorker
from watcher.callbacks.receiver import CallbackReceiver
from watcher.db.models import Merchant


async def _deliver(api: ApiHarness) -> int:
    s = api.services
    worker = DeliveryWorker(s.settings, s.sessions, s.box, s.http, s.clock, "livemode-test")
    return await worker.run_once()


async def test_a_test_key_cannot_send_a_live_receiver_a_signed_cancel_of_a_live_order(
    api: ApiHarness,
) -> None:
    live = CallbackReceiver(api.merchant.webhook_secret)  # holds only the live secret
    async with serve_asgi(live) as hook:
        created = await api.create(
            api.merchant.test_api_key, externalRef="ORDER-9001", callbackUrl=f"{hook}/kasa"
        )
        assert created.status_code == 200, created.text
        txn = created.json()["transactionId"]
        cancel = await api.http.post(
            f"{api.url}/api/payment/{txn}/cancel", headers=api.headers(api.merchant.test_api_key)
        )
        assert cancel.json()["transaction"]["livemode"] is False
        assert await _deliver(api) == 1
    [arrived] = live.received
    assert b'"livemode":false' in arrived.body
    assert arrived.error is not None and live.verified() == []  # the live receiver refuses it


async def test_test_callbacks_verify_with_the_test_secret_and_live_ones_say_livemode(
    api: ApiHarness,
) -> None:
    test_hook = CallbackReceiver("", test_secret=api.merchant.test_webhook_secret)
    live_hook = CallbackReceiver(api.merchant.webhook_secret)
    async with serve_asgi(test_hook) as test_url, serve_asgi(live_hook) as live_url:
        for key, url, ref in (
            (api.merchant.test_api_key, test_url, "ORD-T"),
            (api.merchant.api_key, live_url, "ORD-L"),
        ):
            txn = (await api.create(key, externalRef=ref, callbackUrl=url)).json()["transactionId"]
            await api.http.post(f"{api.url}/api/payment/{txn}/cancel", headers=api.headers(key))
            status = await api.http.get(
                f"{api.url}/api/payment/status",
                params={"transactionId": txn},
                headers=api.headers(key),
            )
            assert status.json()["transaction"]["livemode"] is (key == api.merchant.api_key)
        assert await _deliver(api) == 2
    [test_payload] = test_hook.verified()
    [live_payload] = live_hook.verified()
    assert (test_payload["externalRef"], test_payload["livemode"]) == ("ORD-T", False)
    assert (live_payload["externalRef"], live_payload["livemode"]) == ("ORD-L", True)
    assert api.merchant.test_webhook_secret.startswith("whsec_test_")
    assert api.merchant.test_webhook_secret != api.merchant.webhook_secret


async def test_without_a_test_secret_a_test_callback_is_not_sent_rather_than_signed_live(
    api: ApiHarness,
) -> None:
    async with api.services.sessions() as s, s.begin():
        await s.execute(update(Merchant).values(test_webhook_secret_enc=None))
    hook = CallbackReceiver(api.merchant.webhook_secret)
    async with serve_asgi(hook) as url:
        key = api.merchant.test_api_key
        txn = (await api.create(key, callbackUrl=url)).json()["transactionId"]
        await api.http.post(f"{api.url}/api/payment/{txn}/cancel", headers=api.headers(key))
        assert await _deliver(api) == 1
    assert hook.received == []
    [row] = await callback_rows(api.services.sessions)
    assert row.attempts == 1 and row.status == "pending"
    assert row.last_error is not None and "watcher merchant test-secret" in row.last_error
